"""The target's secrets, from environment variables (or the target's secrets file as a fallback).

- ``VIWORKS_API_TOKEN``: a bearer token for the backend API (operator role or above), or
  ``VIWORKS_JWT_SECRET``: the API's HS256 secret, from which the suite mints short-lived tokens.
- ``VIWORKS_AGENT_KEY_FILE``: the private key of the suite's synthetic agent identity.

Every value is registered with the redactor as it is read.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from viworks_verify.core.envfile import parse_env
from viworks_verify.core.redaction import REDACTOR
from viworks_verify.target.tokens import mint_token

API_TOKEN = "VIWORKS_API_TOKEN"
JWT_SECRET = "VIWORKS_JWT_SECRET"
AGENT_KEY_FILE = "VIWORKS_AGENT_KEY_FILE"
SNAPSHOT_KEY = "VIWORKS_SNAPSHOT_KEY"  # keys the hash of secret values in snapshots (compare without revealing)


class MissingSecret(Exception):
    """A secret a check needs and the target does not provide; names the variable."""


@dataclasses.dataclass(frozen=True)
class Secrets:
    values: dict[str, str]
    source: str

    @classmethod
    def load(cls, secrets_file: Path | None) -> Secrets:
        from_file = parse_env(secrets_file.read_text()) if secrets_file and secrets_file.is_file() else {}
        names = (API_TOKEN, JWT_SECRET, AGENT_KEY_FILE, SNAPSHOT_KEY)
        values = {name: os.environ.get(name) or from_file.get(name, "") for name in names}
        values = {name: value for name, value in values.items() if value}
        REDACTOR.register(values.get(API_TOKEN), values.get(JWT_SECRET), values.get(SNAPSHOT_KEY))
        source = f"environment or {secrets_file}" if secrets_file else "environment"
        return cls(values, source)

    def api_token(self, role: str = "operator") -> str:
        if API_TOKEN in self.values:
            return self.values[API_TOKEN]
        if JWT_SECRET in self.values:
            token = mint_token(self.values[JWT_SECRET], subject="viworks-verify", role=role, ttl_s=900)
            REDACTOR.register(token)
            return token
        raise MissingSecret(f"no API credential: set {API_TOKEN} (or {JWT_SECRET}) in the {self.source}")

    def snapshot_key(self) -> bytes | None:
        """The key of the hash that stands for secret values in snapshots; None: a fresh one per run
        (a run's snapshot then compares with no other run's on secret values)."""
        value = self.values.get(SNAPSHOT_KEY)
        return value.encode() if value else None

    def agent_key_file(self) -> Path:
        value = self.values.get(AGENT_KEY_FILE)
        if not value:
            raise MissingSecret(f"no synthetic agent key: set {AGENT_KEY_FILE} in the {self.source}")
        path = Path(value)
        if not path.is_file():
            raise MissingSecret(f"{AGENT_KEY_FILE} names {path}, which does not exist")
        return path
