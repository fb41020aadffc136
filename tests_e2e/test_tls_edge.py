"""The TLS edge on the agent domain: a valid chain, the pinned key, a sane protocol floor and expiry."""

from __future__ import annotations

import ssl
import warnings

import pytest

from viworks_verify import certs
from viworks_verify.pins import load_certificate, matching_pin, parse_pins, spki_pin

pytestmark = [pytest.mark.e2e, pytest.mark.tls]


@pytest.mark.smoke
def test_served_chain_validates_for_the_agent_domain(edge, recorder):
    domain = edge.edge.domain
    recorder.attach("served certificate", certs.describe(load_certificate(edge.served_leaf())))
    trust = edge.edge.ca_bundle or "the system trust store"
    try:
        with edge.open_tcp() as raw, edge.tls_context().wrap_socket(raw, server_hostname=domain):
            pass
    except ssl.SSLCertVerificationError as exc:
        pytest.fail(f"{domain}: expected a certificate chain valid for {domain} against {trust}; found: {exc.verify_message}", pytrace=False)


@pytest.mark.smoke
def test_served_key_matches_the_configured_pin(edge, recorder):
    domain = edge.edge.domain
    if not edge.edge.spki_pins:
        pytest.fail(f"{domain}: edge.spki_pins is not set in the target settings; the pin cannot be checked", pytrace=False)
    configured = parse_pins(edge.edge.spki_pins)
    leaf = edge.served_leaf()
    recorder.attach("served certificate", certs.describe(load_certificate(leaf)))
    match = matching_pin(configured, leaf)
    assert match is not None, (
        f"{domain}: served certificate's SPKI pin {spki_pin(leaf)} matches none of the configured pins "
        f"{', '.join(p.value for p in configured)}"
    )


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"])
def test_protocols_below_tls_1_2_are_refused(edge, version):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated is the point: we offer it to see it refused
        context = edge.tls_context(minimum=version, maximum=version)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    try:
        with edge.open_tcp() as raw, context.wrap_socket(raw, server_hostname=edge.edge.domain) as tls:
            negotiated = tls.version()
    except (ssl.SSLError, ConnectionError):
        return
    pytest.fail(f"{edge.edge.domain}: expected {version.name} to be refused (floor TLS 1.2); found a {negotiated} session", pytrace=False)


@pytest.mark.smoke
def test_served_certificate_is_not_near_expiry(edge, recorder):
    leaf = load_certificate(edge.served_leaf())
    recorder.attach("served certificate", certs.describe(leaf))
    remaining = certs.days_left(leaf)
    recorder.figure("edge certificate days left", remaining, " d", host=edge.edge.domain)
    assert remaining > edge.edge.cert_fail_days, (
        f"{edge.edge.domain}: expected the served certificate to be valid for more than {edge.edge.cert_fail_days} days; "
        f"found {remaining:.1f} (not after {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
    )
    if remaining <= edge.edge.cert_warn_days:
        # Inside the warning window: reported in the summary, not a failure.
        warnings.warn(f"{edge.edge.domain}: served certificate expires in {remaining:.1f} days (warning at {edge.edge.cert_warn_days})")
