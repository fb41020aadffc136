"""The suite's command-line options, and the gather phase's head start (an entry-point plugin).

Registered through the ``pytest11`` entry point, so pytest loads it before any conftest: its
options are known that early, and when the run is going to judge a live target it starts the
gathering child (``gather.child``) at once, while pytest is still loading the suite. Imports
nothing heavy for the same reason. The rest of the plugin is the package ``viworks_verify.plugin``.

pytest settles its rootdir and ini file before it loads entry-point plugins, so the value of one
of their options given as a separate word (``--baseline /tmp/b.json``) is taken there for a test
path, and a file outside the checkout moves the rootdir (and loses the ini: testpaths, addopts,
markers). ``settle_setup`` sees that and settles the setup again as the ``=`` form would have.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import pytest

from viworks_verify.gather.child import GatherChild

CHECK_DIRS = ("tests_infra", "tests_e2e")
PROJECT_DIR = Path(__file__).resolve().parents[2]  # the checkout: the suite, its targets/ (an editable install)
TARGETS_DIR = PROJECT_DIR / "targets"  # where target names are looked up unless --targets-dir says otherwise
GATHER_CHILD = pytest.StashKey[GatherChild]()
IN_PROCESS_ENV = (
    "VIWORKS_GATHER_IN_PROCESS"  # 1: no head start, every host read in the pytest process (profiling, debugging)
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("viworks", "ViWorkS deploy verification")
    group.addoption(
        "--target",
        default=os.environ.get("VIWORKS_TARGET", "lab"),
        help="target name (targets/<name>.toml) or settings file path; default $VIWORKS_TARGET or lab",
    )
    group.addoption(
        "--targets-dir", default=None, help="where target names are looked up (default: the checkout's targets/)"
    )
    group.addoption(
        "--ready-timeout",
        type=float,
        default=None,
        help="seconds a check waits for something to become ready (default from the target's settings)",
    )
    group.addoption(
        "--max-connections",
        type=int,
        default=None,
        metavar="N",
        help="read at most N hosts at once, queueing the rest (default from the target's settings: 10)",
    )
    group.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="run the Kth of N shards of the fleet: every Nth gateway host (all its checks), the backend's and "
        "the edge's checks in shard 1 only",
    )
    group.addoption(
        "--json-summary",
        default=None,
        metavar="PATH",
        help="write a compact JSON summary (counts, failures with host and message, figures) for pipelines",
    )
    group.addoption(
        "--snapshot-out",
        default=None,
        metavar="PATH",
        help="save the snapshots this run gathered (every host and the edge; no secret values) as JSON",
    )
    group.addoption(
        "--snapshot-in",
        default=None,
        metavar="PATH",
        help="judge a recorded snapshot instead of the live target: no host is contacted, live checks are deselected",
    )
    group.addoption(
        "--baseline",
        default=None,
        metavar="PATH",
        help="a snapshot to compare this run with (the last green deploy's): "
        "the report and the JSON summary say what drifted",
    )
    group.addoption(
        "--fail-on-drift",
        default=None,
        metavar="PATHS",
        help="comma-separated drift paths that fail the gate (binary,networks,unit.Restart); "
        "default: the target's [drift] fail_on",
    )
    group.addoption(
        "--waivers",
        default=None,
        metavar="PATH",
        help="waivers file (default: the target's waivers key, else waivers.toml beside the target's settings)",
    )


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
    if any(
        getattr(options, name, False)
        for name in ("help", "version", "collectonly", "showfixtures", "show_fixtures_per_test", "markers")
    ):
        return False
    if options.snapshot_in or os.environ.get("PYTEST_XDIST_WORKER") or getattr(options, "numprocesses", None):
        return False  # a replay reads no host; under xdist every worker gathers for itself, in-process
    return runs_checks(config.rootpath, list(options.file_or_dir or config.getini("testpaths")))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Settle pytest's setup as the command line meant it; then start reading the hosts now, on
    another core, while pytest imports and collects the suite."""
    settle_setup(early_config, parser, args)
    if not _judges_live_target(early_config):
        return
    options = early_config.known_args_namespace
    argv = ["--target", options.target, "--targets-dir", str(options.targets_dir or TARGETS_DIR)]
    if options.ready_timeout is not None:
        argv += ["--ready-timeout", str(options.ready_timeout)]
    if options.max_connections is not None:
        argv += ["--max-connections", str(options.max_connections)]
    if options.shard is not None:
        argv += ["--shard", options.shard]
    early_config.stash[GATHER_CHILD] = GatherChild(argv)


def pytest_unconfigure(config: pytest.Config) -> None:
    child = config.stash.get(GATHER_CHILD, None)
    if child is not None:
        child.close()


