"""One certificate judge, as strict as the strictest real client: rustls (the gateway agent), Go, browsers.

Python's ``ssl`` is more lenient than the clients that matter: it matches a name in the subject CN when
the certificate has no subjectAltName, and it accepts keys and curves rustls does not implement. A gate
that judged certificates as Python does would pass a deploy every gateway then fails to connect to.
So every certificate the suite judges (the edge's served chain, each gateway's client certificate) goes
through ``judge``: pure, no I/O, the findings an operator acts on.

Rules (``Finding.rule``): ``name`` (in subjectAltName, RFC 6125 matching), ``chain`` (a path of
signatures through the certificates sent to a trust anchor, every step a CA), ``validity`` (now within
each certificate's dates), ``usage`` (serverAuth / clientAuth where the leaf lists extended usages),
``key`` (RSA >= 2048 or EC P-256/P-384), ``signature`` (no SHA-1 or MD5 below the anchor).
tests/test_strict_certificates.py holds the judge against ``openssl verify -x509_strict`` case by case.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from viworks_verify.pki import certs

RULES = ("name", "chain", "validity", "usage", "key", "signature")
SERVER, CLIENT = "server", "client"
_USAGE = {SERVER: ExtendedKeyUsageOID.SERVER_AUTH, CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH}
_USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}
_CURVES = (ec.SECP256R1, ec.SECP384R1)  # what webpki (rustls) and browsers verify
_NIST_NAMES = {
    "secp192r1": "P-192",
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}
_MIN_RSA_BITS = 2048
_WEAK_HASHES = {"sha1": "SHA-1", "md5": "MD5"}
_NEED_KEY = f"RSA >= {_MIN_RSA_BITS} or EC P-256/P-384"


@dataclasses.dataclass(frozen=True)
class Finding:
    rule: str  # one of RULES
    message: str  # one clause an operator can act on, no trailing period


def summary(findings: Sequence[Finding]) -> str:
    """The findings on one line, for a failure message."""
    return "; ".join(finding.message for finding in findings)


def judge(
    leaf: x509.Certificate,
    *,
    anchors: Sequence[x509.Certificate],
    chain: Sequence[x509.Certificate] = (),
    purpose: str = SERVER,
    name: str | None = None,
    now: _dt.datetime | None = None,
) -> list[Finding]:
    """Everything a strict client refuses in this certificate as presented (leaf + the chain sent with it),
    against the trust anchors. Empty list: a strict client accepts it.

    ``chain``: the certificates sent with the leaf, in any order (the leaf itself and strays are ignored);
    ``purpose``: SERVER or CLIENT (the usage the leaf must allow, and who judges it in the messages);
    ``name``: a DNS name or IP address the leaf must be valid for (None: not judged); ``now``: UTC."""
    if purpose not in _USAGE:
        raise ValueError(f"purpose {purpose!r}: expected {SERVER!r} or {CLIENT!r}")
    now = now or _dt.datetime.now(_dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.UTC)
    findings: list[Finding] = []
    if name is not None:
        findings += _name(leaf, name)
    below_anchor, chain_findings = _path(leaf, list(anchors), list(chain), purpose)
    findings += chain_findings
    for certificate in below_anchor:
        findings += _validity(certificate, now)
    findings += _usage(leaf, purpose)
    for certificate in below_anchor:
        findings += _key(certificate, purpose)
    for certificate in below_anchor:
        if not _is_anchor(certificate, anchors):  # a leaf trusted as it is: its self-signature does not matter
            findings += _signature(certificate, purpose)
    return findings


def _label(certificate: x509.Certificate) -> str:
    cn = certs.common_name(certificate)
    return repr(cn) if cn else certificate.subject.rfc4514_string() or "(empty subject)"


def _judges(purpose: str) -> str:
    """Who refuses a certificate presented for ``purpose``."""
    return "strict clients" if purpose == SERVER else "strict servers"


# ---- name ----------------------------------------------------------------------------------------


def _name(leaf: x509.Certificate, name: str) -> list[Finding]:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    kind = "an IP" if address is not None else "a DNS"
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cn = certs.common_name(leaf)
        if address is None and cn is not None and dns_matches(cn, name):
            return [
                Finding(
                    "name",
                    f"{_label(leaf)} has {name} only in its subject CN, no subjectAltName: Python's "
                    f"ssl accepts that (it falls back to the CN), rustls, Go and browsers refuse it; "
                    f"reissue it with {name} as a DNS subjectAltName",
                )
            ]
        return [
            Finding(
                "name",
                f"{_label(leaf)} has no subjectAltName, and its subject CN is not {name} either: "
                f"reissue it with {name} as {kind} subjectAltName",
            )
        ]
    dns_names = san.get_values_for_type(x509.DNSName)
    addresses = san.get_values_for_type(x509.IPAddress)
    if address is not None and address in addresses:
        return []
    if address is None and any(dns_matches(pattern, name) for pattern in dns_names):
        return []
    listed = f"DNS names {', '.join(dns_names)}" if dns_names else "no DNS name"
    if addresses:
        listed += f" and IP addresses {', '.join(map(str, addresses))}"
    return [
        Finding(
            "name",
            f"{_label(leaf)} is not valid for {name}: its subjectAltName lists {listed}; "
            f"reissue it with {name} as {kind} subjectAltName",
        )
    ]


def dns_matches(pattern: str, name: str) -> bool:
    """RFC 6125 as strict clients apply it: case-insensitive; a wildcard only as the whole leftmost label,
    standing for exactly one label, and never over a single remaining label (``*.com``)."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if "*" in name:
        return False
    if not pattern.startswith("*."):
        return "*" not in pattern and pattern == name
    rest = pattern[2:]
    head, _, tail = name.partition(".")
    return bool(head) and tail == rest and "*" not in rest and "." in rest


