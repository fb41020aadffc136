"""Facts that hold only across hosts: the gateway trusts what the backend serves and is trusted by it, and
the clocks agree (signed commands carry iat/exp; a skewed clock rejects them or accepts replays)."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import hashes

from viworks_verify import certs, clock
from viworks_verify.gateway_env import SPKI_PIN, TRUST_BUNDLE
from viworks_verify.pins import PinFormatError, matching_pin, parse_pins, spki_pin

pytestmark = [pytest.mark.infra]


# ------------------------------------------------------------------------------ gateway facts


def _fingerprint(certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()[:16]


def _named(certificates) -> str:
    return ", ".join(f"{c.subject.rfc4514_string() or '(no subject)'} [sha256 {_fingerprint(c)}…]" for c in certificates) or "none"


# ---------------------------------------------------------------------------------------- TLS


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.gateway
def test_gateway_pin_matches_the_served_certificate(gateway_host, edge, gateway_env, settings):
    configured_text = gateway_env.get(SPKI_PIN, "")
    try:
        configured = parse_pins(configured_text)
    except PinFormatError as exc:
        pytest.skip(f"{gateway_host.id}: {SPKI_PIN} unusable ({exc}); test_backend_pin_is_well_formed reports it")
    try:
        leaf = edge.served_leaf()
    except OSError as exc:
        pytest.fail(
            f"{gateway_host.id}: cannot read the certificate {edge.address}:{edge.edge.https_port} serves for {edge.edge.domain}: {exc}",
            pytrace=False,
        )
    match = matching_pin(configured, leaf)
    if match is None:
        pytest.fail(
            f"{gateway_host.id}: {SPKI_PIN} in {settings.gateway.env_file} is {', '.join(p.value for p in configured)}; "
            f"{edge.edge.domain} serves a certificate with pin {spki_pin(leaf)}; expected the gateway to pin the served key "
            "(update the pin, or the certificate nginx serves)",
            pytrace=False,
        )


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.gateway
@pytest.mark.backend
def test_gateway_ca_is_the_ca_nginx_verifies_clients_with(
    gateway_host, backend_host, gateway_env, agent_server, nginx_tls_files, settings
):
    path = gateway_env.get(TRUST_BUNDLE)
    text = gateway_host.read_file(path) if path else None
    if text is None:
        pytest.skip(f"{gateway_host.id}: {TRUST_BUNDLE} ({path or 'not set'}) cannot be read; the gateway checks report it")
    try:
        gateway_cas = certs.load_pem_certificates(text.encode())
    except ValueError:
        gateway_cas = []
    if not gateway_cas:
        pytest.skip(f"{gateway_host.id}: {path} holds no PEM certificate; the gateway checks report it")

    server = agent_server.require()
    nginx = settings.backend.nginx_container
    client_ca_path = server.client_ca_path
    if not client_ca_path:
        pytest.fail(
            f"{backend_host.id}: {nginx}: server {settings.edge.domain} has no ssl_client_certificate; "
            "expected the internal CA that issued the gateway's certificate",
            pytrace=False,
        )
    ca_file = nginx_tls_files.require().get(client_ca_path)
    if ca_file is None or ca_file.content is None:
        pytest.skip(f"{backend_host.id}: {nginx}: {client_ca_path} cannot be read; the nginx checks report it")
    try:
        nginx_cas = certs.load_pem_certificates(ca_file.content)
    except ValueError:
        pytest.skip(f"{backend_host.id}: {nginx}: {client_ca_path} holds no PEM certificate; the nginx checks report it")

    # Certificates, not bytes: the same CA in another PEM layout, order or bundle is the same CA.
    missing = [ca for ca in gateway_cas if ca not in nginx_cas]
    if missing:
        pytest.fail(
            f"{gateway_host.id}: {path} holds {_named(missing)}; {backend_host.id}: {nginx} verifies clients with "
            f"{client_ca_path}: {_named(nginx_cas)}; expected the gateway's CA among the CAs nginx verifies clients with",
            pytrace=False,
        )


# -------------------------------------------------------------------------------------- clocks


@pytest.fixture(scope="session")
def clock_skews(recorder):
    """Each host's clock against the runner's, read once per host (``skew(host) -> clock.Skew``)."""
    readings: dict[str, clock.Skew] = {}

    def skew(host) -> clock.Skew:
        if host.id not in readings:
            before = time.time()
            result = host.run(clock.COMMAND)
            after = time.time()
            try:
                readings[host.id] = clock.Skew.measure(clock.parse_epoch(result.stdout), before, after)
            except ValueError as exc:
                pytest.fail(f"{host.id}: cannot read its clock ({clock.COMMAND}: exit {result.rc}, {exc})", pytrace=False)
            recorder.figure("clock skew vs runner", abs(readings[host.id].seconds), " s", host=host.id)
        return readings[host.id]

    return skew


def _check_against_runner(host, skew: clock.Skew, limit: float) -> None:
    if skew.exceeds(limit):
        pytest.fail(f"{host.id}: clock {skew.describe()}; expected within {limit:.0f} s (check NTP on the host)", pytrace=False)


@pytest.mark.smoke
@pytest.mark.gateway
def test_gateway_clock_matches_the_runner(gateway_host, clock_skews, settings):
    _check_against_runner(gateway_host, clock_skews(gateway_host), settings.timing.clock_skew_max_s)


@pytest.mark.smoke
@pytest.mark.backend
def test_backend_clock_matches_the_runner(backend_host, clock_skews, settings):
    _check_against_runner(backend_host, clock_skews(backend_host), settings.timing.clock_skew_max_s)


@pytest.mark.smoke
@pytest.mark.gateway
@pytest.mark.backend
def test_gateway_and_backend_clocks_agree(gateway_host, backend_host, clock_skews, settings, recorder):
    between = clock_skews(gateway_host).against(clock_skews(backend_host))
    recorder.figure("clock skew gateway vs backend", abs(between.seconds), " s", host=f"{gateway_host.id} {backend_host.id}")
    limit = settings.timing.clock_skew_max_s
    if between.exceeds(limit):
        pytest.fail(
            f"{gateway_host.id}: clock {between.describe(backend_host.id)}; expected within {limit:.0f} s (check NTP on both hosts)",
            pytrace=False,
        )
