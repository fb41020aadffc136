"""nginx on the backend host: a valid configuration whose agent server block routes and guards as the contract says.

Read from ``nginx -T`` (one exec per run) and parsed, never grepped.
"""

from __future__ import annotations

import pytest

from viworks_verify.nginx_config import ca_bundle_problem, identity_header_problem

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("nginx")]

API_PATH = "/api/v1/agents"  # a request the API answers: the location nginx picks for it is the API's


def _where(host, settings, server=None) -> str:
    return f"{host.id}: {settings.backend.nginx_container}" + (f": server {settings.edge.domain}" if server is not None else "")


def _location(host, settings, server, uri, recorder):
    """The location nginx picks for a request to ``uri`` (judged as nginx matches, not as it is spelled)."""
    location = server.location_for(uri)
    if location is None:
        found = ", ".join(f"{loc.modifier + ' ' if loc.modifier else ''}{loc.match}" for loc in server.locations) or "none"
        pytest.fail(f"{_where(host, settings, server)}: expected a location for {uri}; found locations {found} ({server.where})", pytrace=False)
    recorder.attach(f"nginx location {location.match} (for {uri})", location.text())
    return location


def _assert_proxies_to(host, settings, location, port):
    """Every proxy_pass of the location goes to the backend agent container on ``port``."""
    expected = f"http://{settings.backend.agent_container}:{port}"
    found = location.proxy_targets
    assert found and all(target == expected for target in found), (
        f"{_where(host, settings)}: location {location.match} proxies to {', '.join(found) or 'nothing (no proxy_pass)'}; "
        f"expected {expected} ({location.directive.where})"
    )


@pytest.mark.smoke
def test_nginx_config_test_passes(nginx_config):
    nginx_config.require()  # read by nginx -T, which tests the configuration before dumping it


@pytest.mark.smoke
@pytest.mark.tls
def test_nginx_agent_server_listens_on_https(backend_host, agent_server, settings):
    server = agent_server.require()
    port = settings.edge.https_port
    listens = server.listens_on(port)
    assert any(listen.ssl for listen in listens), (
        f"{_where(backend_host, settings, server)}: expected listen {port} ssl; found {', '.join('listen ' + l.raw for l in listens)} ({server.where})"
    )


