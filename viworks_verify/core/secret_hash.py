"""A keyed hash of secret values, so two snapshots of one deployment compare equal without revealing anything."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random


class SecretHasher:
    """A keyed hash of secret values: equal secrets compare equal, the value cannot be recovered."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or _random.token_bytes(32)

    def __call__(self, value: str) -> str:
        return "hmac-sha256:" + hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[:32]

    @property
    def key_id(self) -> str:
        """Names the key without revealing it: two snapshots' secret hashes compare only when their key ids match."""
        return hmac.new(self.key, b"viworks-snapshot-key-id", hashlib.sha256).hexdigest()[:16]
