"""Facts about files inside a container, several files in one exec (sans I/O).

``file_facts_command`` builds one ``sh`` command (sh, stat, sha256sum, base64: Debian's essential
coreutils, present in a bare image) that reports, per path, whether it exists, its type, mode,
size and owner, whether the exec user may execute and read it, and on request its sha256 or its
content. ``parse_file_facts`` reads the output. Contents are asked for by the caller only for files
it may see (a configuration to parse, a CA certificate): never for a private key.

What a backend snapshot keeps of such files is a ``ContainerFiles`` (path -> ``FileFacts``), saved in
``core.file_facts.container_json``'s layout: ``AgentFiles`` (the agent's binary and configuration)
and ``TlsFiles`` (nginx's certificates and keys) say each what they are as canonical facts.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self

from viworks_verify.core.canonical import Canonical, Observed, key, octal_mode
from viworks_verify.core.file_facts import MISSING, FileFacts, container_json, from_container_json
from viworks_verify.pki.pem import PemCertificates

# Arguments: "--stat", "--hash" or "--content" switch what is reported for the paths after them.
_SCRIPT = r"""
what=--stat
for p in "$@"; do
  case "$p" in --stat|--hash|--content) what=$p; continue;; esac
  printf '@@ %s\n' "$p"
  if [ ! -e "$p" ]; then printf 'kind missing\n'; continue; fi
  stat -L -c 'kind %F
mode %a
size %s
owner %U:%G' -- "$p" 2>/dev/null
  [ -x "$p" ] && printf 'executable yes\n'
  [ -r "$p" ] && printf 'readable yes\n'
  [ -f "$p" ] && [ -r "$p" ] || continue
  case "$what" in
    --hash) printf 'sha256 %s\n' "$(sha256sum -- "$p" 2>/dev/null | cut -d' ' -f1)";;
    --content) printf 'content %s\n' "$(base64 -w0 -- "$p" 2>/dev/null)";;
  esac
done
"""


def file_facts_command(stat: Iterable[str] = (), hash: Iterable[str] = (), content: Iterable[str] = ()) -> list[str]:
    """argv for one exec reporting ``stat`` paths, ``hash`` paths with their sha256, ``content`` paths with content."""
    return ["sh", "-c", _SCRIPT, "sh", "--stat", *stat, "--hash", *hash, "--content", *content]


def parse_file_facts(text: str) -> dict[str, FileFacts]:
    facts: dict[str, dict] = {}
    current: dict | None = None
    for line in text.splitlines():
        if line.startswith("@@ "):
            current = facts.setdefault(
                line[3:], {"path": line[3:], "kind": MISSING, "runnable": False, "readable": False}
            )
            continue
        if current is None:
            continue
        key, _, value = line.partition(" ")
        if key == "kind":
            current["kind"] = value
        elif key == "mode":
            current["mode"] = int(value, 8)
        elif key == "size":
            current["size"] = int(value)
        elif key == "owner":
            current["user"], _, current["group"] = value.partition(":")
        elif key == "executable":
            current["runnable"] = value == "yes"
        elif key == "readable":
            current["readable"] = value == "yes"
        elif key == "sha256" and value:
            current["sha256"] = value.lower()
        elif key == "content":
            try:
                current["content"] = base64.b64decode(value, validate=True)
            except binascii.Error:
                current["content"] = None
    return {path: FileFacts(**values) for path, values in facts.items()}


@dataclasses.dataclass(frozen=True)
class ContainerFiles(Mapping[str, FileFacts]):
    """Files of a container by path, as a snapshot keeps them (owner names, content as text)."""

    by_path: dict[str, FileFacts]

    @classmethod
    def kept(cls, files: Mapping[str, FileFacts]) -> Self:
        """``files`` as a snapshot keeps them, so a check judges the same facts live and on a recording."""
        return cls.from_json({path: container_json(facts) for path, facts in files.items()})

    def __getitem__(self, path: str) -> FileFacts:
        return self.by_path[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_path)

    def __len__(self) -> int:
        return len(self.by_path)

    def to_json(self) -> dict[str, Any]:
        return {path: container_json(facts) for path, facts in self.by_path.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls({path: from_container_json(item) for path, item in data.items()})


class AgentFiles(ContainerFiles):
    """The agent's binary (with its sha256) and configuration (without its content)."""

    def canonical(self, path: str) -> Canonical:
        """Each file under ``path[<file>]``; the binary (the file with a sha256) also as one fact,
        ``binary``, beside the gateway's: what the release check judges."""
        for file_path, facts in sorted(self.by_path.items()):
            if facts.sha256:
                yield "binary", Observed({"path": file_path, "size": facts.size, "sha256": facts.sha256})
            yield f"{key(path, file_path)}.kind", Observed(facts.kind)
            yield f"{key(path, file_path)}.mode", Observed(octal_mode(facts.mode))
            yield f"{key(path, file_path)}.owner", Observed(facts.owner_names)
            if not facts.sha256:
                yield f"{key(path, file_path)}.size", Observed(facts.size)


class TlsFiles(ContainerFiles):
    """The agent server's certificate, key and client CA files (certificates with content, keys stat only)."""

    def canonical(self, path: str) -> Canonical:
        """Each file's mode and owner under ``files[<file>]`` (with the agent's files: one namespace of
        the host's files, whatever the fact), each certificate file's certificates under
        ``certificates[<file>]``."""
        for file_path, facts in sorted(self.by_path.items()):
            yield f"{key('files', file_path)}.mode", Observed(octal_mode(facts.mode))
            yield f"{key('files', file_path)}.owner", Observed(facts.owner_names)
            if facts.content:
                yield from PemCertificates(facts.content.decode(errors="replace")).canonical(
                    key("certificates", file_path)
                )
