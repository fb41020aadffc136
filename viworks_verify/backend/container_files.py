"""Facts about files inside a container, several files in one exec (sans I/O).

``file_facts_command`` builds one ``sh`` command (sh, stat, sha256sum, base64: Debian's essential
coreutils, present in a bare image) that reports, per path, whether it exists, its type, mode,
size and owner, whether the exec user may execute and read it, and on request its sha256 or its
content. ``parse_file_facts`` reads the output. Contents are asked for by the caller only for files
it may see (a configuration to parse, a CA certificate): never for a private key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from viworks_verify.core.file_facts import MISSING, FileFacts

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
