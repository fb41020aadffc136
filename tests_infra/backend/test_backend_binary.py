"""The backend agent binary in its container: present, executable, and the build the release names."""

from __future__ import annotations

import pytest

from viworks_verify.release import names_a_build, release_mismatch

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("files")]


@pytest.mark.smoke
def test_backend_binary_is_present_and_executable(backend_host, backend_binary, settings):
    binary = backend_binary.require()
    assert binary.executable, (
        f"{backend_host.id}: {settings.backend.agent_container}: {binary.path}: expected an executable file; "
        f"found mode {binary.mode_text}, owner {binary.owner}, not executable by the container's user"
    )


@pytest.mark.smoke
def test_backend_binary_is_the_expected_release(backend_host, backend_binary, settings, recorder):
    binary = backend_binary.require()
    recorder.fact("backend binary sha256 (observed)", binary.sha256)
    recorder.fact("backend binary size (observed)", f"{binary.size} bytes")
    if not names_a_build(settings.release):
        pytest.fail(f"{backend_host.id}: {settings.backend.binary_path}: no expected build to compare with: set [release] sha256 "
                    f"(or size, or size_min and size_max) or release_manifest in {settings.source}", pytrace=False)
    recorder.attach("expected release", settings.release.model_dump(exclude_none=True))
    mismatch = release_mismatch(binary.size, binary.sha256, settings.release)
    assert mismatch is None, f"{backend_host.id}: {settings.backend.agent_container}: {binary.path} is not the expected build: {mismatch}"
