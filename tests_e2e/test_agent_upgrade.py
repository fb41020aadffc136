"""The agent path on the edge: mTLS enforced, a real WebSocket upgrade, never a plain page."""

from __future__ import annotations

import ssl
import time

import httpx
import pytest

from viworks_verify.core.verdict import fail
from viworks_verify.pki import certs
from viworks_verify.wire.probe_agent import UpgradeRefused, open_session, upgrade_status
from viworks_verify.wire.protocol import websocket_accept

pytestmark = [pytest.mark.e2e, pytest.mark.tls, pytest.mark.area("tls")]


@pytest.mark.smoke
@pytest.mark.area("session")
def test_agent_path_upgrades_with_a_client_certificate(verified_edge, probe_identity, recorder):
    edge = verified_edge
    cert, key = probe_identity
    url = edge.wss_url()
    started = time.perf_counter()
    try:
        session = open_session(edge, client_cert=cert, client_key=key)
    except UpgradeRefused as exc:
        fail(url, expected="HTTP 101 with the suite's client certificate", found=f"HTTP {exc.status} {exc.body!r}")
    recorder.figure(
        "wss upgrade (mTLS through the edge)", (time.perf_counter() - started) * 1000, " ms", host=edge.edge.domain
    )
    with session:
        status = session.response.status_code
        accept = session.response.headers.get("Sec-WebSocket-Accept")
        expected = websocket_accept(session.request.headers["Sec-WebSocket-Key"])
    if status != 101:
        fail(url, expected="HTTP 101 Switching Protocols", found=f"{status}")
    if accept != expected:
        fail(url, expected=f"Sec-WebSocket-Accept {expected}", found=f"{accept}")


@pytest.mark.smoke
@pytest.mark.area("nginx")
def test_agent_path_is_not_a_plain_page(verified_edge, probe_identity):
    """The real outage: nginx sent the agent path to the API port, which answered 200 JSON."""
    edge = verified_edge
    cert, key = probe_identity
    context = edge.tls_context(client_cert=cert, client_key=key)
    with httpx.Client(verify=context, timeout=edge.timeout_s) as http:
        response = http.get(
            edge.https_url(edge.edge.ws_path), headers=edge.host_header, extensions=edge.request_extensions
        )
    if response.status_code == 200:
        fail(
            edge.wss_url(),
            expected="a refusal of a plain GET (400/426, the path only upgrades)",
            found=f"HTTP 200 {response.headers.get('content-type', '')} {response.text[:80]!r}",
        )


def _refused(edge, cert, key) -> int | None:
    """The refusal's HTTP status, None when refused during the TLS handshake; fails on a 101."""
    try:
        status = upgrade_status(edge, client_cert=cert, client_key=key)
    except ssl.SSLError:
        return None  # ssl_verify_client on: the handshake itself fails, which is a refusal too
    except httpx.RemoteProtocolError:
        return None  # closed after a TLS alert
    return status


@pytest.mark.smoke
def test_upgrade_without_a_client_certificate_is_refused(verified_edge):
    status = _refused(verified_edge, None, None)
    if status == 101:
        fail(
            verified_edge.wss_url(), expected="the upgrade to be refused without a client certificate", found="HTTP 101"
        )
    if status not in (None, 400, 401, 403, 495, 496):
        fail(verified_edge.wss_url(), "no client certificate", expected="a refusal (403)", found=f"HTTP {status}")


@pytest.mark.smoke
def test_upgrade_with_a_certificate_from_another_ca_is_refused(verified_edge, settings, tmp_path):
    foreign_ca = certs.new_ca("Not The Internal CA")
    impostor = certs.issue(foreign_ca, settings.probe.agent_id, server=False)
    (tmp_path / "impostor.crt").write_bytes(impostor.cert_pem())
    (tmp_path / "impostor.key").write_bytes(impostor.key_pem())
    status = _refused(verified_edge, tmp_path / "impostor.crt", tmp_path / "impostor.key")
    if status == 101:
        fail(verified_edge.wss_url(), expected="a client certificate from another CA to be refused", found="HTTP 101")
    if status not in (None, 400, 401, 403, 495):
        fail(verified_edge.wss_url(), "foreign client certificate", expected="a refusal", found=f"HTTP {status}")


@pytest.mark.smoke
@pytest.mark.area("network")
def test_plain_ws_on_port_80_does_not_reach_the_backend_agent(edge):
    """The real outage: a gateway bypassing TLS with ws://. Port 80 may redirect or not exist."""
    url = f"http://{edge.address}:{edge.edge.http_port}{edge.edge.ws_path}"
    headers = {
        **edge.host_header,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    try:
        response = httpx.get(url, headers=headers, timeout=edge.timeout_s)
    except httpx.TransportError:
        return  # nothing listens on port 80
    plain_url = f"ws://{edge.edge.domain}{edge.edge.ws_path}"
    if response.status_code == 101:
        fail(plain_url, expected="no upgrade over plain HTTP", found="HTTP 101")
    if response.status_code not in (301, 302, 307, 308, 400, 403, 404, 426):
        fail(plain_url, expected="a redirect to https or a refusal", found=f"HTTP {response.status_code}")
