"""What changed between two snapshots of a deployment: per host, per canonical fact, in human units.

Hosts are matched by role: the backend with the backend, the edge with the edge, gateways by
name, and when one side has a single gateway, every unmatched gateway of the other side is
compared with it (a dev snapshot with one gateway against production's several). A drift item is
named by its dotted path (``gw-lab-01.unit.Restart``), which is what ``--fail-on-drift`` and
ignores select on. Pure: no I/O, nothing read but the two snapshots.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Iterable
from typing import Any

from viworks_verify.core.canonical import SECRET_PREFIX, Facts, split_path
from viworks_verify.core.sizes import human_size
from viworks_verify.gather.snapshot import RunSnapshot, Snapshot

CHANGED, ADDED, REMOVED = "changed", "added", "removed"
LIST_IN_FULL = 4  # longer lists are shown as what left (-) and what came (+)


@dataclasses.dataclass(frozen=True)
class DriftItem:
    path: str  # host name first: backend-1.containers[viworks-backend-agent-new].networks
    change: str  # changed | added | removed
    before: Any
    after: Any
    volatile: bool = False

    @property
    def host(self) -> str:
        return split_path(self.path)[0]

    def line(self) -> str:
        """One line an operator reads: ``path: before -> after`` in human units, secrets never shown."""
        if self.change == ADDED:
            return f"{self.path}: added {render(self.after)}"
        if self.change == REMOVED:
            return f"{self.path}: removed (was {render(self.before)})"
        if _has_secret(self.before) or _has_secret(self.after):
            return f"{self.path}: secret value changed (values not shown)"
        if (
            isinstance(self.before, list)
            and isinstance(self.after, list)
            and max(len(self.before), len(self.after)) > LIST_IN_FULL
        ):
            changes = [f"-{render(x)}" for x in self.before if x not in self.after] + [
                f"+{render(x)}" for x in self.after if x not in self.before
            ]
            return f"{self.path}: {', '.join(changes) or 'same items, another order'}"
        return f"{self.path}: {render(self.before)} -> {render(self.after)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.change,
            "before": render(self.before),
            "after": render(self.after),
            "volatile": self.volatile,
            "line": self.line(),
        }


@dataclasses.dataclass(frozen=True)
class HostPair:
    """A host of the baseline and the host of the other snapshot it is compared with (either may be None)."""

    label: str  # the name drift paths start with: the newer side's host name (edge: "edge")
    before: Snapshot | None
    after: Snapshot | None


@dataclasses.dataclass
class Drift:
    """Every difference between two run snapshots, and how much was compared."""

    items: list[DriftItem]
    pairs: list[HostPair]
    facts_compared: int
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. secrets not comparable

    def of_host(self, host: str) -> list[DriftItem]:
        """The items of the pairs whose newer side is ``host`` (a target host id)."""
        labels = {pair.label for pair in self.pairs if pair.after is not None and pair.after.host == host}
        return [item for item in self.items if item.host in labels]

    def significant(self) -> list[DriftItem]:
        return [item for item in self.items if not item.volatile]

    def volatile(self) -> list[DriftItem]:
        return [item for item in self.items if item.volatile]

    def summary(self) -> str:
        significant = self.significant()
        if not significant:
            return (
                f"no drift: {len(self.pairs)} hosts, {self.facts_compared} facts compared"
                f" ({len(self.volatile())} volatile differences ignored)"
            )
        counts = {kind: sum(1 for item in significant if item.change == kind) for kind in (CHANGED, ADDED, REMOVED)}
        hosts = sorted({item.host for item in significant})
        return (
            f"drift on {len(hosts)} of {len(self.pairs)} hosts ({', '.join(hosts)}): "
            f"{counts[CHANGED]} changed, {counts[ADDED]} added, {counts[REMOVED]} removed"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "items": [item.to_json() for item in self.significant()],
            "volatile_ignored": len(self.volatile()),
            "notes": self.notes,
        }


def pair_hosts(before: RunSnapshot, after: RunSnapshot) -> list[HostPair]:
    """Match the two snapshots' hosts by role (see the module's docstring)."""
    pairs: list[HostPair] = []
    for kind in ("backend", "edge"):
        olds, news = before.of_kind(kind), after.of_kind(kind)
        for index in range(max(len(olds), len(news))):
            old = olds[index] if index < len(olds) else None
            new = news[index] if index < len(news) else None
            pairs.append(HostPair(_label(new or old), old, new))
    olds = {h.name: h for h in before.of_kind("gateway")}
    news = {h.name: h for h in after.of_kind("gateway")}
    for name in sorted(olds.keys() & news.keys()):
        pairs.append(HostPair(name, olds[name], news[name]))
    only_old = [olds[n] for n in sorted(olds.keys() - news.keys())]
    only_new = [news[n] for n in sorted(news.keys() - olds.keys())]
    if only_new and len(olds) == 1:  # a one-gateway side is the template of the role
        pairs += [HostPair(new.name, next(iter(olds.values())), new) for new in only_new]
        only_new, only_old = [], []
    elif only_old and len(news) == 1:
        pairs += [HostPair(next(iter(news.values())).name, old, next(iter(news.values()))) for old in only_old]
        only_new, only_old = [], []
    pairs += [HostPair(old.name, old, None) for old in only_old]
    pairs += [HostPair(new.name, None, new) for new in only_new]
    return pairs


def _label(snapshot: Snapshot) -> str:
    return "edge" if snapshot.kind == "edge" else snapshot.name


def diff_facts(label: str, before: Facts, after: Facts, compare_secrets: bool = True) -> tuple[list[DriftItem], int]:
    """The drift items of one host's facts, and how many facts were compared."""
    items: list[DriftItem] = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        full = f"{label}.{path}"
        if old is None:
            items.append(DriftItem(full, ADDED, None, new.value, new.volatile))
        elif new is None:
            items.append(DriftItem(full, REMOVED, old.value, None, old.volatile))
        elif old.value != new.value:
            if not compare_secrets and (old.secret or new.secret or _has_secret(old.value) or _has_secret(new.value)):
                continue
            # Volatile only when both sides are (a restart count is noise until it reaches the threshold).
            items.append(DriftItem(full, CHANGED, old.value, new.value, old.volatile and new.volatile))
    return items, len(before.keys() | after.keys())


