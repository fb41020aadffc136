"""The backend agent's TOML configuration, read without ever showing a secret (sans I/O).

``parse_backend_config`` takes the file's text; what it returns shows URLs only with the password
masked (``postgresql://viworks:***@viworks-postgres:5432/viworks_agent``) and lists the secret
values it holds, so a caller can register them with the redactor before anything is printed.
A file that does not parse raises ``BackendConfigError`` whose message quotes no content.
"""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any
from urllib.parse import urlsplit

from viworks_verify.core.redaction import MARK

_SECRET_WORDS = ("secret", "password", "passwd", "token", "private_key")


class BackendConfigError(ValueError):
    """The configuration cannot be read; the message never quotes the file."""


@dataclasses.dataclass(frozen=True)
class ServiceUrl:
    """A ``scheme://user:password@host:port/path`` URL; ``str()`` and ``redacted`` mask the password."""

    scheme: str
    username: str | None
    host: str | None
    port: int | None
    path: str
    has_password: bool
    _password: str | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, url: str) -> ServiceUrl:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise BackendConfigError("URL has an invalid port") from None
        if not parts.scheme or not parts.netloc:
            raise BackendConfigError("value is not a scheme://host URL")
        return cls(
            parts.scheme, parts.username, parts.hostname, port, parts.path, parts.password is not None, parts.password
        )

    @property
    def redacted(self) -> str:
        userinfo = ""
        if self.username is not None or self.has_password:
            userinfo = (self.username or "") + (f":{MARK}" if self.has_password else "") + "@"
        host = f"[{self.host}]" if self.host and ":" in self.host else (self.host or "")
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{userinfo}{host}{port}{self.path}"

    def __str__(self) -> str:
        return self.redacted


@dataclasses.dataclass(frozen=True)
class BackendConfig:
    """What the checks need from ``backend-agent.toml``; the raw tables stay private."""

    server_port: Any  # as written: an int when well-formed, anything else is reported as found
    ws_port: Any
    database: ServiceUrl | None
    redis: ServiceUrl | None
    sections: tuple[str, ...]
    _secrets: tuple[str, ...] = dataclasses.field(default=(), repr=False, compare=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value in the file (URL passwords, ``*secret*``/``*password*``/``*token*`` keys)."""
        return self._secrets


def parse_backend_config(text: str) -> BackendConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names the position, never the content.
        raise BackendConfigError(f"not valid TOML: {exc}") from None
    secrets = list(_secret_values(data))
    urls: dict[str, ServiceUrl | None] = {}
    for section in ("database", "redis"):
        raw = _table(data, section).get("url")
        if raw is None:
            urls[section] = None
            continue
        if not isinstance(raw, str):
            raise BackendConfigError(f"[{section}].url is a {type(raw).__name__}, not a string")
        try:
            url = ServiceUrl.parse(raw)
        except BackendConfigError as exc:
            raise BackendConfigError(f"[{section}].url: {exc}") from None
        if url._password:
            secrets.append(url._password)
        urls[section] = url
    return BackendConfig(
        server_port=_table(data, "server").get("port"),
        ws_port=_table(data, "agent_management").get("port"),
        database=urls["database"],
        redis=urls["redis"],
        sections=tuple(data),
        _secrets=tuple(dict.fromkeys(secrets)),
    )


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name)
    return table if isinstance(table, dict) else {}


def _secret_values(data: dict[str, Any]):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _secret_values(value)
        elif isinstance(value, str) and value and any(word in key.lower() for word in _SECRET_WORDS):
            if not key.lower().endswith(("_path", "_file")):  # a path to a key is not the key
                yield value
