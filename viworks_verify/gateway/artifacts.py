"""Release artifacts on a gateway host, identified by content: what one ``sha256sum`` printed.

A path, a mode or a size says where a file is and who may change it, not which build it is: a
different program at the right path with the right mode is still the wrong program. The reader hashes
the program at ExecStart, the unit file and its drop-ins, and every regular file of the scripts root;
the checks compare those hashes with the release's, and drift compares them between deployments.
"""

from __future__ import annotations

import dataclasses
import re

from viworks_verify.core.host_snapshot import Record

_LINE = re.compile(r"^(?P<escaped>\\)?(?P<digest>[0-9a-f]{64}) [ *](?P<path>.+)$")
_ERROR = re.compile(r"^sha256sum: (?P<path>.+): (?P<reason>[^:]+)$")


def parse_sha256sum(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """``sha256sum`` output (stdout and stderr together): {path: hex digest}, {path: why it was not hashed}."""
    digests: dict[str, str] = {}
    errors: dict[str, str] = {}
    for line in text.splitlines():
        found = _LINE.match(line)
        if found:
            path = found["path"]
            if found["escaped"]:  # GNU escapes a name holding a backslash or a newline
                path = path.replace("\\n", "\n").replace("\\\\", "\\")
            digests[path] = found["digest"]
            continue
        failed = _ERROR.match(line.strip())
        if failed:
            errors[failed["path"]] = failed["reason"].strip()
    return digests, errors


@dataclasses.dataclass(frozen=True)
class Artifacts(Record):
    """The release artifacts' sha256 as one ``sha256sum`` printed it, as a snapshot's fact."""

    sha256: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> hex digest
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> why it was not hashed

    def of(self, path: str) -> str | None:
        return self.sha256.get(path)
