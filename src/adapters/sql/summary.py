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
    and_,
    case,
    exists,
    func,
    literal,
    select,
    union_all,
)

from adapters.sql.latest import LatestStateQueries, _merged_latest_loads, rounded
from adapters.sql.mapping import ven_from
from adapters.sql.repositories import answered_last
from adapters.sql.tables import commands, ven_latest, ven_load_samples, ven_loads, vens
from gridcore.summary import MAX_FLEET_PAGE, VenSummary
from gridcore.telemetry import Page


def _sheddable(shed: Any, critical: Any, enabled: Any) -> Any:
    """What one load adds to :func:`gridcore.ven.available_shed_kw`."""
    return case((and_(critical.is_(False), enabled.is_(True), shed > 0), shed), else_=0.0)


class SummaryQueries(LatestStateQueries):
    """``ven_summaries`` of :class:`gridcore.ports.TelemetryQueries`."""

    async def ven_summaries(
        self, *, offset: int = 0, limit: int = MAX_FLEET_PAGE
    ) -> Page[VenSummary]:
        offset, limit = max(offset, 0), min(max(limit, 0), MAX_FLEET_PAGE)
        page = select(vens).order_by(vens.c.id).offset(offset).limit(limit).cte("summary_page")
        in_page = select(page.c.id)
        s, cfg = ven_load_samples.c, ven_loads.c
        reported = _merged_latest_loads().where(ven_latest.c.ven_id.in_(in_page)).subquery()
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
                reported.c.ven_id,
                _sheddable(
                    reported.c.shed_capability_kw, reported.c.critical, reported.c.enabled
                ).label("shed"),
                reported.c.current_power_kw.label("used"),
            ),
            select(
                cfg.ven_id,
                _sheddable(cfg.shed_capability_kw, cfg.critical, cfg.enabled).label("shed"),
                literal(0.0, Float).label("used"),  # configured only: nothing reported yet
            ).where(cfg.ven_id.in_(in_page), still_unreported),
        ).subquery()
        per_ven = (
            select(
                lines.c.ven_id,
                func.sum(lines.c.shed).label("shed"),
                func.sum(lines.c.used).label("loads_used"),
            )
            .group_by(lines.c.ven_id)
            .subquery()
        )
        answered = commands.alias("answered")
        query = (
            select(
                page,
                ven_latest.c.used_power_kw,
                per_ven.c.shed,
                per_ven.c.loads_used,
                answered.c.first_sent_at,
                answered.c.acked_at,
            )
            .select_from(
                page.outerjoin(ven_latest, ven_latest.c.ven_id == page.c.id)
                .outerjoin(per_ven, per_ven.c.ven_id == page.c.id)
                .outerjoin(answered, answered.c.correlation_id == answered_last(page.c.id))
            )
            .order_by(page.c.id)
        )
        async with self._engine.connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(vens))
            rows = (await conn.execute(query)).mappings().all()
        return Page(int(total or 0), tuple(_summary(r) for r in rows))


def _summary(row: Any) -> VenSummary:
    ven = ven_from(row)
    used = row["used_power_kw"]
    sent, acked = row["first_sent_at"], row["acked_at"]
    return VenSummary(
        id=ven.id,
        name=ven.name,
        location=ven.location,
        registered_at=ven.registered_at,
        last_seen_at=ven.last_seen_at,
        # The panel's reading, else what its loads report (gridcore.summary.current_power_kw).
        current_power_kw=used if used is not None else rounded(row["loads_used"]),
        shed_availability_kw=rounded(row["shed"]),
        round_trip=acked - sent if acked is not None and sent is not None else None,
    )
