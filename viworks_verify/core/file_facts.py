"""A file as a reader found it: the one model for a gateway host's files and a container's.

Two readers fill it: ``gateway.file_stat`` (one GNU ``stat`` over many paths on a gateway host) and
``backend.container_files`` (one ``sh`` exec inside a container, which also tests access, hashes and reads
contents on request). Symlinks are followed by both: what matters is the file a program opens.
Each reader's snapshot field keeps its own JSON layout (``stat_json``, ``container_json``): recorded
snapshots and baselines stay readable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from viworks_verify.core.canonical import Canonical, Observed, key, octal_mode

MISSING = "missing"


@dataclasses.dataclass(frozen=True)
class FileFacts:
    path: str
    kind: str  # "regular file", "directory", ... (the target's, symlinks followed), or "missing"
    mode: int | None = None  # permission bits, set-id and sticky included
    user: str | None = None
    group: str | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    runnable: bool | None = None  # the reading user may execute it ([ -x ]), when the reader tested that
    readable: bool | None = None  # the reading user may read it, when tested
    sha256: str | None = None
    content: bytes | None = dataclasses.field(default=None, repr=False)

    @property
    def exists(self) -> bool:
        return self.kind != MISSING

    @property
    def is_file(self) -> bool:
        return self.kind in ("regular file", "regular empty file")

    @property
    def executable(self) -> bool:
        """Executable: by the reading user when the reader tested it, else by its mode bits."""
        if self.runnable is not None:
            return self.runnable
        return self.is_file and bool((self.mode or 0) & 0o111)

    @property
    def octal(self) -> str:
        return format(self.mode, "04o") if self.mode is not None else "?"

    @property
    def group_writable(self) -> bool:
        return bool((self.mode or 0) & 0o020)

    @property
    def world_writable(self) -> bool:
        return bool((self.mode or 0) & 0o002)

    @property
    def owner(self) -> str:
        """``root(0)`` when the uid is known, else ``root:root``; ``?`` when not read."""
        if self.uid is not None:
            return f"{self.user}({self.uid})"
        return f"{self.user}:{self.group}" if self.user else "?"

    @property
    def owner_names(self) -> str | None:
        """``root:root``, the names alone (a container's reader has no uid); None when not read."""
        return f"{self.user}:{self.group}" if self.user is not None else None


@dataclasses.dataclass(frozen=True)
class FileTable:
    """What one reading of many paths found: each path's facts, or why it could not be read."""

    stats: dict[str, FileFacts]
    errors: dict[str, str]

    def get(self, path: str) -> FileFacts | None:
        return self.stats.get(path)

    def absence(self, path: str) -> str:
        """Why ``path`` has no facts: ``does not exist`` or the error the reader gave."""
        reason = self.errors.get(path, "No such file or directory")
        return "does not exist" if reason == "No such file or directory" else f"cannot be read ({reason})"

    def to_json(self) -> dict[str, Any]:
        return {"stats": {path: stat_json(facts) for path, facts in self.stats.items()}, "errors": dict(self.errors)}

    @classmethod
    def from_json(cls, data: Any) -> FileTable:
        return cls(
            {path: from_stat_json(stat) for path, stat in (data or {}).get("stats", {}).items()},
            dict((data or {}).get("errors", {})),
        )

    def canonical(self, path: str) -> Canonical:
        """Each file by kind, mode and owner; one that could not be read by why."""
        for name, facts in sorted(self.stats.items()):
            yield f"{key(path, name)}.kind", Observed(facts.kind)
            yield f"{key(path, name)}.mode", Observed(octal_mode(facts.mode))
            yield f"{key(path, name)}.owner", Observed(f"{facts.user}:{facts.group}")
        for name, reason in sorted(self.errors.items()):
            yield f"{key(path, name)}.kind", Observed(f"unreadable: {reason}")


# -- the snapshot fields' JSON layouts ---------------------------------------------------------------


def stat_json(facts: FileFacts) -> dict[str, Any]:
    """A gateway file as the snapshot's ``files.stats`` holds it."""
    return {
        "path": facts.path,
        "mode": facts.mode,
        "uid": facts.uid,
        "user": facts.user,
        "gid": facts.gid,
        "group": facts.group,
        "kind": facts.kind,
        "size": facts.size,
    }


def from_stat_json(data: dict[str, Any]) -> FileFacts:
    return FileFacts(
        data["path"],
        data["kind"],
        data.get("mode"),
        data.get("user"),
        data.get("group"),
        data.get("uid"),
        data.get("gid"),
        data.get("size"),
    )


def container_json(facts: FileFacts) -> dict[str, Any]:
    """A container file as the backend snapshot holds it (``owner`` as ``user:group``, content as text)."""
    return {
        "path": facts.path,
        "kind": facts.kind,
        "mode": facts.mode,
        "size": facts.size,
        "owner": facts.owner_names,
        "executable": bool(facts.runnable),
        "readable": bool(facts.readable),
        "sha256": facts.sha256,
        "content": facts.content.decode(errors="replace") if facts.content is not None else None,
    }


def from_container_json(data: dict[str, Any]) -> FileFacts:
    user, _, group = (data.get("owner") or "").partition(":")
    content = data.get("content")
    return FileFacts(
        data["path"],
        data["kind"],
        data.get("mode"),
        user or None,
        group or None,
        size=data.get("size"),
        runnable=bool(data.get("executable")),
        readable=bool(data.get("readable")),
        sha256=data.get("sha256"),
        content=content.encode() if content is not None else None,
    )
