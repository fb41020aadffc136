"""X.509 facts the checks need (chain, key match, expiry, evidence) and issuing certificates.

Issuing lives here, not in the lab, because the suite also needs a throwaway CA of its own (to
prove nginx refuses a client certificate from another CA); the lab uses it for its material.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import ipaddress
from collections.abc import Iterable, Sequence

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
    return _dt.datetime.now(_dt.UTC)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_ca(
    common_name: str,
    *,
    days: int = 3650,
    now: _dt.datetime | None = None,
    issuer: Identity | None = None,
    key: PrivateKey | None = None,
) -> Identity:
    """A CA: self-signed (a root), or an intermediate signed by ``issuer`` (``key``: its own, else a new P-256 one)."""
    key = key or new_key()
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
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.certificate.public_key()), critical=False
        )
    return Identity(_sign(builder, issuer.key if issuer else key), key)


def issue(
    ca: Identity,
    common_name: str,
    *,
    server: bool,
    days: int = 365,
    key: PrivateKey | None = None,
    not_before: _dt.datetime | None = None,
    subject_alt_names: bool = True,
    extended_usages: Sequence[x509.ObjectIdentifier] | None = None,
) -> Identity:
    """A leaf for ``common_name``: a TLS server certificate (with that DNS name, or IP address, as its
    subjectAltName) or a client one.

    The options make the faulty certificates a strict client refuses: ``subject_alt_names=False`` (the
    name in the CN only), ``extended_usages`` (None: serverAuth or clientAuth; empty: no such
    extension). Signatures are SHA-256 (``tests/legacy_signatures.py`` re-signs one with SHA-1 or MD5).
    """
    key = key or new_key()
    start = not_before or (_now() - _dt.timedelta(minutes=5))
    if extended_usages is None:
        extended_usages = (ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH,)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.certificate.public_key()), critical=False)
    )
    if extended_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_usages)), critical=False)
    if server and subject_alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_alt_name(common_name)]), critical=False)
    return Identity(_sign(builder, ca.key), key)


def _alt_name(name: str) -> x509.GeneralName:
    """An IP address as an iPAddress name (strict clients match no IP in a DNS name), anything else as a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return builder.sign(key, None)  # EdDSA hashes internally
    return builder.sign(key, hashes.SHA256())


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
                certificate.signature,
                certificate.tbs_certificate_bytes,
                padding.PKCS1v15(),
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


def chains_to(
    certificate: x509.Certificate, anchors: Iterable[x509.Certificate], intermediates: Iterable[x509.Certificate] = ()
) -> bool:
    """Whether a path of signatures leads from ``certificate`` to one of ``anchors``, through any of
    ``intermediates`` (the CA certificates a certificate file carries after its leaf)."""
    return chain_path(certificate, anchors, intermediates)[1]


def chain_path(
    certificate: x509.Certificate, anchors: Iterable[x509.Certificate], intermediates: Iterable[x509.Certificate] = ()
) -> tuple[list[x509.Certificate], bool]:
    """The path of signatures from ``certificate`` (first) through ``intermediates`` (in any order) to the
    anchor that signs its last step (last), and True; or, when no path leads to an anchor, the longest one
    found, and False: the issuer of its last certificate is the one missing."""
    anchors, intermediates = list(anchors), list(intermediates)
    seen: set[int] = set()  # explored already: a certificate that leads nowhere leads nowhere on any path
    longest = [certificate]

    def walk(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        nonlocal longest
        anchor = next((anchor for anchor in anchors if issued_by(path[-1], anchor)), None)
        if anchor is not None:
            return [*path, anchor]
        if len(path) > len(longest):
            longest = path
        for index, candidate in enumerate(intermediates):
            if index not in seen and issued_by(path[-1], candidate):
                seen.add(index)
                if (found := walk([*path, candidate])) is not None:
                    return found
        return None

    found = walk([certificate])
    return (found, True) if found is not None else (longest, False)


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
