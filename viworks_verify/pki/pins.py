"""SPKI pins: compute one from a certificate, parse a configured pin list, compare.

Pin = standard base64 of SHA-256 over the DER SubjectPublicKeyInfo of a certificate (the
``openssl x509 -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64``
value). Configurations carry it bare or with a ``sha256/`` prefix, optionally with a
comma-separated backup.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

PREFIX = "sha256/"


class PinFormatError(ValueError):
    """A configured pin that is not base64 of 32 bytes."""


@dataclasses.dataclass(frozen=True)
class Pin:
    value: str  # bare base64
    prefixed: bool  # written as sha256/<value>

    @property
    def form(self) -> str:
        return "sha256/-prefixed" if self.prefixed else "bare"


def spki_der(public_key) -> bytes:
    """A public key's DER SubjectPublicKeyInfo: what a pin hashes, and how two keys compare."""
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_digest(spki: bytes) -> str:
    """The bare pin (base64 SHA-256) of a DER SubjectPublicKeyInfo: also a safe way to name a key in a message."""
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def spki_pin(certificate: x509.Certificate | bytes) -> str:
    """The bare pin of a certificate (a cryptography object, DER or PEM bytes)."""
    if isinstance(certificate, bytes):
        certificate = load_certificate(certificate)
    return spki_digest(spki_der(certificate.public_key()))


def load_certificate(data: bytes) -> x509.Certificate:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def parse_pin(text: str) -> Pin:
    """One pin, bare or ``sha256/``-prefixed; PinFormatError unless it is base64 of 32 bytes."""
    text = text.strip()
    prefixed = text.lower().startswith(PREFIX)
    value = text[len(PREFIX) :] if prefixed else text
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise PinFormatError(f"pin {text!r} is not base64 of a 32-byte SHA-256 digest")
    return Pin(value, prefixed)


def parse_pins(text: str) -> list[Pin]:
    """A configured pin list: primary first, then backups, comma-separated."""
    pins = [parse_pin(part) for part in text.split(",") if part.strip()]
    if not pins:
        raise PinFormatError("pin list is empty")
    return pins


def matching_pin(configured: list[Pin], certificate: x509.Certificate | bytes) -> Pin | None:
    """The configured pin that the certificate's key matches, if any."""
    live = spki_pin(certificate)
    return next((pin for pin in configured if pin.value == live), None)
