"""Exposure: the edge is the only way in, and the identity it passes on is the certificate's, never the client's.

From the runner, as a client on the network: the backend agent's own ports must not answer, and
through the edge a forged identity header must change nothing (CONTRACT "Exposure").
"""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail
from viworks_verify.wire import protocol
from viworks_verify.wire.exposure import forged_identity, probe_api_port, probe_ws_port
from viworks_verify.wire.probe_agent import UpgradeRefused, start_probe

pytestmark = [pytest.mark.e2e, pytest.mark.backend, pytest.mark.area("network")]

DIRECT_TIMEOUT_S = 2.0  # a port that does not answer in this long is not reachable, as far as a client can tell


@pytest.fixture(scope="session")
def forged_agent_id(settings) -> str:
    """The id a forger claims: the suite's own, marked (never a real gateway's, never live)."""
    return f"{settings.probe.agent_id}-forged"


def _forget(request, agent_id: str) -> None:
    """A forged hello that was welcomed left a registry record: remove it (best effort, the check has failed anyway)."""
    try:
        request.getfixturevalue("api_with_token").forget_agent(agent_id)
    except Exception:
        pass


@pytest.mark.smoke
def test_backend_agent_ports_are_not_reachable_around_the_edge(public_address, settings, forged_agent_id, request):
    """The real hole: 8080-8081 published on every address, a gateway pointed at ws://<ip>:8081."""
    backend = settings.backend
    forged = forged_identity(backend.identity_headers, forged_agent_id)
    answers = [
        probe_api_port(public_address, backend.api_port, DIRECT_TIMEOUT_S),
        probe_ws_port(
            public_address, backend.ws_port, settings.edge.ws_path, forged, forged_agent_id, DIRECT_TIMEOUT_S
        ),
    ]
    if any(answer.welcomed for answer in answers):
        _forget(request, forged_agent_id)
    reached = [answer for answer in answers if answer.reached]
    if reached:
        fail(
            f"tcp://{public_address}",
            expected="the backend agent's ports unreachable from outside (only nginx, over the Docker networks)",
            found="; ".join(f"{answer.port}/tcp {answer.what}" for answer in reached),
        )


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("identity")
def test_a_forged_identity_header_does_not_choose_the_agent_id(
    verified_edge, settings, probe_identity, forged_agent_id, request
):
    """With a good certificate plus a forged identity header, the hello as the forged id is refused."""
    cert, key = probe_identity
    forged = forged_identity(settings.backend.identity_headers, forged_agent_id)
    try:
        session, answer, _ = start_probe(
            verified_edge, forged_agent_id, client_cert=cert, client_key=key, headers=forged
        )
    except UpgradeRefused as exc:
        pytest.skip(
            f"{verified_edge.wss_url()}: the agent path does not upgrade "
            f"(HTTP {exc.status}; see test_agent_path_upgrades_with_a_client_certificate)"
        )
    session.close()
    if answer.is_type(protocol.WELCOME):
        _forget(request, forged_agent_id)
        fail(
            verified_edge.wss_url(),
            f"a hello as {forged_agent_id} with the certificate of {settings.probe.agent_id} and forged headers "
            f"({', '.join(f'{k}: {v}' for k, v in forged.items())})",
            expected="a refusal",
            found="welcomed",
            evidence=f"nginx must set {settings.backend.identity_headers[0]} from the verified certificate, "
            "not pass the client's",
        )


@pytest.mark.smoke
@pytest.mark.area("identity")
def test_the_api_decides_nothing_on_a_forged_identity_header(anonymous_api, settings, forged_agent_id):
    """On ``location /`` the identity headers carry no authority: without a token, forged headers still get 401."""
    forged = forged_identity(settings.backend.identity_headers, forged_agent_id)
    status = anonymous_api.request("GET", "/api/v1/agents", auth=False, headers=forged).status
    if status != 401:
        fail(
            f"{anonymous_api.endpoint.edge.domain}/api/v1/agents",
            f"without a token, with forged {', '.join(forged)}",
            expected="HTTP 401",
            found=f"{status}",
        )
