"""The VEN simulator (``gridcore ven``): N simulated homes with smart panels
that publish telemetry, shadows and load snapshots, and answer DR commands,
as the original documents describe the VEN side (issue 7).

Modules: ``profiles`` (daily load shapes, seeded noise), ``panel`` (a home's
circuits, solar, battery), ``shedding`` (curtailment state and baseline),
``payloads`` (the JSON a VEN sends), ``ven`` (one VEN's rules, no I/O),
``shard`` (VENs sharing a connection: I/O and timing), ``fleet`` (the fleet)
and ``run`` (wiring from settings).
"""

from entrypoints.simulator.fleet import Fleet, FleetConfig, run_fleet
from entrypoints.simulator.run import run_simulator
from entrypoints.simulator.ven import Behaviour, SimulatedVen

__all__ = ["Behaviour", "Fleet", "FleetConfig", "SimulatedVen", "run_fleet", "run_simulator"]
