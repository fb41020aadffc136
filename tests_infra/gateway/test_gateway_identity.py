"""The gateway agent's client identity: certificate, key and CA present, the key private, the
certificate valid, issued by the CA, matching the key, naming the agent, and acceptable to a strict
server (clientAuth where it lists usages, a strong key, no SHA-1).

The private key never leaves the host: only its public half is compared (see the gateway_pki fixture).
"""

from __future__ import annotations

import datetime as dt
import warnings

import pytest

from viworks_verify.core.verdict import fail
from viworks_verify.gateway.env import AGENT_ID, CERT_PATH, KEY_PATH, TRUST_BUNDLE
from viworks_verify.pki import certs, strict
from viworks_verify.pki.public_keys import certificate_spki, spki_digest

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.tls, pytest.mark.area("identity")]

KEY_MODES = (0o600, 0o400)
FILES = (("certificate", CERT_PATH, "certificate"), ("key", KEY_PATH, "key_spki"), ("CA", TRUST_BUNDLE, "ca"))


@pytest.mark.smoke
def test_client_certificate_key_and_ca_are_present(
    gateway_host, gateway_env, gateway_files, gateway_pki, settings, reported_here
):
    problems = []
    for role, key, part in FILES:
        path = gateway_env.get(key)
        if not path:
            problems.append(f"{key} not set in {settings.gateway.env_file}")
        elif gateway_files.get(path) is None:
            problems.append(f"{role} {path} {gateway_files.absence(path)}")
        elif not gateway_files.get(path).is_file:
            problems.append(f"{role} {path} is a {gateway_files.get(path).kind}")
        else:
            continue
        reported_here(getattr(gateway_pki, part))  # said here: the checks of its content skip
    if problems:
        fail(gateway_host.id, expected="the client certificate, key and CA as files", found="; ".join(problems))


@pytest.mark.smoke
def test_client_key_is_readable_by_its_owner_only(gateway_host, gateway_env, gateway_files, gateway_pki):
    path = gateway_env.get(KEY_PATH)
    facts = gateway_files.get(path) if path else None
    if facts is None:
        gateway_pki.key_spki.require()  # no key file: fails with why, or skips when already reported
        fail(gateway_host.id, f"client key {path}", expected="it present", found=f"it {gateway_files.absence(path)}")
    if facts.mode not in KEY_MODES:
        fail(
            gateway_host.id,
            path,
            expected=f"mode {' or '.join(format(m, '04o') for m in KEY_MODES)}",
            found=f"mode {facts.octal}",
        )


@pytest.mark.smoke
def test_client_certificate_is_not_near_expiry(gateway_host, gateway_snapshot, gateway_pki, settings, recorder):
    certificate = gateway_pki.certificate.require()
    recorder.attach("client certificate", certs.describe(certificate))
    remaining = certs.days_left(
        certificate, dt.datetime.fromtimestamp(gateway_snapshot.gathered_at, dt.UTC)
    )  # as of the reading
    recorder.figure("gateway client certificate days left", remaining, " d", host=gateway_host.id)
    fail_days, warn_days = settings.edge.cert_fail_days, settings.edge.cert_warn_days
    not_after = f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if remaining <= fail_days:
        fail(
            gateway_host.id,
            expected=f"the client certificate to be valid for more than {fail_days} days",
            found=f"client certificate {'expired' if remaining <= 0 else f'expires in {remaining:.1f} days'}"
            f" (not after {not_after})",
            evidence="renew it",
        )
    if remaining <= warn_days:
        # Inside the warning window: reported in the summary, not a failure.
        warnings.warn(
            f"{gateway_host.id}: client certificate expires in {remaining:.1f} days "
            f"({not_after}; warning at {warn_days})",
            stacklevel=1,  # the check itself is where the warning belongs
        )


@pytest.mark.smoke
def test_client_certificate_chains_to_the_ca(gateway_host, gateway_pki, gateway_env, recorder):
    certificate = gateway_pki.certificate.require()
    anchors = gateway_pki.ca.require()
    recorder.attach("client certificate", certs.describe(certificate))
    recorder.attach("trust bundle", [certs.describe(ca) for ca in anchors])
    if not certs.chains_to(certificate, anchors, gateway_pki.intermediates):
        fail(
            gateway_host.id,
            "client certificate",
            expected=f"a certificate the CA in {gateway_env.get(TRUST_BUNDLE)} issued "
            f"({'; '.join(ca.subject.rfc4514_string() for ca in anchors)})",
            found=f"one issued by {certificate.issuer.rfc4514_string()}, which is not signed by the CA",
        )


@pytest.mark.smoke
def test_client_certificate_matches_the_key(gateway_host, gateway_pki, gateway_env):
    certificate = gateway_pki.certificate.require()
    key_spki = gateway_pki.key_spki.require()
    cert_spki = certificate_spki(certificate)
    if cert_spki != key_spki:
        fail(
            gateway_host.id,
            gateway_env.get(KEY_PATH),
            expected=f"the certificate's own key (the certificate {gateway_env.get(CERT_PATH)} "
            f"is of public key {spki_digest(cert_spki)})",
            found=f"the key of public key {spki_digest(key_spki)}",
        )


@pytest.mark.smoke
def test_client_certificate_cn_is_the_agent_id(gateway_host, gateway_pki, gateway_env, settings, recorder):
    certificate = gateway_pki.certificate.require()
    recorder.attach("client certificate", certs.describe(certificate))
    agent_id = gateway_env.get(AGENT_ID)
    cn = certs.common_name(certificate)
    if not agent_id or cn != agent_id:
        fail(
            gateway_host.id,
            "client certificate",
            expected=f"its CN equal to {AGENT_ID}",
            found=f"CN={cn or '<none>'}, {AGENT_ID}={agent_id or '<not set>'} in {settings.gateway.env_file}",
            evidence="the backend rejects a hello whose agent_id is not the CN",
        )


# Judged elsewhere: the chain (test_client_certificate_chains_to_the_ca) and validity (..._is_not_near_expiry).
STRICT_RULES = ("usage", "key", "signature")


@pytest.mark.smoke
def test_client_certificate_is_acceptable_to_a_strict_server(
    gateway_host, gateway_snapshot, gateway_pki, gateway_env, recorder
):
    """As nginx (OpenSSL's purpose check) and any strict server judge a client certificate: one whose
    usages exclude clientAuth, a weak key or a SHA-1 signature is refused at the handshake."""
    certificate = gateway_pki.certificate.require()
    recorder.attach("client certificate", certs.describe(certificate))
    read_at = dt.datetime.fromtimestamp(gateway_snapshot.gathered_at, dt.UTC)
    findings = [
        finding
        for finding in strict.judge(
            certificate,
            anchors=gateway_pki.ca.value or [],
            chain=gateway_pki.intermediates,
            purpose=strict.CLIENT,
            now=read_at,
        )
        if finding.rule in STRICT_RULES
    ]
    if findings:
        fail(
            gateway_host.id,
            f"client certificate {gateway_env.get(CERT_PATH)}",
            expected="one a strict server accepts for a client",
            found=strict.summary(findings),
            evidence="reissue it for TLS client authentication",
        )
