"""gridcore: the pure domain of a demand-response control core.

Plain Python, standard library only: DR events and their lifecycle, shed
allocation across VENs, the VEN-side curtailment plan, and command/ACK
correlation. Storage, brokers and the web live in ``adapters`` and
``entrypoints`` and reach the domain through :mod:`gridcore.ports`.
"""

from gridcore.allocation import allocate_shed, allocate_watts
from gridcore.correlation import (
    AckMatch,
    AckOutcome,
    Command,
    CommandLedger,
    CommandOp,
    CommandState,
    VenAck,
    apply_ack,
    new_correlation_id,
)
from gridcore.curtailment import (
    SHED_ORDER,
    Circuit,
    CircuitCurtailment,
    CurtailmentPlan,
    classify_load,
    plan_curtailment,
)
from gridcore.errors import (
    DomainError,
    IllegalTransition,
    InvalidInput,
    NotFound,
    RetriesExhausted,
)
from gridcore.events import DrEvent, EventStatus, new_event_id
from gridcore.telemetry import (
    CircuitSnapshot,
    DeadLetter,
    HistoryPoint,
    LoadSample,
    LoadTypeStats,
    NetworkStats,
    Page,
    TelemetrySample,
    parse_granularity,
)
from gridcore.ven import Connectivity, Load, LoadType, Location, Ven, connectivity

__all__ = [
    "SHED_ORDER",
    "AckMatch",
    "AckOutcome",
    "Circuit",
    "CircuitCurtailment",
    "CircuitSnapshot",
    "Command",
    "CommandLedger",
    "CommandOp",
    "CommandState",
    "Connectivity",
    "CurtailmentPlan",
    "DeadLetter",
    "DomainError",
    "DrEvent",
    "EventStatus",
    "HistoryPoint",
    "IllegalTransition",
    "InvalidInput",
    "Load",
    "LoadSample",
    "LoadType",
    "LoadTypeStats",
    "Location",
    "NetworkStats",
    "NotFound",
    "Page",
    "RetriesExhausted",
    "TelemetrySample",
    "Ven",
    "VenAck",
    "allocate_shed",
    "allocate_watts",
    "apply_ack",
    "classify_load",
    "connectivity",
    "new_correlation_id",
    "new_event_id",
    "parse_granularity",
    "plan_curtailment",
]
