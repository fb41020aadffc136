"""One cause, one failure: the host-level fact that makes a gateway's other checks meaningless.

When the agent's unit is not loaded (masked, not found), when the program at its ExecStart is not
there, or when the unit is not running, a dozen checks would each fail in their own words (no
process, no session, not Online, no telemetry...) and leave the operator to find the cause. Here
the cause is judged once, from the snapshot; one check reports it and the checks that need what it
breaks are skipped naming it. Sans-I/O: snapshot in, ``Blocker`` or None out.

Levels, each needing the ones before it: ``loaded`` (the unit is loaded), ``program`` (its ExecStart
program is an executable file), ``running`` (the unit is active). A check declares the level it
needs (``@pytest.mark.needs_agent("running")``); a blocker at that level or below skips it.
"""

from __future__ import annotations

import dataclasses

from viworks_verify.gateway.snapshot import GatewaySnapshot
from viworks_verify.gateway.systemd_unit import UnitProperties

LEVELS = ("loaded", "program", "running")
UNIT_CHECK = "test_unit_is_loaded_enabled_and_active"
PROGRAM_CHECK = "test_unit_program_exists_and_is_executable"
RUNNING_STATES = ("active", "reloading")


@dataclasses.dataclass(frozen=True)
class Blocker:
    level: str  # one of LEVELS: what is missing
    cause: str  # one line, host first
    reported_by: str  # the check whose finding it is

    def blocks(self, needed: str) -> bool:
        """Whether a check that needs ``needed`` is meaningless under this blocker."""
        return LEVELS.index(self.level) <= LEVELS.index(needed)


def agent_blocker(snapshot: GatewaySnapshot, unit_name: str) -> Blocker | None:
    """The first level the agent does not reach on this host; None when its unit is loaded, its
    program there and the unit running (or when the unit could not be read: that fact's own problem)."""
    if not snapshot.connection.ok or not snapshot.unit.ok:
        return None
    unit = snapshot.unit.value or UnitProperties(unit_name, {})
    host = snapshot.host
    load = unit.get("LoadState")
    if load != "loaded":
        state = unit.get("UnitFileState")
        return Blocker(
            "loaded",
            f"{host}: {unit_name} is not loaded (LoadState={load or '?'}"
            f"{', UnitFileState=' + state if state else ''}): nothing of the agent runs",
            UNIT_CHECK,
        )
    program = unit.exec_start_path
    if program is None:
        return Blocker(
            "program", f"{host}: {unit_name} has no ExecStart program: the agent cannot start", PROGRAM_CHECK
        )
    files = snapshot.files.value if snapshot.files.ok else None
    if files is not None:
        facts = files.get(program)
        if facts is None or not facts.executable:
            found = files.absence(program) if facts is None else f"is a {facts.kind} mode {facts.octal}, not executable"
            return Blocker(
                "program", f"{host}: {unit_name}: ExecStart={program} {found}: the agent cannot start", PROGRAM_CHECK
            )
    active = unit.get("ActiveState")
    if active not in RUNNING_STATES:
        return Blocker(
            "running",
            f"{host}: {unit_name} is not running (ActiveState={active or '?'}, SubState={unit.get('SubState') or '?'})",
            UNIT_CHECK,
        )
    return None
