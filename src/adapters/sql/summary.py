"""The fleet overview in one query: :func:`gridcore.summary.summarize` for a
page of up to 10,000 VENs, computed by the database (the dashboard polls it
every 15 s, so it must not cost one query per VEN).

Per VEN of the page: its registry row, its newest panel reading
(``ven_latest``), one pass over its latest load rows merged with their
configuration plus the loads configured but not reported (what it can shed,
what its loads use), and the command whose ACK arrived last, found through
the partial index ``ix_commands_ven_id_acked_at`` (one index probe per VEN,
never a scan of the ledger).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Float,
    Select,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
)

from adapters.sql.latest import LatestStateQueries, _merged_latest_loads, rounded
from adapters.sql.mapping import ven_from
from adapters.sql.repositories import answered_last
from adapters.sql.tables import ven_latest, ven_load_samples, ven_loads, vens
from gridcore.listing import ALL, VenListing, VenOrder
from gridcore.summary import MAX_FLEET_PAGE, VenSummary, summary_of
from gridcore.telemetry import Page


def _sheddable(shed: Any, critical: Any, enabled: Any) -> Any:
    """What one load adds to :func:`gridcore.ven.available_shed_kw`."""
    return case((and_(critical.is_(False), enabled.is_(True), shed > 0), shed), else_=0.0)


def listed(listing: VenListing) -> tuple[list[Any], list[Any]]:
    """The WHERE and ORDER BY of ``listing`` over ``vens``
    (:meth:`gridcore.listing.VenListing.arrange`)."""
    where: list[Any] = []
    needle = listing.needle
    if needle is not None:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            or_(
                func.lower(vens.c.id).like(pattern, escape="\\"),
                func.lower(vens.c.name).like(pattern, escape="\\"),
            )
        )
    column = {
        VenOrder.ID: vens.c.id,
        VenOrder.NAME: vens.c.name,
        VenOrder.LAST_SEEN: vens.c.last_seen_at,
    }[listing.order]
    key = column.desc() if listing.descending else column.asc()
    order: list[Any] = [key.nulls_last()] if listing.order is VenOrder.LAST_SEEN else [key]
    if listing.order is not VenOrder.ID:
        order.append(vens.c.id)
    return where, order


def summary_query(offset: int, limit: int, dialect: str, listing: VenListing = ALL) -> Select[Any]:
    """One row per VEN of the page: registry columns, ``used_power_kw``, the
    loads' ``shed`` and ``loads_used``, and its last answer's ``acked_at`` and
    ``first_sent_at``. The per-VEN parts are LATERAL joins on PostgreSQL (its
    planner would otherwise hash-join every stored load sample: 1.2 million
    rows read for 100,000 wanted) and the same subqueries, one column each,
    on SQLite, which has no LATERAL and loops over the index anyway."""
    where, order = listed(listing)
    position = func.row_number().over(order_by=order).label("position")
    page = (select(vens, position).where(*where).order_by(*order).offset(offset).limit(limit)).cte(
        "summary_page"
    )
    s, cfg = ven_load_samples.c, ven_loads.c
    reported = _merged_latest_loads().where(ven_latest.c.ven_id == page.c.id).correlate(page)
    r = reported.subquery()
    still_unreported = ~exists(
        select(literal(1))
        .select_from(ven_latest)
        .join(
            ven_load_samples,
            and_(s.ven_id == ven_latest.c.ven_id, s.timestamp == ven_latest.c.timestamp),
        )
        .where(ven_latest.c.ven_id == cfg.ven_id, s.load_id == cfg.load_id)
    )
    lines = union_all(
        select(
            _sheddable(r.c.shed_capability_kw, r.c.critical, r.c.enabled).label("shed"),
            r.c.current_power_kw.label("used"),
        ),
        select(
            _sheddable(cfg.shed_capability_kw, cfg.critical, cfg.enabled).label("shed"),
            literal(0.0, Float).label("used"),  # configured only: nothing reported yet
        )
        .where(cfg.ven_id == page.c.id, still_unreported)
        .correlate(page),
    ).subquery()
    loads = (
        select(func.sum(lines.c.shed).label("shed"), func.sum(lines.c.used).label("loads_used"))
        .select_from(lines)
        .correlate(page)
    )
    answer = answered_last(page.c.id, "acked_at", "first_sent_at").correlate(page)
    source = page.outerjoin(ven_latest, ven_latest.c.ven_id == page.c.id)
    per_ven: list[Any]
    if dialect == "postgresql":
        loads_now, last_answer = loads.lateral("loads_now"), answer.lateral("last_answer")
        source = source.outerjoin(loads_now, true()).outerjoin(last_answer, true())
        per_ven = [*loads_now.c, *last_answer.c]
    else:
        per_ven = [
            part.with_only_columns(column).scalar_subquery().label(column.name)
            for part in (loads, answer)
            for column in part.selected_columns
        ]
    return (
        select(page, ven_latest.c.used_power_kw, *per_ven)
        .select_from(source)
        .order_by(page.c.position)
    )


class SummaryQueries(LatestStateQueries):
    """``ven_summaries`` of :class:`gridcore.ports.TelemetryQueries`."""

    async def ven_summaries(
        self, *, offset: int = 0, limit: int = MAX_FLEET_PAGE, listing: VenListing = ALL
    ) -> Page[VenSummary]:
        offset, limit = max(offset, 0), min(max(limit, 0), MAX_FLEET_PAGE)
        dialect = self._engine.dialect.name
        query = summary_query(offset, limit, dialect, listing)
        async with self._engine.connect() as conn:
            if dialect == "postgresql":
                # One index probe per VEN is cheap; JIT-compiling the plan whose
                # cost counts them all took longer than running it (230 ms).
                await conn.execute(text("SET LOCAL jit = off"))
            where, _ = listed(listing)
            total = await conn.scalar(select(func.count()).select_from(vens).where(*where))
            rows = (await conn.execute(query)).mappings().all()
        return Page(int(total or 0), tuple(_summary(r) for r in rows))


def _summary(row: Any) -> VenSummary:
    used = row["used_power_kw"]
    sent, acked = row["first_sent_at"], row["acked_at"]
    return summary_of(
        ven_from(row),
        # The panel's reading, else what its loads report (gridcore.summary.current_power_kw).
        current_power_kw=used if used is not None else rounded(row["loads_used"]),
        shed_availability_kw=rounded(row["shed"]),
        round_trip=acked - sent if acked is not None and sent is not None else None,
    )
