"""How the gate scales with the fleet: the smoke gate on 1, 4 and 8 gateway hosts, beside the runbook way.

    .venv/bin/python benchmarks/fleet.py [--runs 5] [--sizes 1,4,8]

For each fleet size: ``viworks-lab up --gateways N``, then ``runs`` times each, one kind after the other:
- the whole smoke gate (``pytest -m smoke``, start-up included), wall time;
- the gate's gateway host checks alone (``pytest -m "infra and gateway"``), wall time;
- the one-ssh-per-check shell baseline (``benchmarks/gateway_checks_by_ssh.sh``) on the same
  gateway checks, wall time.
Then, on the largest fleet, the same lab twice: the gate on one of its gateways (a target naming
only gw-lab-01) and on all of them, runs alternating, so both see the same machine, the same idle
gateway containers and the same drift of a shared machine over minutes: what the gate itself adds
per gateway. Last, one gateway host is made unreachable (its container stopped) and the gate is
timed once: it must end within the connect timeout + 10 s with exactly one failure for it.
Writes reports/fleet-bench.md (medians and ratios) and .json. Leaves the lab at one gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REPORTS = ROOT / "reports"
BASELINE = ROOT / "benchmarks" / "gateway_checks_by_ssh.sh"
# As an operator's shell runs it: bytecode caches on (some CI images switch them off).
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def lab(*args: str) -> None:
    subprocess.run([str(BIN / "viworks-lab"), *args], cwd=ROOT, check=True, capture_output=True, env=ENV)


def timed(argv: list[str]) -> tuple[float, int]:
    seconds, code, _ = timed_with_cpu(argv)
    return seconds, code


def timed_with_cpu(argv: list[str]) -> tuple[float, int, float]:
    """Wall time, exit code, and the CPU seconds the run spent on the runner (its process tree: pytest,
    the gathering child, ssh clients), as opposed to the CPU of the lab's hosts sharing this machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=ENV)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, done.returncode, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def gate(marker: str, junit: Path | None = None) -> tuple[float, int]:
    argv = [str(BIN / "pytest"), "-m", marker, "-q", "-p", "no:cacheprovider", "--target", "lab"]
    if junit is not None:
        argv.append(f"--junitxml={junit}")
    return timed(argv)


def baseline(count: int) -> tuple[float, int]:
    hosts = [f"gw-lab-{index:02d}" for index in range(1, count + 1)]
    return timed(["sh", str(BASELINE), str(ROOT / ".lab" / "ssh_config"), "127.0.0.1:443", "agent.lab.test", *hosts])


def measure(count: int, runs: int) -> dict[str, object]:
    lab("up", "--gateways", str(count))
    gate("smoke")  # warm: the ssh connections and caches an operator's second run has
    samples: dict[str, list[float]] = {"smoke": [], "gateway_checks": [], "baseline": [], "smoke_runner_cpu": []}
    codes: dict[str, set[int]] = {name: set() for name in samples}
    smoke = [str(BIN / "pytest"), "-m", "smoke", "-q", "-p", "no:cacheprovider", "--target", "lab"]
    # Each kind in its own block, the baseline last: its hundreds of ssh sessions leave the gateway
    # hosts busy for a while after (sshd, sudo, journald on the shared cores), which would slow
    # whatever ran next.
    for _ in range(runs):
        seconds, code, cpu = timed_with_cpu(smoke)
        samples["smoke"].append(seconds)
        samples["smoke_runner_cpu"].append(cpu)
        codes["smoke"].add(code)
    for name, run in (("gateway_checks", lambda: gate("infra and gateway")), ("baseline", lambda: baseline(count))):
        for _ in range(runs):
            seconds, code = run()
            samples[name].append(seconds)
            codes[name].add(code)
    codes.pop("smoke_runner_cpu")
    return {
        "gateways": count,
        "runs": runs,
        **{f"{name}_s": statistics.median(values) for name, values in samples.items()},
        "samples": samples,
        "exit_codes": {name: sorted(found) for name, found in codes.items()},
    }


def one_gateway_target() -> Path:
    """A target for the lab as it is, but naming only its first gateway host (targets are data)."""
    lab_target = ROOT / "targets" / "lab.toml"
    generated = (ROOT / ".lab" / "generated.toml").read_text()
    inventory = Path(
        next(
            line.split("=", 1)[1].strip().strip('"') for line in generated.splitlines() if line.startswith("inventory")
        )
    )
    kept, in_gateways = [], False
    for line in inventory.read_text().splitlines():
        if line.startswith("["):
            in_gateways = line.strip() == "[gateway]"
        elif in_gateways and line.strip() and not line.startswith(("#", "gw-lab-01 ")):
            continue
        kept.append(line)
    REPORTS.mkdir(exist_ok=True)
    hosts = REPORTS / "fleet-bench-one-gateway.ini"
    hosts.write_text("\n".join(kept) + "\n")
    target = REPORTS / "fleet-bench-one-gateway.toml"
    target.write_text(f'include = ["{lab_target}"]\ninventory = "{hosts}"\n\n[gateway]\nagent_ids = ["gw-lab-01"]\n')
    return target


