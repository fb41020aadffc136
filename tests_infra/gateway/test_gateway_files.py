"""The gateway agent's files: none world-writable, the four scripts deployed root-owned and executable,
and nothing else in the scripts root (the agent runs what lies there as root)."""

from __future__ import annotations

import posixpath

import pytest

from viworks_verify.core.verdict import fail
from viworks_verify.gateway import scripts_root
from viworks_verify.gateway.env import SCRIPTS_ROOT

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.area("files")]


@pytest.mark.smoke
def test_no_required_file_is_world_writable(gateway_host, gateway_required_files, gateway_files):
    roles: dict[str, list[str]] = {}
    for role, path in gateway_required_files.items():
        roles.setdefault(path, []).append(role)
    writable = [path for path in roles if (facts := gateway_files.get(path)) is not None and facts.world_writable]
    # a missing file is the finding of the check that needs it
    if writable:
        fail(
            gateway_host.id,
            expected="no required file writable by others",
            found="world-writable: "
            + "; ".join(f"{path} ({', '.join(roles[path])}) mode {gateway_files.get(path).octal}" for path in writable),
            evidence=f"chmod o-w {' '.join(writable)}",
        )


def _scripts(gateway_env, settings, gateway_host) -> dict[str, str]:
    root = gateway_env.get(SCRIPTS_ROOT)
    if not root:
        fail(
            gateway_host.id,
            settings.gateway.env_file,
            expected=f"{SCRIPTS_ROOT} set to the scripts directory",
            found=f"{SCRIPTS_ROOT} not set",
        )
    return {name: posixpath.join(root, name) for name in settings.gateway.scripts}


@pytest.mark.smoke
def test_scripts_are_present_and_executable(gateway_host, gateway_env, gateway_files, settings):
    problems = []
    for path in _scripts(gateway_env, settings, gateway_host).values():
        facts = gateway_files.get(path)
        if facts is None:
            problems.append(f"{path} {gateway_files.absence(path)}")
        elif not facts.executable:
            problems.append(f"{path} is a {facts.kind} mode {facts.octal}, not executable")
    if problems:
        fail(
            gateway_host.id,
            expected=f"every script of {SCRIPTS_ROOT} present and executable",
            found="; ".join(problems),
        )


@pytest.mark.smoke
def test_scripts_are_root_owned_and_not_group_or_world_writable(gateway_host, gateway_env, gateway_files, settings):
    problems = []
    for path in _scripts(gateway_env, settings, gateway_host).values():
        facts = gateway_files.get(path)
        if facts is None:
            continue  # a missing script is test_scripts_are_present_and_executable's finding
        if facts.uid != 0:
            problems.append(f"{path} owned by {facts.owner}")
        if facts.group_writable or facts.world_writable:
            problems.append(f"{path} mode {facts.octal}")
    if problems:
        fail(gateway_host.id, expected="scripts owned by root and writable by root only", found="; ".join(problems))


@pytest.mark.smoke
def test_scripts_root_holds_only_the_declared_scripts(gateway_host, gateway_env, gateway_snapshot, settings):
    """A closed set: any other file, link or directory there is something the agent could be made to run as root."""
    listing = gateway_snapshot.scripts_root.require()
    if listing.state != "directory":
        return  # unset or missing: test_scripts_are_present_and_executable says so
    gateway = settings.gateway
    found = scripts_root.compare(listing.entries, gateway.scripts, gateway.scripts_root_may_hold)
    if found.extra:
        declared = [*gateway.scripts, *gateway.scripts_root_may_hold]
        fail(
            gateway_host.id,
            listing.path,
            expected=f"only {', '.join(declared)}",
            found="also " + "; ".join(entry.describe() for entry in found.extra),
            evidence=f"remove them, or declare them in gateway.scripts_root_may_hold of {settings.source}",
        )
