"""A run's snapshot: every host of a target as one run gathered them, saved and loaded as one JSON file.

Each host kind's snapshot is declared beside its reader (``gateway.snapshot``, ``backend.snapshot``,
``edge.snapshot``); a snapshot is JSON-serializable and holds no secret value (secrets appear as a keyed
hash, ``core.secret_hash``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from viworks_verify.backend.snapshot import BackendSnapshot
from viworks_verify.edge.snapshot import EdgeSnapshot
from viworks_verify.gateway.snapshot import GatewaySnapshot

FORMAT = "viworks-snapshot/1"


class SnapshotFormatError(ValueError):
    """A file that is not a snapshot this version reads; the message is one line."""


Snapshot = GatewaySnapshot | BackendSnapshot | EdgeSnapshot
_KINDS = {"gateway": GatewaySnapshot, "backend": BackendSnapshot, "edge": EdgeSnapshot}


def host_snapshot_from_json(data: Any, source: str = "snapshot") -> Snapshot:
    """One host's snapshot from its JSON, whatever its kind."""
    kind = _KINDS.get(data.get("kind")) if isinstance(data, dict) else None
    if kind is None:
        raise SnapshotFormatError(
            f"{source}: a host of unknown kind {data.get('kind') if isinstance(data, dict) else data!r}"
        )
    return kind.from_json(data)


@dataclasses.dataclass
class RunSnapshot:
    """Every host of a target as one run gathered them."""

    target: str
    taken_at: float
    hosts: list = dataclasses.field(default_factory=list)  # [Snapshot]
    secret_key_id: str = ""  # SecretHasher.key_id of the hashes in it ("": not recorded)

    def of_kind(self, kind: str) -> list[Snapshot]:
        return [h for h in self.hosts if h.kind == kind]

    def by_host(self, host_id: str) -> Snapshot | None:
        return next((h for h in self.hosts if h.host == host_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "target": self.target,
            "taken_at": self.taken_at,
            "secret_key_id": self.secret_key_id,
            "hosts": [h.to_json() for h in self.hosts],
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, data: Any, source: str = "snapshot") -> RunSnapshot:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise SnapshotFormatError(f"{source}: not a {FORMAT} snapshot (format: {found!r})")
        try:
            hosts = [host_snapshot_from_json(item, source) for item in data.get("hosts", [])]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SnapshotFormatError):
                raise
            raise SnapshotFormatError(
                f"{source}: a host entry is not a snapshot ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
        return cls(
            str(data.get("target", "")), float(data.get("taken_at", 0.0)), hosts, str(data.get("secret_key_id") or "")
        )

    @classmethod
    def load(cls, path: Path) -> RunSnapshot:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SnapshotFormatError(f"{path}: no such snapshot file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SnapshotFormatError(f"{path}: not a JSON snapshot ({type(exc).__name__}: {str(exc)[:120]})") from None
        return cls.from_json(data, str(path))
