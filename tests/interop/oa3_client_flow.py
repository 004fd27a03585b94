"""The OpenADR 3.1 flow driven by python-oa3-client 0.5.0 (and the openadr3
library under it), run in their own venv by tests/e2e/test_openadr_interop.py.
Nothing of gridcore's is imported.

argv: base URL, BL client id and secret, VEN client id and secret, another
VEN's client id and secret. Prints one JSON line of what each client saw.

The library's own name lookups (find_ven_by_name, find_program_by_name,
hence VenClient.subscribe(program_names=...)) filter with OpenADR 3.0's
targetType/targetValues, which a 3.1 VTN does not define (gridcore answers
400); register() then creates the ven, and the subscription is created
with the library's create_subscription in the shape its subscribe() sends.
"""

from __future__ import annotations

import json
import sys

from openadr3_client import BlClient, VenClient

CALLBACK_TOKEN = "oa3-callback-token-0123"


def main() -> None:
    base, bl_id, bl_secret, ven_id, ven_secret, other_id, other_secret = sys.argv[1:8]
    bl = BlClient(url=base, client_id=bl_id, client_secret=bl_secret).start()
    ven = VenClient(url=base, client_id=ven_id, client_secret=ven_secret).start()
    other = VenClient(url=base, client_id=other_id, client_secret=other_secret).start()
    try:
        ven.register("oa3-ven-1")  # VEN_VEN_REQUEST
        other.register("oa3-ven-2")
        for client, registered, group in ((ven_id, ven, "group1"), (other_id, other, "group2")):
            granted = bl.update_ven(
                registered.ven_id,
                {
                    "objectType": "BL_VEN_REQUEST",
                    "venName": registered.ven_name,
                    "clientID": client,
                    "targets": [group],
                },
            )
            granted.raise_for_status()
        notifiers = ven.discover_notifiers()
        created = bl.create_program({"programName": "oa3-program"})
        created.raise_for_status()
        program_id = created.json()["id"]

        channel = ven.add_webhook(host="127.0.0.1", port=0, bearer_token=CALLBACK_TOKEN)
        channel.start()
        subscribed = ven.create_subscription(
            {
                "clientName": ven.ven_name,
                "programID": program_id,
                "objectOperations": [
                    {
                        "objects": ["EVENT"],
                        "operations": ["CREATE"],
                        "callbackUrl": channel.callback_url,
                        "bearerToken": CALLBACK_TOKEN,
                    }
                ],
            }
        )
        subscribed.raise_for_status()

        interval = {
            "id": 0,
            "intervalPeriod": {"start": "2026-12-03T17:00:00Z", "duration": "PT1H"},
            "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [2.5]}],
        }
        for name, group in (("for-group1", "group1"), ("for-group2", "group2")):
            event = bl.create_event(
                {
                    "programID": program_id,
                    "eventName": name,
                    "targets": [group],
                    "intervals": [interval],
                }
            )
            event.raise_for_status()

        # the library's webhook receiver checks the bearer token (403 otherwise)
        received = channel._receiver.await_messages(n=1, timeout=20.0)
        notification = received[0].payload if received else None
        ven_events = ven.events()
        other_events = other.events()
        mine = ven_events[0]
        report = ven.create_report(
            {
                "eventID": mine.id,
                "clientName": ven.ven_name,
                "reportName": "shed",
                "resources": [
                    {
                        "resourceName": "home-battery",
                        "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1.2]}]}],
                    }
                ],
            }
        )
        report.raise_for_status()
        bl_reads = [r.id for r in bl.reports(eventID=mine.id)]
        channel.stop()
        print(
            json.dumps(
                {
                    "notifiers": notifiers,
                    "notified": len(received),
                    "notification_type": getattr(notification, "object_type", None),
                    "notification_operation": getattr(notification, "operation", None),
                    "notification_event": getattr(
                        getattr(notification, "object", None), "event_name", None
                    ),
                    "notification_targets": getattr(
                        getattr(notification, "object", None), "targets", None
                    ),
                    "ven_sees": [e.event_name for e in ven_events],
                    "ven_sees_targets": mine.targets,
                    "other_sees": [e.event_name for e in other_events],
                    "report_id": report.json()["id"],
                    "report_client": report.json()["clientID"],
                    "bl_reads": bl_reads,
                }
            )
        )
    finally:
        ven.stop()
        other.stop()
        bl.stop()


if __name__ == "__main__":
    main()