# ---- chain ---------------------------------------------------------------------------------------


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _is_anchor(certificate: x509.Certificate, anchors: Sequence[x509.Certificate]) -> bool:
    return any(_der(certificate) == _der(anchor) for anchor in anchors)


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _path(
    leaf: x509.Certificate, anchors: list[x509.Certificate], chain: list[x509.Certificate], purpose: str
) -> tuple[list[x509.Certificate], list[Finding]]:
    """The certificates from the leaf up to, not including, the trust anchor (without a path to one: as far
    as signatures lead), and what a strict client refuses in that path."""
    if _is_anchor(leaf, anchors):
        return [leaf], []
    sent = [certificate for certificate in chain if _der(certificate) != _der(leaf)]
    path, complete = certs.chain_path(leaf, anchors, [certificate for certificate in sent if _is_ca(certificate)])
    if complete:
        return path[:-1], []
    path, complete = certs.chain_path(leaf, anchors, sent)  # through a non-CA, maybe: named below
    below_anchor = path[:-1] if complete else path
    findings = [
        Finding(
            "chain",
            f"{_label(issuer)} signs {_label(subject)} but is not a CA (basicConstraints "
            f"CA:TRUE): {_judges(purpose)} refuse the chain; issue {_label(subject)} from a CA",
        )
        for subject, issuer in zip(below_anchor, below_anchor[1:])
        if not _is_ca(issuer)
    ]
    if not complete:
        last = path[-1]
        if last.issuer == last.subject and certs.issued_by(last, last):
            findings.append(
                Finding(
                    "chain",
                    f"{_label(leaf)} chains to the root {_label(last)}, which is not a trust "
                    f"anchor: {_judges(purpose)} refuse it; issue it under a trusted CA",
                )
            )
        else:
            findings.append(
                Finding(
                    "chain",
                    (
                        f"{_label(last)} is issued by {last.issuer.rfc4514_string() or '(empty issuer)'}, "
                        f"which is neither sent nor a trust anchor: the {purpose} must send the full chain "
                        f"(leaf, then every intermediate), {_judges(purpose)} do not fetch missing intermediates"
                    ),
                )
            )
    return below_anchor, findings


# ---- validity, usage, key, signature --------------------------------------------------------------


def _validity(certificate: x509.Certificate, now: _dt.datetime) -> list[Finding]:
    if now > certificate.not_valid_after_utc:
        return [
            Finding(
                "validity", f"{_label(certificate)} expired on {certificate.not_valid_after_utc:%Y-%m-%d}: renew it"
            )
        ]
    if now < certificate.not_valid_before_utc:
        return [
            Finding(
                "validity",
                f"{_label(certificate)} is not valid before "
                f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check the issuer's clock",
            )
        ]
    return []


def _usage(leaf: x509.Certificate, purpose: str) -> list[Finding]:
    try:
        usages = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []  # no extended key usage at all: any purpose
    wanted = _USAGE_NAMES[_USAGE[purpose]]
    if _USAGE[purpose] in usages:
        return []
    listed = ", ".join(_USAGE_NAMES.get(usage, usage.dotted_string) for usage in usages) or "none"
    # webpki (rustls) takes anyExtendedKeyUsage for no purpose; OpenSSL 3 neither.
    why = " (anyExtendedKeyUsage does not count)" if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages else ""
    return [
        Finding(
            "usage",
            f"{_label(leaf)} lists extended key usage {listed} without {wanted}{why}: "
            f"{_judges(purpose)} refuse it as a TLS {purpose} certificate; reissue it with {wanted}",
        )
    ]


def _key(certificate: x509.Certificate, purpose: str) -> list[Finding]:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size >= _MIN_RSA_BITS:
            return []
        found = f"an RSA {key.key_size}-bit key"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, _CURVES):
            return []
        nist = _NIST_NAMES.get(key.curve.name)
        found = f"an EC key on {key.curve.name}" + (f" ({nist})" if nist else "")
    elif isinstance(key, dsa.DSAPublicKey):
        found = f"a DSA {key.key_size}-bit key"
    elif isinstance(key, ed25519.Ed25519PublicKey):
        found = "an Ed25519 key"
    elif isinstance(key, ed448.Ed448PublicKey):
        found = "an Ed448 key"
    else:
        found = f"a {type(key).__name__} key"
    return [Finding("key", f"{_label(certificate)} has {found}; {_judges(purpose)} need {_NEED_KEY}")]


def _signature(certificate: x509.Certificate, purpose: str) -> list[Finding]:
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:  # a digest cryptography does not know: not SHA-1 or MD5, which it does
        return []
    weak = _WEAK_HASHES.get(algorithm.name) if algorithm is not None else None
    if weak is None:
        return []
    return [
        Finding(
            "signature",
            f"{_label(certificate)} is signed with {weak}: {_judges(purpose)} refuse it; "
            f"reissue it signed with SHA-256",
        )
    ]
