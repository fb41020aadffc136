"""Certificates signed with SHA-1 or MD5, for the suite's own tests of what a strict client refuses.

cryptography no longer signs with them, and the suite never issues such a certificate for a target, so
this lives with the tests: take a certificate signed with SHA-256, put the legacy algorithm in its
to-be-signed part, and sign that again by hand.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from viworks_verify.pki import certs

_LEGACY_SIGNATURES = {  # (issuer key type, digest) -> DER AlgorithmIdentifier
    (rsa.RSAPrivateKey, "sha1"): bytes.fromhex("300d06092a864886f70d0101050500"),  # sha1WithRSAEncryption
    (rsa.RSAPrivateKey, "md5"): bytes.fromhex("300d06092a864886f70d0101040500"),  # md5WithRSAEncryption
    (ec.EllipticCurvePrivateKey, "sha1"): bytes.fromhex("300906072a8648ce3d0401"),  # ecdsa-with-SHA1
}


def legacy_signed(identity: certs.Identity, issuer: certs.Identity, algorithm: hashes.HashAlgorithm) -> certs.Identity:
    """``identity`` signed by ``issuer`` with ``algorithm`` (SHA-1 or MD5) instead: the same certificate otherwise.
    For a root, ``issuer`` is ``identity`` itself."""
    key = issuer.key
    kind = next((kind for kind in (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey) if isinstance(key, kind)), None)
    identifier = _LEGACY_SIGNATURES.get((kind, algorithm.name))
    if identifier is None:
        raise ValueError(f"no {algorithm.name} signature with a {type(key).__name__}")
    fields = _der_elements(_der_content(identity.certificate.tbs_certificate_bytes))
    fields[2 if fields[0][0] == 0xA0 else 1] = identifier  # the signature field: after [0] version, serial
    tbs = _der(0x30, b"".join(fields))
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), algorithm)
    else:
        signature = key.sign(tbs, ec.ECDSA(algorithm))
    certificate = x509.load_der_x509_certificate(_der(0x30, tbs + identifier + _der(0x03, b"\x00" + signature)))
    return certs.Identity(certificate, identity.key)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def _der_header(data: bytes, at: int) -> tuple[int, int]:
    """Where the content of the DER element at ``at`` starts, and its length."""
    size, start = data[at + 1], at + 2
    if size & 0x80:
        count = size & 0x7F
        size, start = int.from_bytes(data[start : start + count], "big"), start + count
    return start, size


def _der_content(element: bytes) -> bytes:
    start, size = _der_header(element, 0)
    return element[start : start + size]


def _der_elements(content: bytes) -> list[bytes]:
    """The DER elements, each whole (tag, length, content), that make up a SEQUENCE's content."""
    elements, at = [], 0
    while at < len(content):
        start, size = _der_header(content, at)
        elements.append(content[at : start + size])
        at = start + size
    return elements
