"""``gridcore vens``, ``events``, ``ping`` and ``audit``: the operator's
commands, clients of the REST API (``entrypoints.operator.client``)."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from entrypoints.cli import Failure, UsageError, _settings
from entrypoints.operator.client import Api
from entrypoints.operator.output import Progress, kw, print_json, table
from entrypoints.operator.when import ago, iso, parse_duration, parse_time, short

POLL_S = 0.25  # between reads while waiting for answers
VEN_PAGE = 1000  # VENs per request while a large fleet is read
# The dispatcher allocates an event within a second of its start: running
# this long with no command means it reached no VEN.
NOTHING_SENT_S = 5.0


def _api(args: argparse.Namespace) -> Api:
    return Api.from_settings(_settings(), args.token_file)


def _now() -> datetime:
    return datetime.now(UTC)


# --- gridcore vens ---------------------------------------------------------------


def cmd_vens(args: argparse.Namespace) -> None:
    """Every VEN (the dashboard's summary), read a page at a time; progress on
    stderr when it takes more than one page."""
    progress = Progress()
    vens: list[dict[str, Any]] = []
    with _api(args) as api:
        total = None
        while total is None or len(vens) < total:
            response = api.request(
                "GET",
                "/api/vens/summary",
                params={"limit": args.page_size, "offset": len(vens), "search": args.search},
            )
            page = response.json()
            total = int(response.headers.get("X-Total-Count", len(vens) + len(page)))
            vens += page
            if not page:
                break
            if total > len(page) or len(vens) > len(page):
                progress.show(f"read {len(vens)} of {total} VENs")
    progress.done()
    if args.json:
        print_json(vens)
        return
    now = _now()
    rows = [
        [
            v["id"],
            v.get("name") or "",
            v["status"],
            ago(v.get("lastSeen"), now),
            kw(v.get("currentPower")),
            kw(v.get("controllablePower")),
            "-" if v.get("responseTime") is None else f"{v['responseTime']:.0f}",
        ]
        for v in vens
    ]
    headers = ["VEN", "NAME", "STATUS", "LAST SEEN", "POWER kW", "SHED kW", "RTT ms"]
    print(table(headers, rows, right=(4, 5, 6)))
    online = sum(v["status"] == "online" for v in vens)
    print(f"\n{len(vens)} VENs, {online} online; available shed "
          f"{sum(float(v.get('controllablePower') or 0) for v in vens):.2f} kW")  # fmt: skip


# --- gridcore events ...  --------------------------------------------------------


def _event_rows(events: list[dict[str, Any]]) -> str:
    rows = [
        [
            e["id"],
            e["status"],
            short(e["startTime"]),
            short(e["endTime"]),
            kw(e["requestedReductionKw"]),
            kw(e["actualReductionKw"]),
            ",".join(e.get("targets") or []) or "(all)",
        ]
        for e in events
    ]
    headers = ["EVENT", "STATUS", "START", "END", "ASKED kW", "SHED kW", "TARGETS"]
    return table(headers, rows, right=(4, 5))


def cmd_events_list(args: argparse.Namespace) -> None:
    with _api(args) as api:
        response = api.request(
            "GET", "/api/events", params={"status": args.status, "limit": args.limit}
        )
    events = response.json()
    if args.json:
        print_json(events)
        return
    total = response.headers.get("X-Total-Count", str(len(events)))
    print(_event_rows(events) if events else "no events")
    if events and int(total) > len(events):
        print(f"\n{len(events)} of {total} events, newest first (--limit for more)")


def _answered(detail: dict[str, Any], *, restores: bool = False) -> tuple[int, int, Counter[str]]:
    """(answered, expected, outcomes) of the event's VENs: their newest event
    command, or with ``restores`` their restore."""
    outcomes: Counter[str] = Counter()
    vens = detail.get("vens") or []
    expected = 0
    for v in vens:
        state = v.get("restoreState") if restores else v.get("commandState")
        if state is None:
            continue
        expected += 1
        if state not in ("pending", "sent"):
            outcomes[v["status"] if not restores else state] += 1
    return sum(outcomes.values()), expected, outcomes


def print_event(detail: dict[str, Any]) -> None:
    print(_event_rows([detail]))
    vens = detail.get("vens") or []
    if not vens:
        print("\nno VEN has been sent it yet")
        return
    rows = [
        [
            v["venId"],
            v.get("venName") or "",
            kw(v.get("allocatedKw")),
            v["status"],
            str(v.get("attempts", "")),
            kw(v.get("shedKw")),
            kw(v.get("meteredShedKw")),
            "-" if v.get("responseTimeSeconds") is None else f"{v['responseTimeSeconds']:.2f}",
            v.get("restoreState") or "-",
        ]
        for v in vens
    ]
    headers = ["VEN", "NAME", "ALLOC kW", "STATUS", "TRIES", "SHED kW", "METERED kW", "ACK s",
               "RESTORE"]  # fmt: skip
    print()
    print(table(headers, rows, right=(2, 4, 5, 6, 7)))
    answered, expected, outcomes = _answered(detail)
    said = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))
    print(f"\n{answered} of {expected} VENs answered" + (f" ({said})" if said else ""))


def cmd_events_show(args: argparse.Namespace) -> None:
    with _api(args) as api:
        detail = api.get(f"/api/events/{args.event_id}")
    if args.json:
        print_json(detail)
    else:
        print_event(detail)


def _wait(api: Api, event_id: str, timeout: float, *, restores: bool = False) -> dict[str, Any]:
    """Poll the event until every VEN it was sent to answered (or, with
    ``restores``, every restore did), showing progress on stderr."""
    progress = Progress()
    deadline = time.monotonic() + timeout
    what = "restores answered" if restores else "VENs answered"
    started: float | None = None  # when it was first seen running with nothing sent
    try:
        while True:
            detail: dict[str, Any] = api.get(f"/api/events/{event_id}")
            answered, expected, outcomes = _answered(detail, restores=restores)
            said = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
            status = detail["status"]
            if status == "scheduled":
                progress.show(f"{event_id}: scheduled, starts {short(detail['startTime'])}")
            else:
                progress.show(
                    f"{event_id} {status}: {answered}/{expected} {what}"
                    + (f" ({said})" if said else "")
                )
            settled = status in ("completed", "cancelled", "stopped") and not restores
            if (expected and answered == expected and status != "scheduled") or settled:
                return detail
            if status == "scheduled" or expected:
                started = None
            elif started is None:
                started = time.monotonic()
            elif time.monotonic() - started > NOTHING_SENT_S:
                return detail  # running, yet sent to no VEN: none online, or none targeted
            if time.monotonic() >= deadline:
                progress.done()
                raise Failure(
                    f"gave up waiting after {timeout:.0f} s: {answered} of {expected} {what}; "
                    f"`gridcore events show {event_id}` shows where it stands"
                )
            time.sleep(POLL_S)
    finally:
        progress.done()


def _event_times(args: argparse.Namespace) -> tuple[datetime, datetime]:
    now = _now()
    try:
        start = parse_time(args.start, now)
        if args.end is not None and args.duration is not None:
            raise UsageError("give --end or --duration, not both")
        if args.end is not None:
            end = parse_time(args.end, now)
        elif args.duration is not None:
            end = start + parse_duration(args.duration)
        else:
            raise UsageError("give --end (a time) or --duration (e.g. 15m)")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if end <= start:
        raise UsageError(f"the end ({iso(end)}) must be after the start ({iso(start)})")
    return start, end


def cmd_events_create(args: argparse.Namespace) -> None:
    start, end = _event_times(args)
    body = {
        "startTime": iso(start),
        "endTime": iso(end),
        "requestedReductionKw": args.kw,
        "targets": args.target or [],
    }
    with _api(args) as api:
        event = api.post("/api/events", body)
        if args.wait:
            event = _wait(api, event["id"], args.timeout)
    if args.json:
        print_json(event)
    elif args.wait:
        print_event(event)
    else:
        print(f"created {event['id']}: {kw(args.kw)} kW from {short(event['startTime'])} "
              f"to {short(event['endTime'])}"
              f"{'; targets ' + ', '.join(event['targets']) if event.get('targets') else ''}"
              f" (`gridcore events show {event['id']}` follows it)")  # fmt: skip


def cmd_events_stop(args: argparse.Namespace) -> None:
    with _api(args) as api:
        event = api.post(f"/api/events/{args.event_id}/stop")
        if args.wait:
            event = _wait(api, args.event_id, args.timeout, restores=True)
    if args.json:
        print_json(event)
    elif args.wait:
        print_event(event)
    else:
        print(f"stopped {event['id']}; restores are on their way to the VENs it reached")


def cmd_events_cancel(args: argparse.Namespace) -> None:
    with _api(args) as api:
        event = api.delete(f"/api/events/{args.event_id}")
    if args.json:
        print_json(event)
    else:
        print(f"cancelled {event['id']} (it had not started: nothing was sent)")


# --- gridcore ping -----------------------------------------------------------------


def cmd_ping(args: argparse.Namespace) -> None:
    """Queue a ping through the API, wait for the VEN's pong among its ACKs,
    and print the round trip the worker measured (first send to the ACK)."""
    started = time.monotonic()
    with _api(args) as api:
        command = api.post(f"/api/vens/{args.ven_id}/ping")
        correlation_id = command["correlationId"]
        progress = Progress()
        deadline = started + args.timeout
        ack = None
        try:
            while ack is None:
                acks = api.get(f"/api/vens/{args.ven_id}/acks", limit=20)["acks"]
                ack = next((a for a in acks if a.get("correlationId") == correlation_id), None)
                if ack is not None:
                    break
                if time.monotonic() >= deadline:
                    raise Failure(
                        f"no answer from {args.ven_id} within {args.timeout:.0f} s (ping "
                        f"{correlation_id}): is it online (`gridcore vens`) and the worker "
                        "running?"
                    )
                progress.show(f"ping {correlation_id} sent; waiting for {args.ven_id}")
                time.sleep(POLL_S)
        finally:
            progress.done()
        waited_ms = (time.monotonic() - started) * 1000
        ven = api.get(f"/api/vens/{args.ven_id}")
    rtt = ven.get("responseTimeMs")
    if args.json:
        print_json({"venId": args.ven_id, "correlationId": correlation_id, "ack": ack,
                    "roundTripMs": rtt, "waitedMs": round(waited_ms, 1)})  # fmt: skip
        return
    measured = "-" if rtt is None else f"{rtt:.0f} ms"
    print(f"{ack['status']} from {args.ven_id}: round trip {measured} (worker to VEN and back), "
          f"{waited_ms:.0f} ms from this request (correlationId {correlation_id})")  # fmt: skip


# --- gridcore audit ----------------------------------------------------------------


def cmd_audit(args: argparse.Namespace) -> None:
    now = _now()
    try:
        since = None if args.since is None else iso(parse_time(_past(args.since), now))
        until = None if args.until is None else iso(parse_time(args.until, now))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with _api(args) as api:
        page = api.get(
            "/api/audit",
            limit=args.limit,
            actor=args.actor,
            action=args.action,
            venId=args.ven,
            eventId=args.event,
            since=since,
            until=until,
        )
    if args.json:
        print_json(page)
        return
    rows = [
        [
            short(e["at"]),
            e["actor"],
            e["action"],
            " ".join(f"{k} {e[k]}" for k in ("eventId", "venId", "loadId") if e.get(k) is not None),
            ", ".join(f"{k}={v}" for k, v in e["details"].items()),
        ]
        for e in page["entries"]
    ]
    print(table(["AT", "WHO", "ACTION", "ON", "DETAILS"], rows) if rows else "no entries")
    if page["totalCount"] > len(rows):
        print(f"\n{len(rows)} of {page['totalCount']} entries, newest first (--limit for more)")


def _past(text: str) -> str:
    """``--since 1h`` means an hour ago (a bare duration looks back)."""
    stripped = text.strip()
    try:
        return iso(_now() - parse_duration(stripped))
    except ValueError:
        return stripped
