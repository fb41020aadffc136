"""The command round trip to every deployed gateway at once: ``get_system_health``, sent and settled.

A round trip costs the agent a CPU sample (a few hundred ms). Sent one gateway after another, a
fleet of eight would cost the gate seconds; sent together it costs one, and started as soon as the
edge answers, it runs while the host checks are judged.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from typing import Any

from viworks_verify.backend.api import BackendApi
from viworks_verify.core.polling import NotReady, Ready

VERB = "get_system_health"  # read-only: the smoke gate sends nothing else to a real gateway


@dataclasses.dataclass(frozen=True)
class RoundTrip:
    """One command sent to a gateway: what the API answered, and the command once settled."""

    agent_id: str
    submitted: Any  # the POST's Timed answer
    settled: Ready | NotReady | None  # None: not accepted (no 201); Ready's value: the settled command


def round_trip(api: BackendApi, agent_id: str, timeout_s: float) -> RoundTrip:
    submitted = api.submit_command(VERB, {}, [agent_id], timeout_s=30)
    if submitted.status != 201:
        return RoundTrip(agent_id, submitted, None)
    correlation_id = submitted.json()["correlation_id"]
    started = time.monotonic()
    try:
        command = api.wait_for_command(correlation_id, timeout_s)
        settled: Ready | NotReady = Ready(command, time.monotonic() - started, 0)
    except NotReady as exc:
        settled = exc
    return RoundTrip(agent_id, submitted, settled)


def round_trips(api: BackendApi, agent_ids: list[str], timeout_s: float) -> dict[str, RoundTrip]:
    """A round trip to each of ``agent_ids`` that is Online now, all at once."""
    listed = api.listed_agents()
    if listed is None:  # no list: each agent asked alone
        listed = {agent_id: api.agent_info(agent_id) for agent_id in agent_ids}
    online = [agent_id for agent_id in agent_ids if (listed.get(agent_id) or {}).get("status") == "Online"]
    if not online:
        return {}
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=min(len(online), 16), thread_name_prefix="viworks-round-trip"
    ) as pool:
        return dict(zip(online, pool.map(lambda agent_id: round_trip(api, agent_id, timeout_s), online)))
