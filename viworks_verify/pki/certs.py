"""X.509 facts the checks need (chain, key match, expiry, evidence) and issuing certificates.

Issuing lives here, not in the lab, because the suite also needs a throwaway CA of its own (to
prove nginx refuses a client certificate from another CA); the lab uses it for its material.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from viworks_verify.pki.pins import spki_der, spki_pin

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclasses.dataclass(frozen=True)
class Identity:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_ca(common_name: str, *, days: int = 3650, now: _dt.datetime | None = None, issuer: Identity | None = None) -> Identity:
    """A CA: self-signed (a root), or an intermediate signed by ``issuer``."""
    key = new_key()
    now = now or _now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        # A root may sign an intermediate; an intermediate signs leaves only.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.certificate.public_key()), critical=False)
    return Identity(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def issue(
    ca: Identity,
    common_name: str,
    *,
    server: bool,
    days: int = 365,
    key: PrivateKey | None = None,
    not_before: _dt.datetime | None = None,
) -> Identity:
    """A leaf for ``common_name``: a TLS server certificate (with that DNS name) or a client one."""
    key = key or new_key()
    start = not_before or (_now() - _dt.timedelta(minutes=5))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.certificate.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
    return Identity(builder.sign(ca.key, hashes.SHA256()), key)


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def load_private_key(data: bytes) -> PrivateKey:
    return serialization.load_pem_private_key(data, password=None)


def common_name(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def key_matches(certificate: x509.Certificate, key: PrivateKey) -> bool:
    return spki_der(certificate.public_key()) == spki_der(key.public_key())


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` signed ``certificate`` (names match and the signature verifies)."""
    if certificate.issuer != issuer.subject:
        return False
    public_key = issuer.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(),
                certificate.signature_hash_algorithm,
            )
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(
                certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(certificate.signature_hash_algorithm)
            )
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(certificate.signature, certificate.tbs_certificate_bytes)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def chains_to(certificate: x509.Certificate, anchors: Iterable[x509.Certificate],
              intermediates: Iterable[x509.Certificate] = ()) -> bool:
    """Whether a path of signatures leads from ``certificate`` to one of ``anchors``, through any of
    ``intermediates`` (the CA certificates a certificate file carries after its leaf)."""
    anchors, intermediates = list(anchors), list(intermediates)
    pending, seen = [certificate], set()
    while pending:
        current = pending.pop()
        if any(issued_by(current, anchor) for anchor in anchors):
            return True
        for index, candidate in enumerate(intermediates):
            if index not in seen and issued_by(current, candidate):
                seen.add(index)
                pending.append(candidate)
    return False


def days_left(certificate: x509.Certificate, now: _dt.datetime | None = None) -> float:
    remaining = certificate.not_valid_after_utc - (now or _now())
    return remaining.total_seconds() / 86400


def describe(certificate: x509.Certificate) -> dict[str, str]:
    """Evidence for a report: who, by whom, when, which key. Nothing secret."""
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "serial": format(certificate.serial_number, "x"),
        "spki_pin": spki_pin(certificate),
    }


def ca_bundle_problem(pem: bytes) -> str | None:
    """Why a file is not a usable client CA bundle (PEM certificates, each a CA); None when it is."""
    try:
        certificates = load_pem_certificates(pem)
    except ValueError:
        return "holds no PEM certificate"
    if not certificates:
        return "holds no PEM certificate"
    not_ca = []
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            not_ca.append(certificate.subject.rfc4514_string() or "(empty subject)")
    if not_ca:
        return f"holds a certificate that is not a CA (basicConstraints CA:FALSE or absent): {', '.join(not_ca)}"
    return None
