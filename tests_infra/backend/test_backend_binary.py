"""The backend agent binary in its container: present, executable, and the build the release names."""

from __future__ import annotations

import pytest

from viworks_verify.core.sizes import human_size
from viworks_verify.core.verdict import fail
from viworks_verify.target.release import describe_expected, names_a_build, release_mismatch

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("files")]


@pytest.mark.smoke
def test_backend_binary_is_present_and_executable(backend_host, backend_binary, settings):
    binary = backend_binary.require()
    if not binary.executable:
        fail(
            backend_host.id,
            f"{settings.backend.agent_container}: {binary.path}",
            expected="an executable file",
            found=f"mode {binary.octal}, owner {binary.owner}, not executable by the container's user",
        )


@pytest.mark.smoke
def test_backend_binary_is_the_expected_release(backend_host, backend_binary, settings, recorder):
    binary = backend_binary.require()
    recorder.fact("backend binary sha256 (observed)", binary.sha256)
    recorder.fact("backend binary size (observed)", f"{binary.size} bytes")
    if not names_a_build(settings.release):
        fail(
            backend_host.id,
            settings.backend.binary_path,
            expected="the target to name the build to expect",
            found=f"no expected build to compare with: set [release] sha256 (or size, or size_min and size_max) "
            f"or release_manifest in {settings.source}",
        )
    recorder.attach("expected release", settings.release.model_dump(exclude_none=True))
    if release_mismatch(binary.size, binary.sha256, settings.release) is not None:
        fail(
            backend_host.id,
            f"{settings.backend.agent_container}: {binary.path} is not the expected build",
            expected=describe_expected(settings.release),
            found=f"{human_size(binary.size)}, sha256 {binary.sha256[:12] + '…' if binary.sha256 else 'unknown'}",
        )
