"""The TLS edge on the agent domain: a valid chain, the pinned key, a sane protocol floor and expiry.

Judged on the edge's snapshot (what the gather phase saw in its handshakes), so these run on a
recorded snapshot too.
"""

from __future__ import annotations

import datetime as dt
import warnings

import pytest

from viworks_verify import certs
from viworks_verify.pins import matching_pin, parse_pins, spki_pin

pytestmark = [pytest.mark.e2e, pytest.mark.tls, pytest.mark.area("tls")]


def _leaf(edge_snapshot, fact_of, recorder):
    fact_of(edge_snapshot, "connection").require()
    leaf = edge_snapshot.leaf()
    recorder.attach("served certificate", certs.describe(leaf))
    return leaf


@pytest.mark.smoke
def test_served_chain_validates_for_the_agent_domain(edge_snapshot, fact_of, recorder):
    domain = edge_snapshot.domain
    _leaf(edge_snapshot, fact_of, recorder)
    verification = fact_of(edge_snapshot, "verification").require()
    if not verification["verified"]:
        pytest.fail(f"{domain}: expected a certificate chain valid for {domain} against {verification['trust']}; "
                    f"found: {verification['problem']}", pytrace=False)


@pytest.mark.smoke
def test_served_key_matches_the_configured_pin(edge_snapshot, fact_of, settings, recorder):
    domain = edge_snapshot.domain
    if not settings.edge.spki_pins:
        pytest.fail(f"{domain}: edge.spki_pins is not set in the target settings; the pin cannot be checked", pytrace=False)
    configured = parse_pins(settings.edge.spki_pins)
    leaf = _leaf(edge_snapshot, fact_of, recorder)
    match = matching_pin(configured, leaf)
    assert match is not None, (
        f"{domain}: served certificate's SPKI pin {spki_pin(leaf)} matches none of the configured pins "
        f"{', '.join(p.value for p in configured)}"
    )


@pytest.mark.smoke
@pytest.mark.parametrize("version", ["TLSv1.0", "TLSv1.1"])
def test_protocols_below_tls_1_2_are_refused(edge_snapshot, fact_of, version):
    """Offered alone, each old protocol is refused. The reader first proves the runner can offer it:
    a runner that cannot has tested nothing, and that is a failure naming the runner, never a pass."""
    fact_of(edge_snapshot, "connection").require()
    found = fact_of(edge_snapshot, "tls_floor").require().get(version, "not tried")
    if found.startswith("untested"):
        pytest.fail(f"{edge_snapshot.domain}: could not test that {version} is refused: {found.removeprefix('untested: ')}; "
                    f"run the gate from a runner whose TLS library can offer {version}", pytrace=False)
    if found != "refused":
        pytest.fail(f"{edge_snapshot.domain}: expected {version} to be refused (floor TLS 1.2); found {found}", pytrace=False)


@pytest.mark.smoke
def test_served_certificate_is_not_near_expiry(edge_snapshot, fact_of, settings, recorder):
    leaf = _leaf(edge_snapshot, fact_of, recorder)
    remaining = certs.days_left(leaf, dt.datetime.fromtimestamp(edge_snapshot.gathered_at, dt.timezone.utc))  # as of the reading
    recorder.figure("edge certificate days left", remaining, " d", host=edge_snapshot.domain)
    edge = settings.edge
    assert remaining > edge.cert_fail_days, (
        f"{edge_snapshot.domain}: expected the served certificate to be valid for more than {edge.cert_fail_days} days; "
        f"found {remaining:.1f} (not after {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
    )
    if remaining <= edge.cert_warn_days:
        # Inside the warning window: reported in the summary, not a failure.
        warnings.warn(f"{edge_snapshot.domain}: served certificate expires in {remaining:.1f} days (warning at {edge.cert_warn_days})")
