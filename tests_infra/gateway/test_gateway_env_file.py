"""The gateway agent's configuration as it reads it (.env over agent.toml): every key, the backend through the edge,
a real pin, the features."""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail
from viworks_verify.gateway.config import SECTIONS, missing_sections
from viworks_verify.gateway.env import (
    BACKEND_URL,
    FEATURE_EXEC,
    FEATURE_INBOUND_HTTP,
    SPKI_PIN,
    backend_url_problems,
    expected_backend_url,
    flag_problem,
    key_problems,
    pin_problem,
    shown,
    unknown_keys,
)

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.area("files")]


@pytest.mark.smoke
def test_env_has_every_required_key(gateway_host, gateway_env, gateway_snapshot, settings):
    problems = key_problems(gateway_env, settings.gateway.required_env_keys)
    if problems:
        toml = gateway_snapshot.agent_toml.value
        where = settings.gateway.env_file + (f" (nor {toml.path} [outbound])" if toml and toml.present else "")
        fail(gateway_host.id, where, expected="every required key set", found=", ".join(problems))


@pytest.mark.smoke
def test_env_has_no_key_the_agent_does_not_know(gateway_host, gateway_snapshot, settings):
    """A key the agent does not read is ignored without a word: a typo (VIW_AGENT_BACKEND_ULR) leaves the
    real key unset."""
    env = gateway_snapshot.env.require()
    gateway = settings.gateway
    unknown = unknown_keys(env, [*gateway.required_env_keys, *gateway.extra_env_keys])
    if unknown:
        fail(
            gateway_host.id,
            gateway.env_file,
            expected="only keys the agent reads",
            found=", ".join(f"{key} (did you mean {near}?)" if near else key for key, near in unknown.items()),
            evidence=f"fix or remove them; a key your agent does read: gateway.extra_env_keys in {settings.source}",
        )


@pytest.mark.smoke
@pytest.mark.tls
def test_backend_url_is_wss_to_the_agent_domain(gateway_host, gateway_env, config_source, settings):
    edge = settings.edge
    url = gateway_env.get(BACKEND_URL)
    problems = backend_url_problems(url, edge.domain, edge.ws_path, edge.https_port)
    if problems:
        fail(
            gateway_host.id,
            f"{config_source(BACKEND_URL)}: {BACKEND_URL}",
            expected=expected_backend_url(edge.domain, edge.ws_path, edge.https_port),
            found=shown(BACKEND_URL, url),
            evidence="; ".join(problems),
        )


@pytest.mark.smoke
@pytest.mark.tls
def test_backend_pin_is_well_formed(gateway_host, gateway_env, config_source, settings):
    problem = pin_problem(gateway_env.get(SPKI_PIN))
    if problem is not None:
        fail(
            gateway_host.id,
            f"{config_source(SPKI_PIN)}: {SPKI_PIN}",
            expected="the base64 SHA-256 pin of the backend certificate's key (bare or sha256/, backup after a comma)",
            found=problem,
        )


@pytest.mark.smoke
def test_inbound_http_is_as_expected(gateway_host, gateway_env, config_source, settings):
    expected = settings.gateway.expect_inbound_http
    problem = flag_problem(gateway_env, FEATURE_INBOUND_HTTP, expected)
    if problem is not None:
        fail(
            gateway_host.id,
            config_source(FEATURE_INBOUND_HTTP),
            expected=f"{FEATURE_INBOUND_HTTP}={str(expected).lower()}{'' if expected else ' (outbound only)'}",
            found=problem,
        )


@pytest.mark.smoke
def test_exec_is_as_expected(gateway_host, gateway_env, config_source, settings):
    expected = settings.gateway.expect_exec_enabled
    problem = flag_problem(gateway_env, FEATURE_EXEC, expected)
    if problem is not None:
        fail(
            gateway_host.id,
            config_source(FEATURE_EXEC),
            expected=f"{FEATURE_EXEC}={str(expected).lower()}",
            found=problem,
        )


@pytest.mark.smoke
def test_agent_toml_has_every_section(gateway_host, gateway_snapshot):
    """An agent.toml, where there is one, has every section (the production agent refuses to start otherwise)."""
    toml = gateway_snapshot.agent_toml.require()
    if toml is None or not toml.present:
        return  # the .env alone is the contract's reference form
    missing = missing_sections(toml.values or {})
    if missing:
        fail(
            gateway_host.id,
            toml.path,
            expected=f"every section ({', '.join(SECTIONS)})",
            found=f"sections {', '.join(missing)} missing",
        )
