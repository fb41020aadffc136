"""The backend agent binary in its container: present, executable, and the build the release names."""

from __future__ import annotations

import pytest

from viworks_verify.release import describe_expected, names_a_build, release_mismatch

pytestmark = [pytest.mark.infra, pytest.mark.backend]


@pytest.mark.smoke
def test_backend_binary_is_present_and_executable(backend_host, backend_agent_files, settings):
    backend = settings.backend
    binary = backend_agent_files.require()[backend.binary_path]
    where = f"{backend_host.id}: {backend.agent_container}: {backend.binary_path}"
    assert binary.exists, f"{where}: expected the backend agent binary; found no such file"
    assert binary.is_file, f"{where}: expected a regular file; found a {binary.kind}"
    assert binary.executable, f"{where}: expected an executable file; found mode {binary.mode_text}, owner {binary.owner}, not executable"


@pytest.mark.smoke
def test_backend_binary_is_the_expected_release(backend_host, backend_agent_files, settings):
    backend, release = settings.backend, settings.release
    if not names_a_build(release):
        pytest.skip(f"{settings.source} names no expected build (release.sha256, release.size or size_min/size_max)")
    binary = backend_agent_files.require()[backend.binary_path]
    where = f"{backend_host.id}: {backend.agent_container}: {backend.binary_path}"
    if not binary.exists:
        pytest.fail(f"{where}: expected {describe_expected(release)}; found no such file", pytrace=False)
    mismatch = release_mismatch(binary.size, binary.sha256, release)
    assert mismatch is None, f"{where} is not the expected build: {mismatch}"