def diff_runs(before: RunSnapshot, after: RunSnapshot) -> Drift:
    """Every difference between two run snapshots, host by host."""
    notes = []
    compare_secrets = not (before.secret_key_id and after.secret_key_id and before.secret_key_id != after.secret_key_id)
    if not compare_secrets:
        notes.append(
            "secret values not compared: the two snapshots hash them with different keys "
            "(set VIWORKS_SNAPSHOT_KEY to the same value for both)"
        )
    items: list[DriftItem] = []
    compared = 0
    pairs = pair_hosts(before, after)
    for pair in pairs:
        if pair.before is None or pair.after is None:
            present = pair.after or pair.before
            change = ADDED if pair.before is None else REMOVED
            value = f"{present.kind} host {present.host}"
            items.append(
                DriftItem(
                    f"{pair.label}.host", change, None if change == ADDED else value, value if change == ADDED else None
                )
            )
            continue
        host_items, count = diff_facts(
            pair.label, dict(pair.before.canonical()), dict(pair.after.canonical()), compare_secrets
        )
        items += host_items
        compared += count
    return Drift(items, pairs, compared, notes)


# ------------------------------------------------------------------------------------ patterns


def matches(path: str, pattern: str) -> bool:
    """Whether a drift path is selected by a pattern: its segments appear, in order and adjacent, in the
    path (``binary``, ``networks``, ``unit.Restart``, ``gw-lab-01.unit``); a segment may be a glob, and
    ``containers`` or ``viworks-nginx`` selects ``containers[viworks-nginx]``."""
    want, have = split_path(pattern), split_path(path)
    for start in range(len(have) - len(want) + 1):
        if all(_segment_matches(have[start + i], w) for i, w in enumerate(want)):
            return True
    return False


