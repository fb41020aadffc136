"""What a systemd unit logged since it last started: journalctl for the unit's current invocation.

Every start of a unit (restarts included) gets a new InvocationID, and journald stamps each line
of the unit's processes with it, so "since the last start" is "this invocation". Sans-I/O: the
reading of ``journalctl -o short-iso`` lines. The gateway reader's script selects them on the host
(the last match and the last few lines), so a long-running agent's journal never crosses the connection.
"""

from __future__ import annotations

import dataclasses
import re

from viworks_verify.core.canonical import Canonical, Observed
from viworks_verify.core.host_snapshot import Record

_SHORT_ISO = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{2}:?\d{2})\s+\S+\s+(?P<ident>[^:]+):\s?(?P<message>.*)$"
)


@dataclasses.dataclass(frozen=True)
class UnitJournal(Record):
    """What the unit logged since its last start, as a snapshot's fact (lines redacted by the reader)."""

    connected: str | None = None  # the last line matching the target's connected pattern
    quote: str | None = None  # the line a failure message quotes (``line_to_quote``)
    lines: int = 0  # how many lines were looked at
    looked_for: bool = True  # whether the target has a connected pattern to look for
    trouble: bool = False  # whether the quoted line reports trouble (``reports_trouble``)

    def canonical(self, path: str) -> Canonical:
        yield f"{path}.connected", Observed(self.connected, volatile=True)


@dataclasses.dataclass(frozen=True)
class JournalLine:
    timestamp: str
    ident: str
    message: str

    def __str__(self) -> str:
        return f"{self.timestamp} {self.message}"


def parse_lines(text: str) -> list[JournalLine]:
    lines = []
    for raw in text.splitlines():
        match = _SHORT_ISO.match(raw.strip())
        if match:
            lines.append(JournalLine(match["ts"], match["ident"], match["message"].strip()))
        elif raw.strip() and lines:  # a continuation of a multi-line message
            lines[-1] = dataclasses.replace(lines[-1], message=lines[-1].message + " " + raw.strip())
    return lines


_TROUBLE = re.compile(r"(?i)\b(error|failed|refused|denied|cannot|unable|mismatch|rejected|timed out)\b")


def line_to_quote(lines: list[JournalLine]) -> JournalLine | None:
    """The line that best says why: the last one reporting trouble, else the last one."""
    for line in reversed(lines):
        if _TROUBLE.search(line.message):
            return line
    return lines[-1] if lines else None


def reports_trouble(line: JournalLine) -> bool:
    """Whether a line says something went wrong (an error, a refusal, a failure to connect)."""
    return bool(_TROUBLE.search(line.message))
