"""Host facts as the checks use them, from the snapshots the gather phase read (no I/O here).

Each fixture hands a check one fact of its host's snapshot as a ``Reading``: the first check that
``require()``s a fact that could not be read fails with why, later ones skip with it (one root
cause, one failure, whatever subset of checks runs).
"""

from __future__ import annotations

import pytest

from viworks_verify.backend import facts as backend_facts
from viworks_verify.gather.reading import Reading


@pytest.fixture(scope="session")
def backend_listeners(backend_snapshot, fact_of) -> Reading:
    """TCP listeners of the backend agent container and the processes holding them (from /proc)."""
    return fact_of(backend_snapshot, "agent_listeners").then(lambda _: Reading(backend_snapshot.listener_snapshot()))


@pytest.fixture(scope="session")
def backend_agent_files(backend_snapshot, fact_of) -> Reading:
    return fact_of(backend_snapshot, "agent_files")


@pytest.fixture(scope="session")
def backend_binary(backend_snapshot, settings, fact_of) -> Reading:
    """The agent binary's facts (size, mode, sha256), when it is there as a regular file."""
    return fact_of(backend_snapshot, "agent_files").then(
        lambda _: Reading(*backend_facts.backend_binary(backend_snapshot, settings.backend))
    )


@pytest.fixture(scope="session")
def backend_config(backend_snapshot, fact_of) -> Reading:
    """The agent's TOML configuration as the checks need it (URLs masked, secrets only hashed)."""
    return fact_of(backend_snapshot, "agent_config").then(
        lambda _: Reading(backend_facts.backend_config(backend_snapshot))
    )


@pytest.fixture(scope="session")
def nginx_config(backend_snapshot, fact_of) -> Reading:
    """nginx's configuration as ``nginx -T`` dumped it, parsed (its problem: nginx -t failed, or no nginx)."""
    return fact_of(backend_snapshot, "nginx").then(lambda _: Reading(backend_snapshot.nginx_config()))


@pytest.fixture(scope="session")
def agent_server(backend_snapshot, settings, nginx_config) -> Reading:
    """The server block nginx uses for the agent domain on its HTTPS port."""
    return nginx_config.then(
        lambda config: Reading(*backend_facts.agent_server(backend_snapshot.host, config, settings))
    )


@pytest.fixture(scope="session")
def nginx_tls_files(backend_snapshot, fact_of, agent_server) -> Reading:
    """The agent server's certificate, key and client CA files as nginx sees them (keys: stat only)."""
    return agent_server.then(lambda _: fact_of(backend_snapshot, "nginx_tls_files")).then(
        lambda _: Reading(backend_snapshot.tls_files())
    )


@pytest.fixture(scope="session")
def gateway_config_reading(gateway_snapshot, fact_of, settings) -> Reading:
    """The agent's effective configuration (EffectiveConfig): the .env over agent.toml's [outbound],
    each value with its file. The .env must be readable; agent.toml may be absent."""
    return fact_of(gateway_snapshot, "env").then(
        lambda _: Reading(gateway_snapshot.effective_config(settings.gateway.env_file))
    )


@pytest.fixture(scope="session")
def gateway_env_reading(gateway_config_reading) -> Reading:
    """The effective configuration's values by VIW_AGENT_* name (secret values only as their keyed hash)."""
    return gateway_config_reading.then(lambda config: Reading(config.values))


@pytest.fixture(scope="session")
def config_source(gateway_config_reading, settings):
    """``config_source(key)``: the file (and section, for agent.toml) the agent's value of ``key`` comes from."""
    config = gateway_config_reading.value
    return lambda key: config.source(key, settings.gateway.env_file) if config else settings.gateway.env_file


@pytest.fixture
def gateway_env(gateway_env_reading) -> dict[str, str]:
    """The agent's .env as a dict (a check that needs it fails, or skips once reported, when it cannot be read)."""
    return gateway_env_reading.require()
