"""The backend agent's TOML configuration, read without ever showing a secret (sans I/O).

``parse_backend_config`` takes the file's text; what it returns shows URLs only with the password
masked (``postgresql://viworks:***@viworks-postgres:5432/viworks_agent``) and lists the secret
values it holds, so a caller can register them with the redactor before anything is printed.
A file that does not parse raises ``BackendConfigError`` whose message quotes no content.
``RecordedConfig`` is what a backend snapshot keeps of it: the ports, the sections, the URLs masked
and their passwords, like every secret value, only as a keyed hash.
"""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any
from urllib.parse import urlsplit

from viworks_verify.core.canonical import Canonical, flatten
from viworks_verify.core.host_snapshot import Record
from viworks_verify.core.redaction import MARK
from viworks_verify.core.secret_hash import SecretHasher

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


@dataclasses.dataclass(frozen=True)
class RecordedUrl(Record):
    """A service URL as a snapshot keeps it: masked (``redacted``), by its parts, its password as a keyed hash."""

    redacted: str
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    password: str | None = None  # hmac-sha256:...; None without a password

    @classmethod
    def of(cls, url: ServiceUrl, hasher: SecretHasher) -> RecordedUrl:
        password = hasher(url._password) if url._password else None
        return cls(url.redacted, url.scheme, url.host, url.port, url.path, password)

    def __str__(self) -> str:
        return self.redacted


@dataclasses.dataclass(frozen=True)
class RecordedConfig:
    """``backend-agent.toml`` as a snapshot keeps it: what the checks need, and its secrets as keyed hashes."""

    server_port: Any  # as written (see BackendConfig)
    ws_port: Any
    sections: tuple[str, ...]
    database: RecordedUrl | None
    redis: RecordedUrl | None
    secrets: tuple[str, ...]  # the keyed hash of each secret value, sorted

    @classmethod
    def of(cls, config: BackendConfig, hasher: SecretHasher) -> RecordedConfig:
        def url(value: ServiceUrl | None) -> RecordedUrl | None:
            return RecordedUrl.of(value, hasher) if value is not None else None

        return cls(
            config.server_port,
            config.ws_port,
            config.sections,
            url(config.database),
            url(config.redis),
            tuple(sorted(hasher(secret) for secret in config.secrets)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "server_port": self.server_port,
            "ws_port": self.ws_port,
            "sections": list(self.sections),
            "database": self.database.to_json() if self.database else None,
            "redis": self.redis.to_json() if self.redis else None,
            "secrets": list(self.secrets),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordedConfig:
        def url(item: dict[str, Any] | None) -> RecordedUrl | None:
            return RecordedUrl.from_json(item) if item else None

        return cls(
            data.get("server_port"),
            data.get("ws_port"),
            tuple(data.get("sections", ())),
            url(data.get("database")),
            url(data.get("redis")),
            tuple(data.get("secrets", ())),
        )

    def canonical(self, path: str) -> Canonical:
        """Its values flattened, each URL by its parts (its masked text says nothing more)."""
        data = self.to_json()
        for name in ("database", "redis"):
            if data[name] is not None:
                del data[name]["redacted"]
        yield from flatten(path, data)


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