def same_lab(count: int, runs: int) -> dict[str, object]:
    """On a lab of ``count`` gateways: the gate on one of them and on all, alternating."""
    lab("up", "--gateways", str(count))
    smoke = [str(BIN / "pytest"), "-m", "smoke", "-q", "-p", "no:cacheprovider"]
    one = [*smoke, f"--target={one_gateway_target()}"]
    every = [*smoke, "--target", "lab"]
    timed(one), timed(every)  # warm
    samples: dict[str, list[float]] = {"one": [], "every": []}
    codes: set[int] = set()
    for _ in range(runs):
        for name, argv in (("one", one), ("every", every)):
            seconds, code = timed(argv)
            samples[name].append(seconds)
            codes.add(code)
    return {
        "gateways": count,
        "runs": runs,
        "one_s": statistics.median(samples["one"]),
        "every_s": statistics.median(samples["every"]),
        "samples": samples,
        "exit_codes": sorted(codes),
    }


def unreachable(count: int) -> dict[str, object]:
    victim = f"gw-lab-{count:02d}"
    subprocess.run(["docker", "stop", "-t", "1", f"viworks-{victim}"], check=True, capture_output=True)
    junit = REPORTS / "fleet-bench-unreachable.xml"
    try:
        seconds, code = gate("smoke", junit)
    finally:
        subprocess.run(["docker", "start", f"viworks-{victim}"], check=True, capture_output=True)
    failures = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failures.append(case.get("name"))
    return {
        "gateways": count,
        "unreachable": victim,
        "seconds": seconds,
        "exit_code": code,
        "failures": failures,
        "failures_of_victim": [f for f in failures if victim in f],
        "failures_of_others": [f for f in failures if victim not in f],
    }


def write(rows: list[dict[str, object]], same: dict[str, object], dead: dict[str, object]) -> None:
    one = next(row for row in rows if row["gateways"] == 1) if any(row["gateways"] == 1 for row in rows) else rows[0]
    lines = [
        "# Fleet benchmark",
        "",
        (
            f"Median of {one['runs']} runs each, wall time with start-up, "
            f"on this machine ({os.cpu_count()} cores; the gateway hosts"
        ),
        "are containers on the same cores). `smoke`: the whole gate (`pytest -m smoke`). `gateway checks`: the gate's",
        'gateway host checks alone (`pytest -m "infra and gateway"`); `baseline`: the same checks the runbook way,',
        "one `ssh host 'command'` per check (`benchmarks/gateway_checks_by_ssh.sh`).",
        "",
        (
            "`smoke runner CPU`: CPU seconds the gate itself spent on the runner "
            "(pytest, the gathering child, ssh clients),"
        ),
        "not counting the lab's hosts on the same cores.",
        "",
        (
            "| gateways | smoke | vs 1 gateway | smoke runner CPU | vs 1 gateway "
            "| gateway checks | baseline | baseline / gateway checks |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['gateways']} | {row['smoke_s']:.2f} s | {row['smoke_s'] / one['smoke_s']:.2f}x "
            f"| {row['smoke_runner_cpu_s']:.2f} s | {row['smoke_runner_cpu_s'] / one['smoke_runner_cpu_s']:.2f}x "
            f"| {row['gateway_checks_s']:.2f} s | {row['baseline_s']:.2f} s "
            f"| {row['baseline_s'] / row['gateway_checks_s']:.1f}x |"
        )
    lines += [
        "",
        f"The same lab of {same['gateways']} gateways, the gate on one of them and on all {same['gateways']}, "
        f"runs alternating (median of {same['runs']} each): {same['one_s']:.2f} s and {same['every_s']:.2f} s, "
        f"{same['every_s'] / same['one_s']:.2f}x (exit codes {same['exit_codes']}).",
        "",
        f"One unreachable gateway ({dead['unreachable']}) among {dead['gateways']}: "
        f"the gate ended in {dead['seconds']:.1f} s "
        f"(exit {dead['exit_code']}); failures for it: {len(dead['failures_of_victim'])} "
        f"({', '.join(dead['failures_of_victim'])}); failures of the others: {len(dead['failures_of_others'])}.",
        "",
    ]
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "fleet-bench.md").write_text("\n".join(lines))
    (REPORTS / "fleet-bench.json").write_text(
        json.dumps({"rows": rows, "same_lab": same, "unreachable": dead}, indent=2) + "\n"
    )
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1,4,8")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    try:
        rows = [measure(count, args.runs) for count in sizes]
        same = same_lab(max(sizes), args.runs)
        dead = unreachable(max(sizes))
    finally:
        lab("up", "--gateways", "1")
    write(rows, same, dead)


if __name__ == "__main__":
    main()
