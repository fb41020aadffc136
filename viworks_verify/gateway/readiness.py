"""Whether waiting for a gateway to come Online can still help, judged on its host's snapshot.

Waiting is for what may still happen. A gateway whose host does not answer, whose unit is not
running, or whose agent has logged since its start that it cannot connect (and never that it did)
will not come Online by waiting: the wait ends at once and says which.
"""

from __future__ import annotations

from viworks_verify.gateway.env import AGENT_ID
from viworks_verify.gateway.systemd_unit import UnitProperties
from viworks_verify.gather.snapshot import GatewaySnapshot

_RUNNING = ("active", "reloading")


def serves_agent(snapshot: GatewaySnapshot, agent_id: str) -> bool:
    """The gateway host that runs ``agent_id``: by its .env, else by its inventory name."""
    env = snapshot.env.value if snapshot.env.ok else None
    return (env or {}).get(AGENT_ID, snapshot.name) == agent_id


def why_it_cannot_come_online(snapshot: GatewaySnapshot, unit_name: str) -> str | None:
    """The fact that proves waiting is useless, in words for a failure message; None when it may still come."""
    if not snapshot.connection.ok:
        return snapshot.connection.problem
    if snapshot.unit.ok:
        unit = UnitProperties(unit_name, dict(snapshot.unit.value))
        state = unit.get("ActiveState")
        if state not in _RUNNING:
            return f"{snapshot.host}: {unit_name} is not running (ActiveState={state or '?'}, SubState={unit.get('SubState') or '?'})"
    logged = snapshot.journal.value if snapshot.journal.ok else None
    if logged and logged.get("looked_for", True) and not logged.get("connected") and logged.get("trouble"):
        return f"{snapshot.host}: the agent logged since its start that it cannot connect: {logged.get('telling', '')[:200]}"
    return None
