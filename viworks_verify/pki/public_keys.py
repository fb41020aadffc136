"""The public half of a private key, to compare it with a certificate's, never the key itself.

On a host, ``openssl pkey -pubout`` derives the public key there, so the private key never
crosses the connection. Where openssl is missing, the caller may read the key once and hand it
to ``spki_from_private_pem``, which keeps only the public half. Nothing here puts key material in
an exception or a return value.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from viworks_verify.pki.pins import spki_der, spki_digest

__all__ = ["certificate_spki", "spki_digest", "spki_from_private_pem", "spki_from_public_pem"]

COMMAND_NOT_FOUND = 127  # the shell's exit status when openssl is not installed


def spki_from_public_pem(text: str | bytes) -> bytes:
    """DER SubjectPublicKeyInfo from ``openssl pkey -pubout`` output; ValueError when it is not one."""
    data = text.encode() if isinstance(text, str) else text
    try:
        return spki_der(serialization.load_pem_public_key(data))
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key") from None


def spki_from_private_pem(data: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of a PEM private key; ValueError (saying nothing of the key) when unusable."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError("not an unencrypted PEM private key") from None
    except Exception:
        raise ValueError("a private key of an unsupported kind") from None
    return spki_der(key.public_key())


def certificate_spki(certificate: x509.Certificate) -> bytes:
    return spki_der(certificate.public_key())