@pytest.mark.smoke
def test_nginx_ws_location_proxies_to_backend_agent_ws_port(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    location = _location(backend_host, settings, server, settings.edge.ws_path, recorder)
    _assert_proxies_to(backend_host, settings, location, settings.backend.ws_port)


@pytest.mark.smoke
def test_nginx_ws_location_upgrades_to_websocket(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    location = _location(backend_host, settings, server, settings.edge.ws_path, recorder)
    # Judged as nginx computes the headers for an agent's upgrade request (a map such as
    # $connection_upgrade evaluated), not as they are spelled.
    upgrade_request = {"http_upgrade": "websocket", "http_connection": "Upgrade"}
    config = server.config
    expected = {"proxy_http_version": "1.1", "Upgrade": "websocket", "Connection": "upgrade"}
    written = {"proxy_http_version": location.proxy_http_version, "Upgrade": location.header("Upgrade"), "Connection": location.header("Connection")}
    sent = {key: config.evaluate(value, upgrade_request) if value is not None and key != "proxy_http_version" else value
            for key, value in written.items()}
    wrong = [key for key in expected if (sent[key] or "").lower() != expected[key].lower()]

    def shown(key: str) -> str:
        if written[key] is None:
            return f"{key} (not set)"
        value = sent[key] or '""'
        return f"{key} {written[key]}" + (f" (= {value} for an upgrade request)" if sent[key] != written[key] else "")

    assert not wrong, (
        f"{_where(backend_host, settings)}: location {location.match}: expected, for an agent's upgrade request, "
        + ", ".join(f"{k} {expected[k]}" for k in wrong) + "; found " + ", ".join(shown(k) for k in wrong)
        + f" ({location.directive.where})"
    )


@pytest.mark.smoke
def test_nginx_ws_location_keeps_idle_websockets_open(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    location = _location(backend_host, settings, server, settings.edge.ws_path, recorder)
    minimum = settings.backend.ws_min_read_timeout_s
    assert location.read_timeout_s >= minimum, (
        f"{_where(backend_host, settings)}: location {location.match}: proxy_read_timeout {location.read_timeout_text} "
        f"({location.read_timeout_s:.0f} s); expected at least {minimum:.0f} s ({location.directive.where})"
    )


@pytest.mark.smoke
def test_nginx_root_location_proxies_to_backend_agent_api_port(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    location = _location(backend_host, settings, server, API_PATH, recorder)
    _assert_proxies_to(backend_host, settings, location, settings.backend.api_port)


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("identity")
def test_nginx_sets_the_identity_headers_on_every_location_to_the_backend_agent(backend_host, nginx_config, settings, recorder):
    """The agent trusts the identity headers nginx passes: on every route to it (any server, any
    port), nginx must set them itself, or a client chooses its own agent id."""
    config = nginx_config.require()
    agent, headers = settings.backend.agent_container, settings.backend.identity_headers
    problems = []
    for server in config.servers:
        for location, target in server.locations_proxying_to(agent):
            found = [problem for header in headers if (problem := identity_header_problem(location, header))]
            if found:
                recorder.attach(f"nginx location {location.match}", location.text())
                problems.append(f"location {location.match} to {target} ({location.directive.where}) {' and '.join(found)}")
    assert not problems, (
        f"{_where(backend_host, settings)}: expected every location that proxies to {agent} to set {', '.join(headers)} "
        f"itself (from $ssl_client_*, or \"\" to clear), so a client can never supply them; found {'; '.join(problems)}"
    )


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("tls")
def test_nginx_ws_location_requires_a_verified_client_certificate(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    _location(backend_host, settings, server, settings.edge.ws_path, recorder)
    verification = server.client_verification(settings.edge.ws_path)
    assert verification.enforced, (
        f"{_where(backend_host, settings, server)}: expected client certificates verified on {settings.edge.ws_path} "
        f"(ssl_verify_client on, or optional + if ($ssl_client_verify != SUCCESS) {{ return 403; }}); found {verification.how}"
    )


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("tls")
def test_nginx_client_ca_is_a_ca_certificate(backend_host, agent_server, nginx_tls_files, settings):
    server = agent_server.require()
    where = _where(backend_host, settings, server)
    path = server.client_ca_path
    assert path, f"{where}: expected ssl_client_certificate naming the internal CA; found none ({server.where})"
    ca_file = nginx_tls_files.require().get(path)
    assert ca_file is not None and ca_file.exists, f"{where}: ssl_client_certificate {path}: expected the internal CA certificate; found no such file"
    assert ca_file.content is not None, f"{where}: ssl_client_certificate {path}: expected a readable file; found a {ca_file.kind}, mode {ca_file.mode_text}"
    problem = ca_bundle_problem(ca_file.content)
    assert problem is None, f"{where}: ssl_client_certificate {path}: expected CA certificates; found it {problem}"


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("tls")
def test_nginx_server_certificate_and_key_exist(backend_host, agent_server, nginx_tls_files, settings):
    server = agent_server.require()
    where = _where(backend_host, settings, server)
    assert server.certificate_paths and server.key_paths, (
        f"{where}: expected ssl_certificate and ssl_certificate_key; found "
        f"ssl_certificate {server.certificate_paths or 'none'}, ssl_certificate_key {server.key_paths or 'none'} ({server.where})"
    )
    files = nginx_tls_files.require()
    missing = [path for path in (*server.certificate_paths, *server.key_paths) if "$" not in path and not (files.get(path) and files[path].is_file)]
    assert not missing, f"{where}: expected the server certificate and key files; found missing: {', '.join(missing)}"
