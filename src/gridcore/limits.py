"""What storage can hold, field by field: the one place these sizes are written.

The SQL tables take their column lengths from here, and the MQTT wire models
and the domain's constructors refuse what exceeds them, so that a message that
passes validation can always be stored (one that could not would fail its
whole batch's write; docs/decisions.md, "Edge validation matches storage").
Text columns on PostgreSQL also refuse NUL characters, JSON documents (jsonb)
refuse ``\\u0000`` and non-finite numbers; integer columns are 32-bit.
"""

from __future__ import annotations

VEN_ID_LENGTH = 128  # VEN ids travel in MQTT topics (gridcore.ven.validate_ven_id)
LOAD_ID_LENGTH = 128
EVENT_ID_LENGTH = 64  # evt- + 8 hex; VENs' own event ids (ui-evt-...) are longer
COMMAND_ID_LENGTH = 64  # correlationIds gridcore issues: {eventId}-{8 hex}
ACK_CORRELATION_ID_LENGTH = 255  # what an ACK may echo (stored even when unmatched)
NAME_LENGTH = 255  # VEN and load names
LOAD_TYPE_LENGTH = 64
EVENT_STATE_LENGTH = 16  # event statuses, command ops and states (ours)
ACK_STATUS_LENGTH = 64  # commands.ack_status: the ACK's status as answered
ACK_TEXT_LENGTH = 50  # ven_acks.op and .status as a VEN sends them
VEN_STATUS_LENGTH = 32  # ven_statuses.status
METHOD_LENGTH = 40  # baseline method names (high-4-of-5, meter-before-720)

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1  # Integer columns (a load's priority)
MAX_KW = 1e9  # any kW gridcore is asked for or told of delivering (a terawatt)