# ------------------------------------------------------------------------ the rootdir and ini


def settle_setup(config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Make ``--opt VALUE`` mean what ``--opt=VALUE`` means, for every option loaded by now (the suite's
    and other plugins'): the same rootdir, ini file, ini options and node ids.

    pytest chose its rootdir and ini from the words of the command line that are not options it
    knew then (``Config._initini``, before entry-point plugins add theirs): the value of a later
    option, given as a separate word, counted as a test path when it is an existing path. When
    that is so, the setup is determined again as the ``=`` form would have it, and redone if it
    differs. Costs next to nothing unless an existing path follows an option as a separate word.
    """
    stale = config.getini("addopts")  # the chosen ini's addopts, which pytest put in front of ``args``
    given = args[len(stale) :] if args[: len(stale)] == stale else args  # the words pytest chose its setup from
    if not any(_takes_value(option) and _is_path(word) for option, word in zip(given, given[1:])):
        return  # the common case: no existing path given as an option's separate value
    ns, unknown = parser.parse_known_and_unknown_args(given, namespace=copy.copy(config.option))
    paths = [word for word in ns.file_or_dir + unknown if not word.startswith("-")]  # the `=` form's test paths
    if [w for w in given if _is_path(w)] == [w for w in paths if _is_path(w)]:
        return  # every existing path pytest saw is one of the test paths: its setup stands
    _redo_setup(config, parser, args, len(args) - len(given), ns, paths, given)


def _is_path(word: str) -> bool:
    return not word.startswith("-") and os.path.exists(word.split("::")[0])


def _takes_value(word: str) -> bool:
    return word.startswith("-") and word != "--" and "=" not in word


def _redo_setup(
    config: pytest.Config,
    parser: pytest.Parser,
    args: list[str],
    stale: int,
    ns: argparse.Namespace,
    paths: list[str],
    given: list[str],
) -> None:
    """Determine pytest's rootdir and ini file again from the real test ``paths`` and redo what
    ``Config._preparse`` derived from the first ones: ``args`` (in place: the ini's addopts in front
    instead of the ``stale`` ones), the plugins its addopts ``-p``, the early options, ``confcutdir``.

    Private pytest API, unavoidable: pytest has no public way to set the rootdir or the ini again
    (``Config.rootpath`` and ``inipath`` are read-only, ini values are cached). This mirrors
    ``Config._initini`` and the rest of ``Config._preparse`` (pytest 8); on a pytest where that
    API is not there, the run stops with a one-line usage error naming the ``--opt=PATH`` form.
    """
    try:
        from _pytest.config.findpaths import determine_setup

        if not all(hasattr(config, name) for name in ("_rootpath", "_inipath", "_inicache", "inicfg")):
            raise AttributeError("Config's setup attributes")
        rootpath, inipath, inicfg = determine_setup(
            inifile=ns.inifilename,
            args=paths,
            rootdir_cmd_arg=ns.rootdir or None,
            invocation_dir=config.invocation_params.dir,
        )
    except (ImportError, AttributeError, TypeError):
        pairs = [(option, word) for option, word in zip(given, given[1:]) if _takes_value(option) and _is_path(word)]
        option, value = next((pair for pair in pairs if pair[1] not in paths), pairs[0])
        raise pytest.UsageError(
            f"{option} {value}: this pytest takes {value} for a test path: give it as {option}={value}"
        ) from None
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return
    config._rootpath, config._inipath, config.inicfg = rootpath, inipath, inicfg
    config._inicache.clear()
    parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))
    addopts = config.getini("addopts")
    args[:] = addopts + args[stale:]
    manager = config.pluginmanager
    manager.consider_preparse(addopts, exclude_only=False)  # `-p no:anyio` unregisters it, loaded meanwhile
    if isinstance(getattr(manager, "_plugin_distinfo", None), list):  # nor is it in the header's "plugins:" then
        manager._plugin_distinfo[:] = [
            (plugin, dist) for plugin, dist in manager._plugin_distinfo if manager.is_registered(plugin)
        ]
    for check in ("_checkversion", "_validate_plugins"):  # the right ini's minversion and required_plugins
        getattr(config, check, lambda: None)()
    for path in reversed(config.getini("pythonpath")):
        sys.path.insert(0, str(path))
        config.add_cleanup(lambda path=str(path): path in sys.path and sys.path.remove(path))
    hook = manager.rewrite_hook
    if hasattr(hook, "fnpats"):  # assertion rewriting's test file patterns, read from the first ini
        hook.fnpats = config.getini("python_files")
    config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(config.option))
    if config.known_args_namespace.confcutdir is None:
        config.known_args_namespace.confcutdir = str(inipath.parent if inipath is not None else rootpath)
