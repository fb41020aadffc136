"""Facts that hold only across hosts: the gateway trusts what the backend serves and is trusted by it, and
the clocks agree (signed commands carry iat/exp; a skewed clock rejects them or accepts replays)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes

from viworks_verify.core import clock
from viworks_verify.core.verdict import fail
from viworks_verify.gateway.env import CERT_PATH, SPKI_PIN
from viworks_verify.pki import certs
from viworks_verify.pki.pins import PinFormatError, matching_pin, parse_pins, spki_pin

pytestmark = [pytest.mark.infra, pytest.mark.area("tls")]


# ------------------------------------------------------------------------------ gateway facts


def _fingerprint(certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()[:16]


def _named(certificates) -> str:
    return (
        ", ".join(f"{c.subject.rfc4514_string() or '(no subject)'} [sha256 {_fingerprint(c)}…]" for c in certificates)
        or "none"
    )


# ---------------------------------------------------------------------------------------- TLS


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.gateway
def test_gateway_pin_matches_the_served_certificate(gateway_host, edge_snapshot, gateway_env, config_source, settings):
    configured_text = gateway_env.get(SPKI_PIN, "")
    try:
        configured = parse_pins(configured_text)
    except PinFormatError as exc:
        pytest.skip(f"{gateway_host.id}: {SPKI_PIN} unusable ({exc}); test_backend_pin_is_well_formed reports it")
    edge_snapshot.connection.require()
    leaf = edge_snapshot.served_leaf.require().leaf
    match = matching_pin(configured, leaf)
    if match is None:
        fail(
            gateway_host.id,
            f"{SPKI_PIN} in {config_source(SPKI_PIN)}",
            expected="the gateway to pin the served key "
            f"({edge_snapshot.domain} serves a certificate with pin {spki_pin(leaf)})",
            found=", ".join(p.value for p in configured),
            evidence="update the pin, or the certificate nginx serves",
        )


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.gateway
@pytest.mark.backend
def test_gateway_client_certificate_chains_to_the_cas_nginx_verifies_clients_with(
    gateway_host, backend_host, gateway_snapshot, gateway_env, agent_server, nginx_tls_files, settings
):
    """nginx accepts the gateway: its client certificate (with the intermediates its file carries,
    which it sends) leads by signatures to a CA of nginx's ssl_client_certificate."""
    path = gateway_env.get(CERT_PATH)
    if not gateway_snapshot.client_certificate.ok:
        pytest.skip(f"{gateway_snapshot.client_certificate.problem}; the gateway checks report it")
    certificate, intermediates = (
        gateway_snapshot.client_certificate.value.leaf,
        gateway_snapshot.client_certificate.value.after_leaf,
    )

    server = agent_server.require()
    nginx = settings.backend.nginx_container
    client_ca_path = server.client_ca_path
    if not client_ca_path:
        fail(
            backend_host.id,
            f"{nginx}: server {settings.edge.domain}",
            expected="ssl_client_certificate naming the internal CA that issued the gateway's certificate",
            found="no ssl_client_certificate",
        )
    ca_file = nginx_tls_files.require().get(client_ca_path)
    if ca_file is None or ca_file.content is None:
        pytest.skip(f"{backend_host.id}: {nginx}: {client_ca_path} cannot be read; the nginx checks report it")
    try:
        nginx_cas = certs.load_pem_certificates(ca_file.content)
    except ValueError:
        pytest.skip(
            f"{backend_host.id}: {nginx}: {client_ca_path} holds no PEM certificate; the nginx checks report it"
        )

    # Signatures, not bytes or names: the same CA in another layout, order or bundle is the same CA.
    if not certs.chains_to(certificate, nginx_cas, intermediates):
        fail(
            gateway_host.id,
            path,
            expected=f"the gateway's certificate to chain to one of them, the CAs {backend_host.id}: {nginx} "
            f"verifies clients with ({client_ca_path}: {_named(nginx_cas)})",
            found=f"it issued by {certificate.issuer.rfc4514_string()}"
            f"{' (with ' + _named(intermediates) + ')' if intermediates else ''}",
            evidence="nginx refuses it",
        )


# -------------------------------------------------------------------------------------- clocks


@pytest.fixture(scope="session")
def clock_skews(recorder):
    """Each host's clock against the runner's, as its snapshot measured it (``skew(snapshot) -> clock.Skew``)."""
    recorded: set[str] = set()

    def skew(snapshot) -> clock.Skew:
        found = snapshot.clock_skew.require()
        if snapshot.host not in recorded:
            recorded.add(snapshot.host)
            recorder.figure("clock skew vs runner", abs(found.seconds), " s", host=snapshot.host)
        return found

    return skew


def _check_against_runner(host, skew: clock.Skew, limit: float) -> None:
    if skew.exceeds(limit):
        fail(
            host.id,
            "clock",
            expected=f"within {limit:.0f} s of the runner",
            found=skew.describe(),
            evidence="check NTP on the host",
        )


@pytest.mark.smoke
@pytest.mark.gateway
@pytest.mark.area("session")
def test_gateway_clock_matches_the_runner(gateway_host, gateway_snapshot, clock_skews, settings):
    _check_against_runner(gateway_host, clock_skews(gateway_snapshot), settings.timing.clock_skew_max_s)


@pytest.mark.smoke
@pytest.mark.backend
@pytest.mark.area("session")
def test_backend_clock_matches_the_runner(backend_host, backend_snapshot, clock_skews, settings):
    _check_against_runner(backend_host, clock_skews(backend_snapshot), settings.timing.clock_skew_max_s)


@pytest.mark.smoke
@pytest.mark.gateway
@pytest.mark.backend
@pytest.mark.area("session")
def test_gateway_and_backend_clocks_agree(
    gateway_host, backend_host, gateway_snapshot, backend_snapshot, clock_skews, settings, recorder
):
    between = clock_skews(gateway_snapshot).against(clock_skews(backend_snapshot))
    recorder.figure(
        "clock skew gateway vs backend", abs(between.seconds), " s", host=f"{gateway_host.id} {backend_host.id}"
    )
    limit = settings.timing.clock_skew_max_s
    if between.exceeds(limit):
        fail(
            gateway_host.id,
            "clock",
            expected=f"within {limit:.0f} s of {backend_host.id}",
            found=between.describe(backend_host.id),
            evidence="check NTP on both hosts",
        )
