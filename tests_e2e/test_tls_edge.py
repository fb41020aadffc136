"""The TLS edge on the agent domain: a valid chain, the pinned key, a sane protocol floor and expiry.

Judged on the edge's snapshot (what the gather phase saw in its handshakes), so these run on a
recorded snapshot too.
"""

from __future__ import annotations

import datetime as dt
import warnings

import pytest

from viworks_verify.core.verdict import fail
from viworks_verify.edge.trust import describe_trust, trust_anchors
from viworks_verify.pki import certs, strict
from viworks_verify.pki.pins import matching_pin, parse_pins, spki_pin

pytestmark = [pytest.mark.e2e, pytest.mark.tls, pytest.mark.area("tls")]


def _leaf(edge_snapshot, recorder):
    edge_snapshot.connection.require()
    leaf = edge_snapshot.served_leaf.require().leaf
    recorder.attach("served certificate", certs.describe(leaf))
    return leaf


@pytest.mark.smoke
def test_served_chain_validates_for_the_agent_domain(edge_snapshot, settings, recorder):
    """Judged as the strictest real client judges it (rustls in the gateway agent, Go, browsers): the
    name in subjectAltName, the chain served complete to the trust root, valid now, serverAuth where
    it lists usages, a strong key, no SHA-1. Then as Python verified it in the handshake."""
    domain = edge_snapshot.domain
    leaf = _leaf(edge_snapshot, recorder)
    intermediates = edge_snapshot.served_chain.require().certificates
    verification = edge_snapshot.verification.require()
    recorder.attach("served chain", [certs.describe(c) for c in intermediates])
    trust = describe_trust(settings.edge.ca_bundle)
    read_at = dt.datetime.fromtimestamp(edge_snapshot.gathered_at, dt.UTC)
    findings = strict.judge(
        leaf,
        anchors=trust_anchors(settings.edge.ca_bundle),
        chain=intermediates,
        purpose=strict.SERVER,
        name=domain,
        now=read_at,
    )
    if findings:
        fail(
            domain,
            expected=f"a certificate chain a strict client (rustls, Go, browsers) accepts for {domain} against {trust}",
            found=strict.summary(findings),
        )
    if not verification.verified:
        fail(
            domain,
            expected=f"a certificate chain valid for {domain} against {verification.trust}",
            found=f"{verification.problem}",
        )


@pytest.mark.smoke
def test_served_key_matches_the_configured_pin(edge_snapshot, settings, recorder):
    domain = edge_snapshot.domain
    if not settings.edge.spki_pins:
        fail(
            domain,
            "edge.spki_pins",
            expected="the served key's pins, set in the target settings",
            found="not set",
            evidence="the pin cannot be checked",
        )
    configured = parse_pins(settings.edge.spki_pins)
    leaf = _leaf(edge_snapshot, recorder)
    match = matching_pin(configured, leaf)
    if match is None:
        fail(
            domain,
            "served certificate's SPKI pin",
            expected=f"one of {', '.join(p.value for p in configured)}",
            found=f"{spki_pin(leaf)}, which matches none of the configured pins",
        )


@pytest.mark.smoke
@pytest.mark.parametrize("version", ["TLSv1.0", "TLSv1.1"])
def test_protocols_below_tls_1_2_are_refused(edge_snapshot, version):
    """Offered alone, each old protocol is refused. The reader first proves the runner can offer it:
    a runner that cannot has tested nothing, and that is a failure naming the runner, never a pass."""
    edge_snapshot.connection.require()
    found = edge_snapshot.tls_floor.require().get(version, "not tried")
    if found.startswith("untested"):
        fail(
            edge_snapshot.domain,
            expected=f"{version} to be refused (floor TLS 1.2)",
            found=f"could not test that {version} is refused: {found.removeprefix('untested: ')}",
            evidence=f"run the gate from a runner whose TLS library can offer {version}",
        )
    if found != "refused":
        fail(edge_snapshot.domain, expected=f"{version} to be refused (floor TLS 1.2)", found=found)


@pytest.mark.smoke
def test_served_certificate_is_not_near_expiry(edge_snapshot, settings, recorder):
    leaf = _leaf(edge_snapshot, recorder)
    remaining = certs.days_left(leaf, dt.datetime.fromtimestamp(edge_snapshot.gathered_at, dt.UTC))  # as of the reading
    recorder.figure("edge certificate days left", remaining, " d", host=edge_snapshot.domain)
    edge = settings.edge
    if not remaining > edge.cert_fail_days:
        fail(
            edge_snapshot.domain,
            expected=f"the served certificate to be valid for more than {edge.cert_fail_days} days",
            found=f"{remaining:.1f}",
            evidence=f"not after {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        )
    if remaining <= edge.cert_warn_days:
        # Inside the warning window: reported in the summary, not a failure.
        warnings.warn(
            f"{edge_snapshot.domain}: served certificate expires in {remaining:.1f} days "
            f"(warning at {edge.cert_warn_days})",
            stacklevel=1,  # the check itself is where the warning belongs
        )
