"""The suite's synthetic agent: sessions that register, and cleanup of its registry record."""

from __future__ import annotations

import contextlib
from typing import Iterator

import pytest

from viworks_verify import protocol
from viworks_verify.polling import NotReady, poll_until
from viworks_verify.probe_agent import ProbeSession, start_probe


@pytest.fixture(scope="module")
def probe_sessions(edge, settings, probe_identity, api, recorder):
    """Open welcomed sessions of the synthetic agent; each closes and is seen Offline on exit.

    At the end of the module the agent's registry record is removed: nothing is left behind.
    """
    agent_id = settings.probe.agent_id
    cert, key = probe_identity
    timeout = settings.timing.ready_timeout_s

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
