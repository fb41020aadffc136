"""Live interactions through the edge: the synthetic agent's sessions (and the cleanup of its record),
the wait for each deployed gateway to be Online (ended early when its host's snapshot proves it
cannot be), and the command round trips to the gateways."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator

import pytest

from viworks_verify.backend.api import Timed
from viworks_verify.core.polling import NotReady, Ready, poll_until
from viworks_verify.core.verdict import fail
from viworks_verify.gateway.readiness import why_it_cannot_come_online
from viworks_verify.wire import protocol
from viworks_verify.wire.probe_agent import ProbeSession, UpgradeRefused, open_session, start_probe
from viworks_verify.wire.round_trips import RoundTrip, round_trips


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
        pytest.skip(
            f"{edge.wss_url()}: the agent path does not upgrade "
            f"(HTTP {exc.status}; see test_agent_path_upgrades_with_a_client_certificate)"
        )

    @contextlib.contextmanager
    def session() -> Iterator[ProbeSession]:
        connection, answer, upgrade_ms = start_probe(edge, agent_id, client_cert=cert, client_key=key)
        recorder.figure("wss upgrade (synthetic agent)", upgrade_ms, " ms", host=edge.edge.domain)
        if not answer.is_type(protocol.WELCOME):
            connection.close()
            fail(edge.wss_url(), expected=f"welcome for hello as {agent_id}", found=f"{answer.type} {answer.payload}")
        probe = ProbeSession(connection, agent_id, answer, upgrade_ms)
        try:
            yield probe
        finally:
            probe.close()
            try:
                poll_until(
                    lambda: api.agent_info(agent_id)["status"],
                    lambda s: s != "Online",
                    what=f"{agent_id} Offline",
                    timeout_s=timeout,
                )
            except NotReady as exc:
                fail(
                    f"agent://{agent_id}",
                    expected="Offline after its session closed",
                    found=f"{exc.last} after {timeout:.0f} s",
                )

    yield session
    forgotten = api.forget_agent(agent_id)
    if forgotten.status not in (204, 404):
        fail(f"agent://{agent_id}", "cleanup DELETE", expected="HTTP 204 or 404", found=f"HTTP {forgotten.status}")


@pytest.fixture(scope="session")
def registry_at_start(api) -> dict[str, dict]:
    """Every agent the backend lists, read once: a fleet's gateways that are already Online need no
    request of their own (empty when the list cannot be read: each gateway is then asked alone)."""
    return api.listed_agents() or {}


@pytest.fixture(scope="session")
def gateway_readiness(
    api, settings, deployed_agent_id, recorder, gateway_snapshot_of, registry_at_start
) -> Ready | NotReady:
    """Whether the deployed gateway became Online within the deadline: waited for once per run.

    The wait ends at once when the gateway's host snapshot proves it cannot come Online (host
    unreachable, unit not running, the agent logged that it cannot connect).
    """
    first = registry_at_start.get(deployed_agent_id)
    if first is not None and first.get("status") == "Online":
        return Ready(first, 0.0, 1)
    first = api.agent_info(deployed_agent_id)
    if first.get("status") != "Online":
        snapshot = gateway_snapshot_of(deployed_agent_id)
        proof = why_it_cannot_come_online(snapshot, settings.gateway.unit) if snapshot is not None else None
        if proof:
            return NotReady(f"gateway {deployed_agent_id}", 0.0, first, proof)
    try:
        ready = poll_until(
            lambda: api.agent_info(deployed_agent_id),
            lambda info: info.get("status") == "Online",
            what=f"gateway {deployed_agent_id}",
            timeout_s=settings.timing.ready_timeout_s,
        )
    except NotReady as exc:
        return exc
    recorder.figure("gateway Online readiness", ready.elapsed_s * 1000, " ms", host=deployed_agent_id)
    return ready


@pytest.fixture(scope="session")
def latest_telemetry(api, deployed_agents) -> dict[str, Timed]:
    """Every deployed gateway's latest telemetry as the API answers it, asked for all at once: a fleet
    costs the time of one request, not one per gateway."""
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=min(len(deployed_agents), 16) or 1, thread_name_prefix="viworks-telemetry"
    ) as pool:
        return dict(zip(deployed_agents, pool.map(api.agent_telemetry, deployed_agents)))


@pytest.fixture(scope="session")
def online_gateway(gateway_readiness, deployed_agent_id) -> str:
    """The deployed gateway's id, once it is Online; checks that need it skip with the reason otherwise."""
    if isinstance(gateway_readiness, NotReady):
        last = (
            gateway_readiness.last if isinstance(gateway_readiness.last, dict) else {"status": gateway_readiness.last}
        )
        pytest.skip(f"agent://{deployed_agent_id} is {last.get('status')} (see test_deployed_gateway_is_online)")
    return deployed_agent_id


@pytest.fixture(scope="session")
def system_health_round_trips(api, settings, deployed_agents, started_round_trips) -> dict[str, RoundTrip]:
    """get_system_health to every Online gateway, all at once: the ones sent at session start, and
    now the ones that were not Online then."""
    sent = {agent_id: trip for agent_id, trip in started_round_trips.items() if trip.submitted.status == 201}
    missing = [agent_id for agent_id in deployed_agents if agent_id not in sent]
    return {**sent, **round_trips(api, missing, settings.timing.ready_timeout_s)}
