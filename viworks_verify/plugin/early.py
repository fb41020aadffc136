"""The suite's command-line options, and the gather phase's head start (an entry-point plugin).

Registered through the ``pytest11`` entry point, so pytest loads it before any conftest: its
options are known that early, and when the run is going to judge a live target it starts the
gathering child (``gather.child``) at once, while pytest is still loading the suite. Imports
nothing heavy for the same reason. The rest of the plugin is the package ``viworks_verify.plugin``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from viworks_verify.gather.child import GatherChild

CHECK_DIRS = ("tests_infra", "tests_e2e")
GATHER_CHILD = pytest.StashKey[GatherChild]()
IN_PROCESS_ENV = "VIWORKS_GATHER_IN_PROCESS"  # 1: no head start, every host read in the pytest process (profiling, debugging)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("viworks", "ViWorkS deploy verification")
    group.addoption("--target", default=os.environ.get("VIWORKS_TARGET", "lab"),
                    help="target name (targets/<name>.toml) or settings file path; default $VIWORKS_TARGET or lab")
    group.addoption("--targets-dir", default=None, help="where target names are looked up (default: ./targets)")
    group.addoption("--ready-timeout", type=float, default=None,
                    help="seconds a check waits for something to become ready (default from the target's settings)")
    group.addoption("--json-summary", default=None, metavar="PATH",
                    help="write a compact JSON summary (counts, failures with host and message, figures) for pipelines")
    group.addoption("--snapshot-out", default=None, metavar="PATH",
                    help="save the snapshots this run gathered (every host and the edge; no secret values) as JSON")
    group.addoption("--snapshot-in", default=None, metavar="PATH",
                    help="judge a recorded snapshot instead of the live target: no host is contacted, live checks are deselected")
    group.addoption("--baseline", default=None, metavar="PATH",
                    help="a snapshot to compare this run with (the last green deploy's): the report and the JSON summary say what drifted")
    group.addoption("--fail-on-drift", default=None, metavar="PATHS",
                    help="comma-separated drift paths that fail the gate (binary,networks,unit.Restart); default: the target's [drift] fail_on")
    group.addoption("--waivers", default=None, metavar="PATH",
                    help="waivers file (default: the target's waivers key, else waivers.toml beside the target's settings)")


def runs_checks(rootpath: Path, paths: list[str]) -> bool:
    """Whether a run given these paths (``file_or_dir``, or the ini's testpaths) collects checks."""
    for arg in paths:
        path = (rootpath / arg.split("::")[0]).resolve()
        if any(path == rootpath / d or rootpath / d in path.parents for d in CHECK_DIRS):
            return True
    return False


def _judges_live_target(config: pytest.Config) -> bool:
    if os.environ.get(IN_PROCESS_ENV, "") not in ("", "0"):
        return False
    options = config.known_args_namespace
    if any(getattr(options, name, False) for name in ("help", "version", "collectonly", "showfixtures", "show_fixtures_per_test", "markers")):
        return False
    if options.snapshot_in or os.environ.get("PYTEST_XDIST_WORKER") or getattr(options, "numprocesses", None):
        return False  # a replay reads no host; under xdist every worker gathers for itself, in-process
    return runs_checks(config.rootpath, list(options.file_or_dir or config.getini("testpaths")))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Start reading the hosts now, on another core, while pytest imports and collects the suite."""
    if not _judges_live_target(early_config):
        return
    options = early_config.known_args_namespace
    argv = ["--target", options.target, "--targets-dir", str(options.targets_dir or early_config.rootpath / "targets")]
    if options.ready_timeout is not None:
        argv += ["--ready-timeout", str(options.ready_timeout)]
    early_config.stash[GATHER_CHILD] = GatherChild(argv)


def pytest_unconfigure(config: pytest.Config) -> None:
    child = config.stash.get(GATHER_CHILD, None)
    if child is not None:
        child.close()
