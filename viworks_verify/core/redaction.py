"""Keep secrets out of everything the suite writes: messages, logs, reports.

Secrets are registered as they are loaded; ``redact`` replaces each with a fixed marker, and also
masks the password in any URL (``scheme://user:password@host``) whatever its value.
"""

from __future__ import annotations

import re

MARK = "***"
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]+)@")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


class Redactor:
    def __init__(self, secrets: set[str] | None = None) -> None:
        self._secrets: set[str] = set(secrets or ())

    def with_secrets(self, *values: str | None) -> Redactor:
        """A redactor that also hides ``values``; this one is left as it is (a reader redacts what it keeps
        with the secrets it found, and returns them for the run to register)."""
        extended = Redactor(self._secrets)
        extended.register(*values)
        return extended

    def register(self, *values: str | None) -> None:
        for value in values:
            # Very short values would mask ordinary words; they are not worth hiding anyway.
            if value and len(value) >= 6:
                self._secrets.add(value)

    def redact(self, text: str) -> str:
        text = _PRIVATE_KEY.sub(f"-----PRIVATE KEY {MARK}-----", text)
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MARK}@", text)
        text = _BEARER.sub(lambda m: m.group(1) + MARK, text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MARK)
        return text


# One per process: the secrets a run loaded (its target's, and those its readers returned), so every output
# path can consult it. Registered by the run (plugin, cli, the gathering), never by a reader.
REDACTOR = Redactor()
