"""Whether waiting for a gateway to come Online can still help, judged on its host's snapshot.

Waiting is for what may still happen. A gateway whose host does not answer, whose unit is not
running, or whose agent has logged since its start that it cannot connect (and never that it did)
will not come Online by waiting: the wait ends at once and says which.
"""

from __future__ import annotations

from viworks_verify.gateway.blockers import agent_blocker
from viworks_verify.gateway.env import AGENT_ID
from viworks_verify.gateway.snapshot import GatewaySnapshot


def serves_agent(snapshot: GatewaySnapshot, agent_id: str) -> bool:
    """The gateway host that runs ``agent_id``: by its .env, else by its inventory name."""
    env = snapshot.env.value if snapshot.env.ok else None
    return (env or {}).get(AGENT_ID, snapshot.name) == agent_id


def why_it_cannot_come_online(snapshot: GatewaySnapshot, unit_name: str) -> str | None:
    """The fact that proves waiting is useless, in words for a failure message; None when it may still come."""
    if not snapshot.connection.ok:
        return snapshot.connection.problem
    blocker = agent_blocker(snapshot, unit_name)  # the unit not loaded, its program missing, not running
    if blocker is not None:
        return blocker.cause
    logged = snapshot.journal.value if snapshot.journal.ok else None
    if logged and logged.looked_for and not logged.connected and logged.trouble:
        return f"{snapshot.host}: the agent logged since its start that it cannot connect: {(logged.quote or '')[:200]}"
    return None
