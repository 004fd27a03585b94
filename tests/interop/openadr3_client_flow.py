"""Drives gridcore's VTN with ElaadNL's openadr3-client (its OpenADR 3.1.0
interface), an independent client library: run under Python 3.12 by
tests/e2e/test_openadr_interop.py, not collected by pytest.

Arguments: the VTN's base URL, then BL, VEN and other-VEN client id and
secret. The token URL is discovered through /auth/server. Prints one JSON
line of what it saw; any refusal or parse failure of the library raises.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory
from openadr3_client.oadr310.models.event.event import NewEvent
from openadr3_client.oadr310.models.event.event_payload import EventPayload, EventPayloadType
from openadr3_client.oadr310.models.program.program import NewProgram
from openadr3_client.oadr310.models.report.report import NewReport, ReportResource
from openadr3_client.oadr310.models.report.report_payload import ReportPayload, ReportPayloadType
from openadr3_client.oadr310.models.ven.ven import NewVenVenRequest, VenUpdateBlRequest
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
from openadr3_client.version import OADRVersion


def main() -> None:
    vtn, bl_id, bl_secret, ven_id, ven_secret, other_id, other_secret = sys.argv[1:8]
    common = {"vtn_base_url": vtn, "allow_insecure_http": True, "version": OADRVersion.OADR_310}
    bl = BusinessLogicHttpClientFactory.create_http_bl_client(
        client_id=bl_id, client_secret=bl_secret, **common
    )
    ven = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        client_id=ven_id, client_secret=ven_secret, **common
    )
    other = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        client_id=other_id, client_secret=other_secret, **common
    )

    # the VEN enrols itself; BL grants it a group
    enrolled = ven.vens.create_ven(NewVenVenRequest(ven_name="interop-ven"))
    other.vens.create_ven(NewVenVenRequest(ven_name="interop-other"))
    bl.vens.update_ven_by_id(
        enrolled.id,
        VenUpdateBlRequest(ven_name="interop-ven", client_id=ven_id, targets=("group1",)),
    )

    program = bl.programs.create_program(NewProgram(program_name="interop-program"))
    start = datetime.now(UTC) + timedelta(hours=1)
    period = IntervalPeriod(start=start, duration=timedelta(hours=1))
    shed = Interval(
        id=0,
        interval_period=None,
        payloads=(EventPayload(type=EventPayloadType.IMPORT_CAPACITY_LIMIT, values=(3.5,)),),
    )
    events = {
        name: bl.events.create_event(
            NewEvent(
                programID=program.id,
                event_name=name,
                targets=targets,
                interval_period=period,
                intervals=(shed,),
            )
        )
        for name, targets in (("for-group1", ("group1",)), ("for-group2", ("group2",)))
    }

    seen = ven.events.get_events(target=None, pagination=None, program_id=None)
    seen_by_other = other.events.get_events(target=None, pagination=None, program_id=None)
    mine = events["for-group1"]
    report = ven.reports.create_report(
        NewReport(
            eventID=mine.id,
            client_name="interop-ven",
            resources=(
                ReportResource(
                    resource_name="AGGREGATED_REPORT",
                    interval_period=period,
                    intervals=(
                        Interval(
                            id=0,
                            interval_period=None,
                            payloads=(ReportPayload(type=ReportPayloadType.USAGE, values=(1.25,)),),
                        ),
                    ),
                ),
            ),
        )
    )
    read_by_bl = bl.reports.get_reports(
        pagination=None, program_id=None, event_id=mine.id, client_name=None
    )
    print(
        json.dumps(
            {
                "ven_sees": sorted(e.event_name or "" for e in seen),
                "ven_sees_targets": sorted(t for e in seen for t in (e.targets or ())),
                "other_sees": sorted(e.event_name or "" for e in seen_by_other),
                "report_id": report.id,
                "report_client": report.client_id,
                "bl_reads": [r.id for r in read_by_bl],
            }
        )
    )


if __name__ == "__main__":
    main()
