"""The backend agent's configuration file: valid TOML, the contract's ports, the expected database and Redis.

Its URLs carry passwords: messages show them masked (postgresql://viworks:***@host:5432/db).
"""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("files")]


@pytest.mark.smoke
def test_backend_config_parses(backend_snapshot):
    backend_snapshot.agent_config.require()


@pytest.mark.smoke
def test_backend_config_ports_match_contract(backend_host, backend_snapshot, settings):
    backend = settings.backend
    config = backend_snapshot.agent_config.require()
    wrong = [
        (section, found, expected)
        for section, found, expected in (
            ("server", config.server_port, backend.api_port),
            ("agent_management", config.ws_port, backend.ws_port),
        )
        if found != expected
    ]
    if wrong:
        fail(
            backend_host.id,
            f"{backend.agent_container}: {backend.config_path}",
            expected=", ".join(f"[{section}].port = {expected}" for section, _, expected in wrong),
            found=", ".join(f"[{section}].port = {found!r}" for section, found, _ in wrong),
        )


@pytest.mark.smoke
def test_backend_config_points_at_expected_database_and_redis(backend_host, backend_snapshot, settings):
    backend = settings.backend
    config = backend_snapshot.agent_config.require()
    expected_urls, found_urls = [], []
    for section, url, expected in (
        ("database", config.database, backend.database_host),
        ("redis", config.redis, backend.redis_host),
    ):
        if url is None or url.host != expected:
            expected_urls.append(f"host {expected} in [{section}].url")
            found_urls.append(f"[{section}].url missing" if url is None else f"[{section}].url {url.redacted}")
    if found_urls:
        fail(
            backend_host.id,
            f"{backend.agent_container}: {backend.config_path}",
            expected=", ".join(expected_urls),
            found=", ".join(found_urls),
        )
