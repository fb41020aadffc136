"""``viworks-verify``: save a deployment's snapshot, and say what changed between two of them.

    viworks-verify snapshot --target production -o prod.json
    viworks-verify diff dev.json prod.json [--html diff.html] [--all] [--ignore PATTERN]
    viworks-verify merge shard-1.xml shard-2.xml --junit gate.xml [--html gate.html] [--json-summary gate.json]

``snapshot`` gathers every host of the target and the TLS edge, as the smoke gate does, and writes
them as one JSON file (no secret values: a keyed hash, keyed by ``VIWORKS_SNAPSHOT_KEY``, stands
for each). ``diff`` compares two such files host by host (``viworks_verify.report.drift``). ``merge``
makes the shards of one gate (``pytest --shard K/N``) one verdict, JUnit and report
(``viworks_verify.report.shards``). Exit codes: 0 written / identical / GO, 1 drift / NO-GO, 4 usage
error (one line on stderr).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import time
from pathlib import Path
from typing import NoReturn

from viworks_verify.core.redaction import REDACTOR
from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.gather.gathering import Gathering
from viworks_verify.gather.snapshot import RunSnapshot, SnapshotFormatError
from viworks_verify.report.drift import Drift, DriftItem, diff_runs
from viworks_verify.report.drift import selected as drift_selected
from viworks_verify.report.shards import ShardReportError, merge_junit
from viworks_verify.target.connections import target_hosts
from viworks_verify.target.inventory import Inventory, InventoryError
from viworks_verify.target.secrets import SNAPSHOT_KEY, Secrets
from viworks_verify.target.settings import SettingsError, load_settings

EXIT_OK, EXIT_DRIFT, EXIT_USAGE = 0, 1, 4  # EXIT_DRIFT: drift (diff), NO-GO (merge)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own exit code is 2; ours for usage is 4
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="viworks-verify", description="Snapshots of a ViWorkS deployment, and the drift between two.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    snap = commands.add_parser("snapshot", help="gather every host of a target and write the snapshot as JSON")
    snap.add_argument("--target", required=True, help="target name (targets/<name>.toml) or settings file")
    snap.add_argument("--targets-dir", type=Path, default=Path("targets"))
    snap.add_argument("-o", "--output", required=True, type=Path)
    diff = commands.add_parser("diff", help="what changed from snapshot A to snapshot B (exit 1 on drift)")
    diff.add_argument("before", type=Path)
    diff.add_argument("after", type=Path)
    diff.add_argument("--html", type=Path, help="also write the drift as an HTML page")
    diff.add_argument(
        "--all", action="store_true", help="list volatile differences too (PIDs, start times, addresses, clocks)"
    )
    diff.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave out drift whose path matches (e.g. certificates, gw-lab-01.unit.Restart); "
        "repeatable, comma-separated",
    )
    merge = commands.add_parser(
        "merge", help="the shards of one gate (pytest --shard K/N) as one: verdict, JUnit, HTML (exit 1 on NO-GO)"
    )
    merge.add_argument("shards", nargs="+", type=Path, help="each shard's JUnit file (--junitxml)")
    merge.add_argument("--junit", type=Path, required=True, help="write the merged JUnit here")
    merge.add_argument("--html", type=Path, help="write the merged report (verdict, host grid) here")
    merge.add_argument("--json-summary", type=Path, help="write the merged JSON summary here")
    merge.add_argument("--target", default="", help="the target's name, for the report")
    args = parser.parse_args(argv)
    commands_by_name = {"snapshot": snapshot_command, "diff": diff_command, "merge": merge_command}
    return commands_by_name[args.command](args)


def merge_command(args: argparse.Namespace) -> int:
    try:
        merged = merge_junit(args.shards)
    except ShardReportError as exc:
        print(f"viworks-verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path, write in (
        (args.junit, lambda p: merged.junit().write(p, encoding="utf-8", xml_declaration=True)),
        (args.html, lambda p: p.write_text(merged.html(args.target or "the target"))),
        (args.json_summary, lambda p: p.write_text(json.dumps(merged.summary(args.shards), indent=2) + "\n")),
    ):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(merged.counts().items()))
    print(f"{merged.verdict}: {len(args.shards)} shards, {counts}")
    return EXIT_OK if merged.verdict == "GO" else EXIT_DRIFT


def snapshot_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.target, args.targets_dir)
        hosts = target_hosts(settings, Inventory.of_target(settings))
    except (SettingsError, InventoryError) as exc:
        print(f"viworks-verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    key = Secrets.load(settings.secrets_file).snapshot_key()
    if key is None:
        print(
            f"viworks-verify: {SNAPSHOT_KEY} is not set: secret values are hashed with a one-off key, "
            "so this snapshot's secrets compare with no other snapshot's",
            file=sys.stderr,
        )
    started = time.monotonic()
    gathering = Gathering(settings, SecretHasher(key))
    try:
        gathering.start_hosts(hosts.values())
        gathering.start_edge()
        run = gathering.run_snapshot()
    finally:
        gathering.close()
    run.save(args.output)
    for host in run.hosts:
        if not host.connection.ok:
            print(f"viworks-verify: {REDACTOR.redact(host.connection.problem)}", file=sys.stderr)
    print(
        f"wrote {args.output}: {len(run.hosts)} hosts of target {settings.name} in {time.monotonic() - started:.1f} s"
    )
    return EXIT_OK


def diff_command(args: argparse.Namespace) -> int:
    try:
        before, after = RunSnapshot.load(args.before), RunSnapshot.load(args.after)
    except SnapshotFormatError as exc:
        print(f"viworks-verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    drift = diff_runs(before, after)
    ignored = [p.strip() for text in args.ignore for p in text.split(",") if p.strip()]
    left_out = drift_selected(drift.items, ignored)
    shown = [item for item in drift.items if (args.all or not item.volatile) and item not in left_out]
    significant = [item for item in shown if not item.volatile]
    print(_headline(drift, significant, args))
    for note in drift.notes:
        print(f"note: {note}")
    for item in shown:
        print(("(volatile) " if item.volatile else "") + REDACTOR.redact(item.line()))
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(drift_html(drift, shown, str(args.before), str(args.after)))
    return EXIT_DRIFT if significant else EXIT_OK


def _headline(drift: Drift, significant: list[DriftItem], args: argparse.Namespace) -> str:
    if not significant:
        return (
            f"{args.before} -> {args.after}: "
            f"{drift.summary() if not drift.significant() else 'no drift outside the ignored paths'}"
        )
    hosts = sorted({item.host for item in significant})
    return f"{args.before} -> {args.after}: {len(significant)} facts drifted on {', '.join(hosts)}"


def drift_html(drift: Drift, shown: list[DriftItem], before: str, after: str) -> str:
    """A self-contained page: the summary, then one row per drifted fact."""
    rows = "".join(
        f"<tr class='{html.escape(item.change)}{' volatile' if item.volatile else ''}'>"
        f"<td><code>{html.escape(item.path)}</code></td>"
        f"<td>{html.escape(item.change)}</td><td>{html.escape(REDACTOR.redact(item.to_json()['before']))}</td>"
        f"<td>{html.escape(REDACTOR.redact(item.to_json()['after']))}</td></tr>"
        for item in shown
    )
    notes = "".join(f"<p class='note'>{html.escape(note)}</p>" for note in drift.notes)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ViWorkS drift</title><style>"
        "body{font-family:sans-serif;margin:2em} "
        "td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
        ".changed td:nth-child(2){color:#b35c00}.added td:nth-child(2){color:#1a7f37}"
        ".removed td:nth-child(2){color:#cf222e}"
        ".volatile{color:#888}</style></head><body>"
        f"<h1>Drift: {html.escape(before)} &rarr; {html.escape(after)}</h1>"
        f"<p><strong>{html.escape(drift.summary())}</strong></p>{notes}"
        f"<table><tr><th>fact</th><th>change</th><th>before</th><th>after</th></tr>{rows}</table></body></html>\n"
    )


if __name__ == "__main__":
    sys.exit(main())
