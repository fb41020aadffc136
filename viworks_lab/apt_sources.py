"""The Debian mirror this machine already uses, read from its apt sources (never hard-coded)."""

from __future__ import annotations

import re
from pathlib import Path

APT_DIR = Path("/etc/apt")


def debian_source_lines(suite: str, apt_dir: Path = APT_DIR) -> list[str]:
    """One-line ``deb URI SUITE main`` entries for the Debian archive and its security archive.

    Reads both the one-line format (sources.list, *.list) and deb822 (*.sources); keeps entries
    whose suite belongs to ``suite`` (``bookworm``, ``bookworm-updates``, ``bookworm-security``)
    and whose URI serves Debian itself (third-party repositories are left out).
    """
    entries: list[tuple[str, str]] = []
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            entries += _one_line_entries(path.read_text())
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        entries += _deb822_entries(path.read_text())
    lines = []
    for uri, entry_suite in entries:
        if (entry_suite == suite or entry_suite.startswith(suite + "-")) and _is_debian_archive(uri):
            line = f"deb {uri} {entry_suite} main"
            if line not in lines:
                lines.append(line)
    return lines


def _is_debian_archive(uri: str) -> bool:
    return re.search(r"/debian(-security)?/?$", uri) is not None


def _one_line_entries(text: str) -> list[tuple[str, str]]:
    found = []
    for line in text.splitlines():
        parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(parts) >= 3 and parts[0] == "deb":
            found.append((parts[1], parts[2]))
    return found


def _deb822_entries(text: str) -> list[tuple[str, str]]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for entry_suite in fields.get("suites", "").split():
                found.append((uri, entry_suite))
    return found
