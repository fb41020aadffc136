"""The backend agent's configuration file: valid TOML, the contract's ports, the expected database and Redis.

Its URLs carry passwords: messages show them masked (postgresql://viworks:***@host:5432/db).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("files")]


@pytest.mark.smoke
def test_backend_config_parses(backend_config):
    backend_config.require()


@pytest.mark.smoke
def test_backend_config_ports_match_contract(backend_host, backend_config, settings):
    backend = settings.backend
    config = backend_config.require()
    wrong = [
        f"[{section}].port = {found!r} (expected {expected})"
        for section, found, expected in (("server", config.server_port, backend.api_port), ("agent_management", config.ws_port, backend.ws_port))
        if found != expected
    ]
    assert not wrong, f"{backend_host.id}: {backend.agent_container}: {backend.config_path}: {'; '.join(wrong)}"


@pytest.mark.smoke
def test_backend_config_points_at_expected_database_and_redis(backend_host, backend_config, settings):
    backend = settings.backend
    config = backend_config.require()
    wrong = []
    for section, url, expected in (("database", config.database, backend.database_host), ("redis", config.redis, backend.redis_host)):
        if url is None:
            wrong.append(f"[{section}].url missing (expected a URL to host {expected})")
        elif url.host != expected:
            wrong.append(f"[{section}].url is {url.redacted} (expected host {expected})")
    assert not wrong, f"{backend_host.id}: {backend.agent_container}: {backend.config_path}: {'; '.join(wrong)}"