def _segment_matches(segment: str, pattern: str) -> bool:
    if segment == pattern:
        return True
    if "[" in pattern:  # a keyed segment, given whole: compared as text (its brackets are not a glob class)
        return False
    name, _, keyed = segment.partition("[")
    return name == pattern or keyed[:-1] == pattern or fnmatch.fnmatchcase(segment, pattern)


def selected(items: Iterable[DriftItem], patterns: Iterable[str]) -> list[DriftItem]:
    patterns = [p for p in patterns if p]
    return [item for item in items if any(matches(item.path, p) for p in patterns)]


def drift_paths(run: RunSnapshot) -> list[str]:
    """Every path a drift from ``run`` can name: each host's canonical facts under the host's label
    (as ``diff_runs`` names them), and the host itself (``<label>.host``, when it is added or removed)."""
    paths = []
    for snapshot in run.hosts:
        label = _label(snapshot)
        paths += [f"{label}.host", *(f"{label}.{path}" for path in dict(snapshot.canonical()))]
    return paths


def unknown_patterns(patterns: Iterable[str], paths: Iterable[str]) -> list[str]:
    """The patterns (``--fail-on-drift``, ``[drift] fail_on`` or ``ignore``) that select none of
    ``paths`` (a baseline's ``drift_paths``): a typo, which would gate or ignore nothing. Each once,
    in the order given; blank ones are no patterns."""
    paths = list(paths)
    return [p for p in dict.fromkeys(p.strip() for p in patterns) if p and not any(matches(path, p) for path in paths)]


def known_segments(paths: Iterable[str]) -> list[str]:
    """What a pattern may start with, its host aside: the distinct names of the paths' first segment
    after the host label (``binary``, ``config``, ``containers``, ``files``, ``nginx``, ``unit``...), sorted."""
    return sorted({segments[1].partition("[")[0] for segments in map(split_path, paths) if len(segments) > 1})


def unknown_patterns_message(unknown: list[str], paths: Iterable[str], baseline: str = "", limit: int = 24) -> str:
    """One line saying which patterns select nothing of the baseline and what they could select (at
    most ``limit`` segment names): ``unknown drift path 'scripts' (did you mean scripts_root?): it
    selects nothing in the baseline b.json (known: binary, config, ...; a path may start with a host: ...)``."""
    paths = list(paths)
    segments = known_segments(paths)
    names = sorted(
        {part for path in paths for segment in split_path(path) for part in segment.rstrip("]").split("[") if part}
    )
    hints = [
        f"'{p}'" + (f" (did you mean {close[0]}?)" if (close := difflib.get_close_matches(p, names, 1, 0.7)) else "")
        for p in unknown
    ]
    hosts = sorted({split_path(path)[0] for path in paths})
    return (
        f"unknown drift path{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: "
        f"{'they select' if len(unknown) > 1 else 'it selects'}"
        f" nothing in the baseline{' ' + baseline if baseline else ''} (known: {_some(segments, limit)};"
        f" a path may start with a host: {_some(hosts, limit // 3)})"
    )


def _some(names: list[str], limit: int) -> str:
    return (", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")) or "none"


# ------------------------------------------------------------------------------------ rendering


def render(value: Any) -> str:
    """A fact's value in human units: a binary as size and short hash, lists in brackets, secrets hidden."""
    if value is None:
        return "absent"
    if _is_secret(value):
        return "(secret)"
    if isinstance(value, dict) and {"size", "sha256"} <= value.keys():
        size = human_size(value["size"]) if isinstance(value["size"], int) else "size unknown"
        return f"{size} sha256 {str(value['sha256'])[:12]}…"
    if isinstance(value, list):
        return "[" + ", ".join(render(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={render(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def _is_secret(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_PREFIX)


def _has_secret(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_secret(item) for item in value)
    if isinstance(value, dict):
        return any(_has_secret(item) for item in value.values())
    return _is_secret(value)
