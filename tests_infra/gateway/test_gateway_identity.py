"""The gateway agent's client identity: certificate, key and CA present, the key private, the
certificate valid, issued by the CA, matching the key and naming the agent.

The private key never leaves the host: only its public half is compared (see the gateway_pki fixture).
"""

from __future__ import annotations

import warnings

import pytest

from viworks_verify import certs
from viworks_verify.gateway_env import AGENT_ID, CERT_PATH, KEY_PATH, TRUST_BUNDLE
from viworks_verify.public_keys import certificate_spki, spki_digest

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.tls]

KEY_MODES = (0o600, 0o400)
FILES = (("certificate", CERT_PATH), ("key", KEY_PATH), ("CA", TRUST_BUNDLE))


def _certificate(gateway_host, pki):
    if pki.certificate is None:
        pytest.fail(f"{gateway_host.id}: client certificate {pki.certificate_problem}; expected the agent's PEM certificate", pytrace=False)
    return pki.certificate


@pytest.mark.smoke
def test_client_certificate_key_and_ca_are_present(gateway_host, gateway_env, gateway_files, settings):
    problems = []
    for role, key in FILES:
        path = gateway_env.get(key)
        if not path:
            problems.append(f"{key} not set in {settings.gateway.env_file}")
            continue
        facts = gateway_files.get(path)
        if facts is None:
            problems.append(f"{role} {path} {gateway_files.absence(path)}")
        elif not facts.is_file:
            problems.append(f"{role} {path} is a {facts.kind}")
    if problems:
        pytest.fail(f"{gateway_host.id}: {'; '.join(problems)}; expected the client certificate, key and CA as files", pytrace=False)


@pytest.mark.smoke
def test_client_key_is_readable_by_its_owner_only(gateway_host, gateway_env, gateway_files):
    path = gateway_env.get(KEY_PATH)
    facts = gateway_files.get(path) if path else None
    if facts is None:
        pytest.fail(f"{gateway_host.id}: client key {path or '<' + KEY_PATH + ' not set>'} {gateway_files.absence(path) if path else ''}; expected it present", pytrace=False)
    if facts.mode not in KEY_MODES:
        pytest.fail(f"{gateway_host.id}: {path} mode {facts.octal}; expected {' or '.join(format(m, '04o') for m in KEY_MODES)}", pytrace=False)


@pytest.mark.smoke
def test_client_certificate_is_not_near_expiry(gateway_host, gateway_pki, settings, recorder):
    certificate = _certificate(gateway_host, gateway_pki)
    remaining = certs.days_left(certificate)
    recorder.figure("gateway client certificate days left", remaining, " d", host=gateway_host.id)
    fail_days, warn_days = settings.edge.cert_fail_days, settings.edge.cert_warn_days
    not_after = f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if remaining <= fail_days:
        pytest.fail(
            f"{gateway_host.id}: client certificate {'expired' if remaining <= 0 else f'expires in {remaining:.1f} days'} "
            f"(not after {not_after}); expected valid for more than {fail_days} days: renew it",
            pytrace=False,
        )
    if remaining <= warn_days:
        # Inside the warning window: reported in the summary, not a failure.
        warnings.warn(f"{gateway_host.id}: client certificate expires in {remaining:.1f} days ({not_after}; warning at {warn_days})")


@pytest.mark.smoke
def test_client_certificate_chains_to_the_ca(gateway_host, gateway_pki, gateway_env):
    certificate = _certificate(gateway_host, gateway_pki)
    if not gateway_pki.ca:
        pytest.fail(f"{gateway_host.id}: CA bundle {gateway_pki.ca_problem}; expected the internal CA certificate", pytrace=False)
    if not certs.chains_to(certificate, gateway_pki.ca):
        pytest.fail(
            f"{gateway_host.id}: client certificate issued by {certificate.issuer.rfc4514_string()} is not signed by the CA in "
            f"{gateway_env.get(TRUST_BUNDLE)} ({'; '.join(ca.subject.rfc4514_string() for ca in gateway_pki.ca)}); expected a certificate the CA issued",
            pytrace=False,
        )


@pytest.mark.smoke
def test_client_certificate_matches_the_key(gateway_host, gateway_pki, gateway_env):
    certificate = _certificate(gateway_host, gateway_pki)
    if gateway_pki.key_spki is None:
        pytest.fail(f"{gateway_host.id}: client key {gateway_pki.key_problem}; expected the certificate's private key", pytrace=False)
    cert_spki = certificate_spki(certificate)
    if cert_spki != gateway_pki.key_spki:
        pytest.fail(
            f"{gateway_host.id}: {gateway_env.get(KEY_PATH)} is the key of public key {spki_digest(gateway_pki.key_spki)}, "
            f"the certificate {gateway_env.get(CERT_PATH)} is of {spki_digest(cert_spki)}; expected the certificate's own key",
            pytrace=False,
        )


@pytest.mark.smoke
def test_client_certificate_cn_is_the_agent_id(gateway_host, gateway_pki, gateway_env, settings):
    certificate = _certificate(gateway_host, gateway_pki)
    agent_id = gateway_env.get(AGENT_ID)
    cn = certs.common_name(certificate)
    if not agent_id or cn != agent_id:
        pytest.fail(
            f"{gateway_host.id}: client certificate CN={cn or '<none>'}, {AGENT_ID}={agent_id or '<not set>'} in "
            f"{settings.gateway.env_file}; expected them equal (the backend rejects a hello whose agent_id is not the CN)",
            pytrace=False,
        )
