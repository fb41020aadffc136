"""The gateway agent's systemd unit: loaded, enabled, active, not crash-looping, restarting, starting a
program and an environment file that exist where the deployment puts them, and changed by no drop-in
the target does not declare.

The unit not loaded, its program missing, or the unit not running is one cause: its check reports
it and the checks that need what it breaks skip naming it (``needs_agent``, ``gateway.blockers``)."""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.area("unit")]


@pytest.mark.smoke
@pytest.mark.needs_agent("program")  # a missing program keeps it activating: that check's finding
def test_unit_is_loaded_enabled_and_active(gateway_host, gateway_unit):
    states = {key: gateway_unit.get(key) for key in ("LoadState", "UnitFileState", "ActiveState", "SubState")}
    expected = {"LoadState": "loaded", "UnitFileState": "enabled", "ActiveState": "active", "SubState": "running"}
    wrong = {key: value for key, value in states.items() if value != expected[key]}
    if wrong:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected=", ".join(f"{k}={expected[k]}" for k in wrong),
            found=", ".join(f"{k}={v or '?'}" for k, v in wrong.items()),
        )


@pytest.mark.smoke
@pytest.mark.needs_agent("program")
def test_unit_is_not_crash_looping(gateway_host, gateway_unit, settings):
    limit = settings.gateway.max_restarts
    if gateway_unit.n_restarts > limit:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected=f"at most {limit} restarts",
            found=f"NRestarts={gateway_unit.n_restarts}",
        )


RESTART_POLICIES = ("always", "on-failure")


@pytest.mark.smoke
@pytest.mark.needs_agent("loaded")
def test_unit_restarts_the_agent_when_it_exits(gateway_host, gateway_unit):
    restart = gateway_unit.get("Restart")
    if restart not in RESTART_POLICIES:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected=f"Restart={' or '.join(RESTART_POLICIES)}",
            found=f"Restart={restart or '<unset>'}",
        )


@pytest.mark.smoke
@pytest.mark.needs_agent("loaded")
def test_unit_program_exists_and_is_executable(gateway_host, gateway_unit, gateway_files):
    program = gateway_unit.exec_start_path
    if program is None:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected="an ExecStart program",
            found="none",
            evidence=f"LoadState={gateway_unit.get('LoadState') or '?'}",
        )
    facts = gateway_files.get(program)
    if facts is None:
        fail(
            gateway_host.id,
            f"{gateway_unit.unit}: ExecStart={program}",
            expected="the deployed agent binary there",
            found=f"{program} {gateway_files.absence(program)}",
        )
    if not facts.executable:
        fail(
            gateway_host.id,
            f"{gateway_unit.unit}: ExecStart={program}",
            expected="an executable file",
            found=f"a {facts.kind} mode {facts.octal}",
        )


@pytest.mark.smoke
@pytest.mark.needs_agent("loaded")
def test_unit_environment_file_exists(gateway_host, gateway_unit, gateway_files):
    paths = gateway_unit.environment_files
    if not paths:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected="an EnvironmentFile",
            found="none",
            evidence=f"LoadState={gateway_unit.get('LoadState') or '?'}",
        )
    problems = []
    for path in paths:
        facts = gateway_files.get(path)
        if facts is None:
            problems.append(f"{path} {gateway_files.absence(path)}")
        elif not facts.is_file:
            problems.append(f"{path} is a {facts.kind}")
    if problems:
        fail(
            gateway_host.id,
            f"{gateway_unit.unit}: EnvironmentFile",
            expected="a regular file",
            found="; ".join(problems),
        )


@pytest.mark.smoke
@pytest.mark.needs_agent("program")  # ExecStart naming a path that is not there: that check's finding
def test_unit_uses_the_expected_program_env_file_and_directory(gateway_host, gateway_unit, settings):
    expected = settings.gateway
    found = {
        "ExecStart": gateway_unit.exec_start_path or "<none>",
        "EnvironmentFile": ",".join(gateway_unit.environment_files) or "<none>",
        "WorkingDirectory": gateway_unit.get("WorkingDirectory") or "<none>",
    }
    wrong = {}
    if found["ExecStart"] != expected.binary_path:
        wrong["ExecStart"] = expected.binary_path
    if expected.env_file not in gateway_unit.environment_files:
        wrong["EnvironmentFile"] = expected.env_file
    if found["WorkingDirectory"] != expected.working_directory:
        wrong["WorkingDirectory"] = expected.working_directory
    if wrong:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected=", ".join(f"{k}={v}" for k, v in wrong.items()) + " (the paths the suite checks)",
            found=", ".join(f"{k}={found[k]}" for k in wrong),
        )


@pytest.mark.smoke
@pytest.mark.needs_agent("loaded")
def test_unit_has_no_undeclared_drop_ins(gateway_host, gateway_unit, settings):
    """A drop-in changes the unit the release ships (another ExecStart, Environment, User...): a closed set."""
    declared = settings.gateway.allowed_unit_drop_ins
    extra = [path for path in gateway_unit.drop_in_paths if path not in declared]
    if extra:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected=f"no drop-in but the declared ({', '.join(declared) or 'none'})",
            found=f"changed by {', '.join(extra)}",
            evidence=f"declare it in gateway.allowed_unit_drop_ins of {settings.source}, or remove it",
        )
