"""The gateway agent's release artifacts, known by content: the program at ExecStart, the scripts, the unit file.

A path, mode and size say where a file is, not which build it is: another build at the right path with
the right mode is still the wrong program. Each artifact's sha256 is compared with the release's (the
target's ``[release.gateway]``, or the deploy pipeline's manifest).
"""

from __future__ import annotations

import posixpath

import pytest

from viworks_verify.core.sizes import human_size
from viworks_verify.core.verdict import fail
from viworks_verify.gateway.env import SCRIPTS_ROOT
from viworks_verify.target.release import describe_expected, names_a_build, release_mismatch

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.area("files")]


def _short(digest: str | None) -> str:
    return f"{digest[:12]}…" if digest else "unknown"


def _hashes(gateway_snapshot) -> None:
    gateway_snapshot.artifacts.require()


@pytest.mark.smoke
@pytest.mark.needs_agent("program")  # a missing program: test_unit_program_exists_and_is_executable's finding
def test_gateway_binary_is_the_expected_release(
    gateway_host, gateway_unit, gateway_files, gateway_snapshot, settings, recorder
):
    program = gateway_unit.exec_start_path or settings.gateway.binary_path
    _hashes(gateway_snapshot)
    digest, facts = gateway_snapshot.sha256_of(program), gateway_files.get(program)
    size = facts.size if facts is not None else None
    recorder.fact(f"{gateway_host.id} gateway binary sha256 (observed)", digest)
    expected = settings.release.gateway
    if not names_a_build(expected):
        fail(
            gateway_host.id,
            program,
            expected="the target to name the gateway build to expect",
            found="no expected build to compare with: set [release.gateway] sha256 "
            "(or size, or size_min and size_max), or a "
            f"release_manifest with a gateway entry, in {settings.source}",
        )
    if release_mismatch(size, digest, expected) is not None:
        fail(
            gateway_host.id,
            f"{gateway_unit.unit}: ExecStart={program} is not the expected build",
            expected=describe_expected(expected),
            found=f"{human_size(size) if size is not None else 'size unknown'}, sha256 {_short(digest)}",
        )


@pytest.mark.smoke
def test_scripts_are_the_released_ones(gateway_host, gateway_env, gateway_snapshot, settings):
    _hashes(gateway_snapshot)
    released = settings.release.gateway.scripts
    if not released:
        fail(
            gateway_host.id,
            expected="the scripts' sha256 from the release, to compare with",
            found="none: set [release.gateway] scripts (name = sha256) "
            f"or a release_manifest with them in {settings.source}",
        )
    root = gateway_env.get(SCRIPTS_ROOT)
    if not root:
        return  # test_scripts_are_present_and_executable says so
    problems = []
    for name in settings.gateway.scripts:
        digest = gateway_snapshot.sha256_of(posixpath.join(root, name))
        if digest is None:
            continue  # missing, or not a regular file: the presence check's finding
        if name not in released:
            problems.append(f"{name} is not in the release (sha256 {_short(digest)})")
        elif digest != released[name]:
            problems.append(f"{name} sha256 {_short(digest)}, the release's {_short(released[name])}")
    if problems:
        fail(
            gateway_host.id,
            root,
            expected="every script the release's build (by sha256)",
            found="; ".join(problems),
            evidence="redeploy the release's scripts",
        )


@pytest.mark.smoke
@pytest.mark.area("unit")
@pytest.mark.needs_agent("loaded")
def test_unit_file_is_the_released_one(gateway_host, gateway_unit, gateway_snapshot, settings):
    _hashes(gateway_snapshot)
    expected = settings.release.gateway.unit_sha256
    fragment = gateway_unit.get("FragmentPath")
    if not expected:
        fail(
            gateway_host.id,
            fragment or gateway_unit.unit,
            expected="the unit file's sha256 from the release, to compare with",
            found=f"none: set [release.gateway] unit_sha256 or a release_manifest with it in {settings.source}",
        )
    digest = gateway_snapshot.sha256_of(fragment) if fragment else None
    if digest != expected:
        why = (
            gateway_snapshot.artifacts.value.errors.get(fragment, "not read")
            if gateway_snapshot.artifacts.ok
            else "not read"
        )
        fail(
            gateway_host.id,
            f"{gateway_unit.unit}: {fragment or 'FragmentPath unset'}",
            expected=f"the release's unit file (sha256 {_short(expected)})",
            found=f"sha256 {_short(digest)}" if digest else why,
            evidence="redeploy the release's unit file, then systemctl daemon-reload",
        )
