"""The gate's answer to input given the other way, or wrongly: judged as a pipeline would, exit code and output.

- A file option given as a separate word (``--baseline /tmp/b.json``) means what the ``=`` form
  means: pytest chooses its rootdir before it knows the suite's options, and a file outside the
  checkout would otherwise move it there (and lose the ini: testpaths, addopts, markers).
- A ``--fail-on-drift`` path (or a target's ``[drift] fail_on`` / ``ignore``) that selects nothing
  of the baseline is a typo: one line, exit 4, naming it and what there is.

Every run judges a recorded snapshot (``--snapshot-in``): no host is contacted.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.conftest import REPO, run_suite
from viworks_verify.gather.snapshot import RunSnapshot
from viworks_verify.report.drift import drift_paths, known_segments, unknown_patterns, unknown_patterns_message

SNAPSHOTS = REPO / "fixtures" / "snapshots"
TARGET = SNAPSHOTS / "target.toml"


def _outside(tmp_path: Path, name: str = "healthy.json") -> Path:
    """A copy of a recorded snapshot outside the checkout (pytest's tmp_path is under /tmp)."""
    assert REPO not in tmp_path.parents
    copy = tmp_path / "outside" / name
    copy.parent.mkdir(exist_ok=True)
    shutil.copy(SNAPSHOTS / name, copy)
    return copy


def _target_copy(directory: Path, name: str = "target.toml", more: str = "") -> Path:
    """The recorded target's settings in ``directory`` (with the files beside it they name), ``more`` appended."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in SNAPSHOTS.iterdir():
        if path.is_file() and path.suffix not in (".json", ".py", ".toml"):
            shutil.copy(path, directory / path.name)
    copy = directory / name
    copy.write_text(TARGET.read_text() + more)
    return copy


def _cases(junit: Path) -> set[str]:
    return {
        f"{case.get('classname')}::{case.get('name')}" for case in ElementTree.parse(junit).getroot().iter("testcase")
    }


def _header(output: str) -> list[str]:
    """The lines of the run's header that say how pytest was set up."""
    return [
        line for line in output.splitlines() if line.startswith(("rootdir:", "configfile:", "testpaths:", "plugins:"))
    ]


def _run(tmp_path: Path, name: str, *args: str):
    junit = tmp_path / f"{name}.xml"
    done = run_suite("-m", "smoke", *args, junit=junit)
    return done, junit


# ------------------------------------------------------------------- file options, either form


@pytest.mark.parametrize("option", ["--snapshot-in", "--baseline"])
def test_a_file_option_given_as_a_separate_word_is_the_equals_form(tmp_path, option):
    snapshot = _outside(tmp_path)
    replay = () if option == "--snapshot-in" else (f"--snapshot-in={SNAPSHOTS / 'healthy.json'}",)
    equals, equals_junit = _run(tmp_path, "equals", f"--target={TARGET}", *replay, f"{option}={snapshot}")
    spaced, spaced_junit = _run(tmp_path, "spaced", f"--target={TARGET}", *replay, option, str(snapshot))
    output = spaced.stdout + spaced.stderr
    assert "ERROR collecting" not in output and "Interrupted" not in output, output[-3000:]
    assert spaced.returncode == equals.returncode and spaced.returncode in (0, 1), output[-3000:]
    cases = _cases(spaced_junit)
    assert cases == _cases(equals_junit) and any(case.startswith("tests_infra.") for case in cases), output[-3000:]
    assert _header(spaced.stdout) == _header(equals.stdout), output[:2000]
    assert f"rootdir: {REPO}" in spaced.stdout and "configfile: pyproject.toml" in spaced.stdout
    assert "anyio" not in next(
        line for line in _header(spaced.stdout) if line.startswith("plugins:")
    )  # addopts' -p no:anyio


def test_every_file_option_of_the_suite_given_as_separate_words(tmp_path):
    """A targets directory, the waivers, the snapshots read and the files written, all outside the checkout."""
    snapshot = _outside(tmp_path)
    targets = _target_copy(tmp_path / "targets", "recorded.toml").parent
    (tmp_path / "waivers.toml").write_text("")
    (tmp_path / "equals").mkdir()
    (tmp_path / "spaced").mkdir()
    options = {
        "--targets-dir": targets,
        "--target": "recorded",
        "--snapshot-in": snapshot,
        "--baseline": snapshot,
        "--waivers": tmp_path / "waivers.toml",
        "--json-summary": "summary.json",
        "--snapshot-out": "snapshot.json",
    }
    runs = {}
    for form in ("equals", "spaced"):
        written = {"--json-summary", "--snapshot-out"}
        values = {option: tmp_path / form / value if option in written else value for option, value in options.items()}
        words = [
            word
            for option, value in values.items()
            for word in ([f"{option}={value}"] if form == "equals" else [option, str(value)])
        ]
        runs[form] = _run(tmp_path, form, *words)
    (equals, equals_junit), (spaced, spaced_junit) = runs["equals"], runs["spaced"]
    output = spaced.stdout + spaced.stderr
    assert spaced.returncode == equals.returncode and "ERROR collecting" not in output, output[-3000:]
    assert _cases(spaced_junit) == _cases(equals_junit) and _header(spaced.stdout) == _header(equals.stdout)
    for form in ("equals", "spaced"):
        assert json.loads((tmp_path / form / "summary.json").read_text())["drift"]["summary"].startswith("no drift")
        assert RunSnapshot.load(tmp_path / form / "snapshot.json").hosts


def test_a_target_file_given_as_a_separate_word(tmp_path):
    snapshot = _outside(tmp_path)
    target = _target_copy(snapshot.parent)
    equals, equals_junit = _run(tmp_path, "equals", f"--target={target}", f"--snapshot-in={snapshot}")
    spaced, spaced_junit = _run(tmp_path, "spaced", "--target", str(target), "--snapshot-in", str(snapshot))
    assert spaced.returncode == equals.returncode and _cases(spaced_junit) == _cases(equals_junit), spaced.stdout[
        -3000:
    ]
    assert _header(spaced.stdout) == _header(equals.stdout)


def test_target_names_are_looked_up_in_the_checkout_wherever_the_rootdir_is(tmp_path):
    done = run_suite(
        f"--rootdir={tmp_path}",
        "--target=no-such-target",
        f"--snapshot-in={SNAPSHOTS / 'healthy.json'}",
        "-q",
        "tests_infra",
        junit=tmp_path / "junit.xml",
    )
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert (
        f"ERROR: unknown target 'no-such-target': no {REPO / 'targets' / 'no-such-target.toml'} (known: lab"
        in done.stderr
    )


def test_a_pytest_without_the_setup_api_asks_for_the_equals_form(tmp_path):
    """Where pytest's private setup API is not as expected, the space form is a one-line usage error."""
    (tmp_path / "no_setup_api.py").write_text(
        "import _pytest.config.findpaths as findpaths\ndel findpaths.determine_setup\n"
    )
    snapshot = _outside(tmp_path)
    done = run_suite(
        "-p",
        "no_setup_api",
        f"--target={TARGET}",
        "--snapshot-in",
        str(snapshot),
        "-q",
        junit=tmp_path / "junit.xml",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 4 and not done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"ERROR: --snapshot-in {snapshot}: this pytest takes {snapshot} for a test path: "
        f"give it as --snapshot-in={snapshot}"
    ]


def test_json_summary_given_as_a_separate_word_is_written(tmp_path):
    summary = tmp_path / "x.json"
    done, _ = _run(
        tmp_path,
        "junit",
        f"--target={TARGET}",
        f"--snapshot-in={SNAPSHOTS / 'healthy.json'}",
        "--json-summary",
        str(summary),
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    assert "verdict" in json.loads(summary.read_text())


# ------------------------------------------------------------------- --fail-on-drift's paths


def _gate_on_drift(tmp_path: Path, *args: str):
    baseline = SNAPSHOTS / "healthy.json"
    return run_suite(
        f"--target={TARGET}",
        f"--snapshot-in={baseline}",
        f"--baseline={baseline}",
        "-q",
        "-m",
        "smoke",
        *args,
        junit=tmp_path / "junit.xml",
    )


def test_an_unknown_fail_on_drift_path_is_one_line_and_exit_4(tmp_path):
    done = _gate_on_drift(tmp_path, "--fail-on-drift=binary,no-such-thing")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output[-3000:]
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: --fail-on-drift: unknown drift path 'no-such-thing'"), (
        output[-3000:]
    )
    assert "binary" in lines[0].split("known:")[1] and "Traceback" not in output


def test_a_near_miss_is_told_what_it_resembles(tmp_path):
    done = _gate_on_drift(tmp_path, "--fail-on-drift=binary,scripts")
    assert done.returncode == 4 and "'scripts' (did you mean scripts_root?)" in done.stderr, (
        done.stdout[-2000:] + done.stderr
    )


def test_known_fail_on_drift_paths_are_accepted(tmp_path):
    done = _gate_on_drift(tmp_path, "--fail-on-drift=binary,networks,unit.Restart,gw-*.config")
    assert done.returncode in (0, 1) and "ERROR:" not in done.stderr, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.parametrize("key", ["fail_on", "ignore"])
def test_an_unknown_path_in_the_targets_drift_settings_names_the_file(tmp_path, key):
    target = _target_copy(tmp_path, more=f'\n[drift]\n{key} = ["networks", "netwroks"]\n')
    done = run_suite(
        f"--target={target}",
        f"--snapshot-in={SNAPSHOTS / 'healthy.json'}",
        f"--baseline={SNAPSHOTS / 'healthy.json'}",
        "-q",
        "-m",
        "smoke",
        junit=tmp_path / "junit.xml",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 4 and "Traceback" not in output, output[-3000:]
    assert output.strip().splitlines() == [line for line in output.strip().splitlines() if line.startswith("ERROR:")]
    assert f"ERROR: {target}: [drift] {key}: unknown drift path 'netwroks' (did you mean networks?)" in output


def test_the_targets_drift_settings_are_not_judged_without_a_baseline(tmp_path):
    target = _target_copy(tmp_path, more='\n[drift]\nfail_on = ["no-such-thing"]\n')
    done = run_suite(
        f"--target={target}",
        f"--snapshot-in={SNAPSHOTS / 'healthy.json'}",
        "-q",
        "-m",
        "smoke",
        junit=tmp_path / "junit.xml",
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]


# --------------------------------------------------------------------- the pure validation

PATHS = [
    "backend-1.host",
    "backend-1.binary",
    "backend-1.containers[viworks-backend-agent-new].networks",
    "backend-1.files[/opt/viworks/agent/.env].mode",
    "gw-1.unit.Restart",
    "gw-1.scripts_root[viworks-exec.sh].mode",
    "edge.certificate.subject",
]


def test_a_pattern_is_known_when_it_selects_some_path():
    patterns = [
        "binary",
        "networks",
        "unit.Restart",
        "gw-1.unit",
        "gw-*.unit",
        "viworks-backend-agent-new",
        "files[/opt/viworks/agent/.env]",
        "host",
        "*",
        "containers.networks",
    ]
    assert unknown_patterns(patterns, PATHS) == []


def test_unknown_patterns_are_named_once_in_the_order_given():
    assert unknown_patterns(
        ["scripts", "binary", "", " ", "unit.Restar", "scripts", "gw-2.unit", "edge.binary"], PATHS
    ) == ["scripts", "unit.Restar", "gw-2.unit", "edge.binary"]
    assert unknown_patterns(["binary"], []) == ["binary"]


def test_known_segments_are_the_first_after_the_host():
    assert known_segments(PATHS) == ["binary", "certificate", "containers", "files", "host", "scripts_root", "unit"]


def test_the_message_is_one_line_naming_the_patterns_and_what_there_is():
    message = unknown_patterns_message(["scripts", "no-such-thing"], PATHS, "b.json")
    assert "\n" not in message
    assert message.startswith(
        "unknown drift paths 'scripts' (did you mean scripts_root?), 'no-such-thing': "
        "they select nothing in the baseline b.json"
    )
    assert "known: binary, certificate, containers, files, host, scripts_root, unit;" in message
    assert message.endswith("a path may start with a host: backend-1, edge, gw-1)")


def test_the_message_is_cut_short_for_a_large_deployment():
    paths = [f"gw-{n:03}.fact{n:03}" for n in range(100)]
    message = unknown_patterns_message(["x"], paths, limit=10)
    assert "fact009, ... (90 more);" in message and "gw-002, ... (97 more))" in message and len(message) < 300


def test_a_recorded_baselines_paths_are_its_hosts_canonical_facts():
    paths = drift_paths(RunSnapshot.load(SNAPSHOTS / "healthy.json"))
    assert {"backend-lab.binary", "gw-lab-01.host", "edge.host"} <= set(paths)
    assert {"binary", "containers", "unit", "nginx"} <= set(known_segments(paths))
    assert unknown_patterns(["binary", "networks", "unit.Restart", "no-such-thing"], paths) == ["no-such-thing"]


@pytest.mark.parametrize("given", ["0", "-3"])
def test_a_max_connections_below_one_is_one_line_and_exit_4(tmp_path, given):
    done = run_suite(
        "--target",
        str(TARGET),
        "--snapshot-in",
        str(SNAPSHOTS / "healthy.json"),
        f"--max-connections={given}",
        junit=tmp_path / "junit.xml",
    )
    output = done.stdout + done.stderr
    lines = output.strip().splitlines()
    assert done.returncode == 4 and lines == ["ERROR: --max-connections: Input should be greater than or equal to 1"], (
        output[-3000:]
    )
