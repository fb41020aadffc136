"""One way for a check to fail: a one-line verdict an operator can act on.

Every check states its failure as ``fail(host, subject, expected=..., found=..., evidence=...)``,
which reads ``host: subject: expected E; found F (evidence)``: where, what, what should be,
what is, and what backs it or what to run next. No pytest here: ``fail`` raises ``CheckFailed``
(an AssertionError, so plain pytest still reports it), and the plugin shows its text as the
whole failure: no traceback, no introspection of the comparison.
"""

from __future__ import annotations

from typing import NoReturn


class CheckFailed(AssertionError):
    """A check's verdict; its text is the one line the terminal, JUnit and the report show."""


def verdict_line(
    host: str, subject: str | None = None, *, expected: str, found: str, evidence: str | None = None
) -> str:
    """``host: subject: expected E; found F (evidence)`` on one line (the subject and evidence when given)."""
    where = f"{host}: {subject}: " if subject else f"{host}: "
    line = f"{where}expected {expected}; found {found}"
    if evidence:
        line += f" ({evidence})"
    return " ".join(line.split("\n"))


def fail(host: str, subject: str | None = None, *, expected: str, found: str, evidence: str | None = None) -> NoReturn:
    """End the running check with its verdict (see ``verdict_line``)."""
    raise CheckFailed(verdict_line(host, subject, expected=expected, found=found, evidence=evidence))
