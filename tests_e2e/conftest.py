"""The suite's synthetic agent: sessions that register, and cleanup of its registry record."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
from typing import Any, Iterator

import pytest

from viworks_verify import protocol
from viworks_verify.gateway_readiness import why_it_cannot_come_online
from viworks_verify.polling import NotReady, Ready, poll_until
from viworks_verify.probe_agent import ProbeSession, UpgradeRefused, open_session, start_probe


@pytest.fixture(scope="module")
def probe_sessions(verified_edge, settings, probe_identity, api, recorder):
    """Open welcomed sessions of the synthetic agent; each closes and is seen Offline on exit.

    At the end of the module the agent's registry record is removed: nothing is left behind.
    """
    edge = verified_edge
    agent_id = settings.probe.agent_id
    cert, key = probe_identity
    timeout = settings.timing.ready_timeout_s
    try:
        open_session(edge, client_cert=cert, client_key=key).close()
    except UpgradeRefused as exc:
        pytest.skip(f"{edge.wss_url()}: the agent path does not upgrade (HTTP {exc.status}; see test_agent_path_upgrades_with_a_client_certificate)")

    @contextlib.contextmanager
    def session() -> Iterator[ProbeSession]:
        connection, answer, upgrade_ms = start_probe(edge, agent_id, client_cert=cert, client_key=key)
        recorder.figure("wss upgrade (synthetic agent)", upgrade_ms, " ms", host=edge.edge.domain)
        if not answer.is_type(protocol.WELCOME):
            connection.close()
            pytest.fail(f"{edge.wss_url()}: expected welcome for hello as {agent_id}; found {answer.type} {answer.payload}", pytrace=False)
        probe = ProbeSession(connection, agent_id, answer, upgrade_ms)
        try:
            yield probe
        finally:
            probe.close()
            try:
                poll_until(lambda: api.agent_info(agent_id)["status"], lambda s: s != "Online", what=f"{agent_id} Offline", timeout_s=timeout)
            except NotReady as exc:
                pytest.fail(f"agent://{agent_id}: expected Offline after its session closed; found {exc.last} after {timeout:.0f} s", pytrace=False)

    yield session
    forgotten = api.forget_agent(agent_id)
    assert forgotten.status in (204, 404), f"agent://{agent_id}: cleanup DELETE answered HTTP {forgotten.status}"


@pytest.fixture(scope="session")
def gateway_readiness(api, settings, deployed_agent_id, recorder, gateway_snapshot_of) -> Ready | NotReady:
    """Whether the deployed gateway became Online within the deadline: waited for once per run.

    The wait ends at once when the gateway's host snapshot proves it cannot come Online (host
    unreachable, unit not running, the agent logged that it cannot connect).
    """
    first = api.agent_info(deployed_agent_id)
    if first.get("status") != "Online":
        snapshot = gateway_snapshot_of(deployed_agent_id)
        proof = why_it_cannot_come_online(snapshot, settings.gateway.unit) if snapshot is not None else None
        if proof:
            return NotReady(f"gateway {deployed_agent_id}", 0.0, first, proof)
    try:
        ready = poll_until(lambda: api.agent_info(deployed_agent_id), lambda info: info.get("status") == "Online",
                           what=f"gateway {deployed_agent_id}", timeout_s=settings.timing.ready_timeout_s)
    except NotReady as exc:
        return exc
    recorder.figure("gateway Online readiness", ready.elapsed_s * 1000, " ms", host=deployed_agent_id)
    return ready


@pytest.fixture(scope="session")
def online_gateway(gateway_readiness, deployed_agent_id) -> str:
    """The deployed gateway's id, once it is Online; checks that need it skip with the reason otherwise."""
    if isinstance(gateway_readiness, NotReady):
        last = gateway_readiness.last if isinstance(gateway_readiness.last, dict) else {"status": gateway_readiness.last}
        pytest.skip(f"agent://{deployed_agent_id} is {last.get('status')} (see test_deployed_gateway_is_online)")
    return deployed_agent_id


@dataclasses.dataclass(frozen=True)
class RoundTrip:
    """One get_system_health sent to a gateway: what the API answered, and the command once settled."""

    submitted: Any  # the POST's Timed answer
    settled: Ready | NotReady | None  # None: not accepted (no 201)


@pytest.fixture(scope="session")
def system_health_round_trips(api, settings, deployed_agents) -> dict[str, RoundTrip]:
    """get_system_health sent to every Online gateway at once, each polled until settled, concurrently.

    A round trip costs the agent a CPU sample (~0.3 s): sent one gateway after another, a fleet of
    eight would cost the gate seconds; sent together it costs one.
    """
    agent_ids = [agent_id for agent_id in deployed_agents if api.agent_info(agent_id).get("status") == "Online"]

    def round_trip(agent_id: str) -> RoundTrip:
        submitted = api.submit_command("get_system_health", {}, [agent_id], timeout_s=30)
        if submitted.status != 201:
            return RoundTrip(submitted, None)
        correlation_id = submitted.json()["correlation_id"]
        try:
            settled = poll_until(lambda: api.command(correlation_id).json(),
                                 lambda command: command.get("status") not in ("Pending", "Executing"),
                                 what=f"command {correlation_id}", timeout_s=settings.timing.ready_timeout_s,
                                 interval_s=0.05, max_interval_s=0.25)
        except NotReady as exc:
            settled = exc
        return RoundTrip(submitted, settled)

    if not agent_ids:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(agent_ids), 16)) as pool:
        return dict(zip(agent_ids, pool.map(round_trip, agent_ids)))
