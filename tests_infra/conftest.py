"""Host facts as the checks use them, from the snapshots the gather phase read (no I/O here).

Each fixture hands a check a ``Fact`` derived from its host's snapshot; most checks read the snapshot's
fields directly (``gateway_snapshot.unit``). The first check that ``require()``s a fact that could not be
read fails with why, later ones skip with it (one root cause, one failure, whatever subset of checks runs).
"""

from __future__ import annotations

import pytest

from viworks_verify.backend import facts as backend_facts
from viworks_verify.core.fact import Fact


@pytest.fixture(scope="session")
def backend_binary(backend_snapshot, settings) -> Fact:
    """The agent binary among ``BackendSnapshot.agent_files`` (size, mode, sha256),
    when it is there as a regular file."""
    return backend_snapshot.agent_files.then(
        lambda files: backend_facts.backend_binary(backend_snapshot.host, files, settings.backend)
    )


@pytest.fixture(scope="session")
def agent_server(backend_snapshot, settings) -> Fact:
    """The server block of ``BackendSnapshot.nginx`` that nginx uses for the agent domain on its HTTPS port."""
    return backend_snapshot.nginx.then(
        lambda config: backend_facts.agent_server(backend_snapshot.host, config, settings)
    )


@pytest.fixture(scope="session")
def nginx_tls_files(backend_snapshot, agent_server) -> Fact:
    """``BackendSnapshot.nginx_tls_files``, once the agent server that names them is read."""
    return agent_server.then(lambda _: backend_snapshot.nginx_tls_files)


@pytest.fixture(scope="session")
def gateway_config_fact(gateway_snapshot, settings) -> Fact:
    """The agent's effective configuration (EffectiveConfig): the .env over agent.toml's [outbound],
    each value with its file. The .env must be readable; agent.toml may be absent."""
    return gateway_snapshot.env.then(lambda _: Fact(gateway_snapshot.effective_config(settings.gateway.env_file)))


@pytest.fixture(scope="session")
def gateway_env_fact(gateway_config_fact) -> Fact:
    """The effective configuration's values by VIW_AGENT_* name (secret values only as their keyed hash)."""
    return gateway_config_fact.then(lambda config: Fact(config.values))


@pytest.fixture(scope="session")
def config_source(gateway_config_fact, settings):
    """``config_source(key)``: the file (and section, for agent.toml) the agent's value of ``key`` comes from."""
    config = gateway_config_fact.value
    return lambda key: config.source(key, settings.gateway.env_file) if config else settings.gateway.env_file


@pytest.fixture
def gateway_env(gateway_env_fact) -> dict[str, str]:
    """The agent's .env as a dict (a check that needs it fails, or skips once reported, when it cannot be read)."""
    return gateway_env_fact.require()
