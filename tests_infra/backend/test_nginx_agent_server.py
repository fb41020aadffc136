"""nginx on the backend host: a valid configuration whose agent server block routes and guards as the contract says.

Read from ``nginx -T`` (one exec per run) and parsed, never grepped.
"""

from __future__ import annotations

import pytest

from viworks_verify.backend.nginx_identity import identity_header_problem
from viworks_verify.core.verdict import fail
from viworks_verify.pki.certs import ca_bundle_problem

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("nginx")]

API_PATH = "/api/v1/agents"  # a request the API answers: the location nginx picks for it is the API's


def _where(settings, server=None) -> str:
    """The subject of a verdict: nginx's container, and the agent server when the claim is about it."""
    return settings.backend.nginx_container + (f": server {settings.edge.domain}" if server is not None else "")


def _location(host, settings, server, uri, recorder):
    """The location nginx picks for a request to ``uri`` (judged as nginx matches, not as it is spelled)."""
    location = server.location_for(uri)
    if location is None:
        found = (
            ", ".join(f"{loc.modifier + ' ' if loc.modifier else ''}{loc.match}" for loc in server.locations) or "none"
        )
        fail(
            host.id,
            _where(settings, server),
            expected=f"a location for {uri}",
            found=f"locations {found}",
            evidence=server.where,
        )
    recorder.attach(f"nginx location {location.match} (for {uri})", location.text())
    return location


def _check_proxies_to(host, settings, location, port):
    """Every proxy_pass of the location goes to the backend agent container on ``port``."""
    expected = f"http://{settings.backend.agent_container}:{port}"
    found = location.proxy_targets
    if not found or any(target != expected for target in found):
        fail(
            host.id,
            f"{_where(settings)}: location {location.match}",
            expected=f"it to proxy to {expected}",
            found=f"it proxies to {', '.join(found) or 'nothing (no proxy_pass)'}",
            evidence=location.directive.where,
        )


@pytest.mark.smoke
def test_nginx_config_test_passes(backend_snapshot):
    backend_snapshot.nginx.require()  # read by nginx -T, which tests the configuration before dumping it


@pytest.mark.smoke
@pytest.mark.tls
def test_nginx_agent_server_listens_on_https(backend_host, agent_server, settings):
    server = agent_server.require()
    port = settings.edge.https_port
    listens = server.listens_on(port)
    if not any(listen.ssl for listen in listens):
        fail(
            backend_host.id,
            _where(settings, server),
            expected=f"listen {port} ssl",
            found=", ".join("listen " + listen.raw for listen in listens) or f"no listen {port}",
            evidence=server.where,
        )


@pytest.mark.smoke
def test_nginx_ws_location_proxies_to_backend_agent_ws_port(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    location = _location(backend_host, settings, server, settings.edge.ws_path, recorder)
    _check_proxies_to(backend_host, settings, location, settings.backend.ws_port)


@pytest.mark.smoke
def test_nginx_ws_location_upgrades_to_websocket(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    location = _location(backend_host, settings, server, settings.edge.ws_path, recorder)
    # Judged as nginx computes the headers for an agent's upgrade request (a map such as
    # $connection_upgrade evaluated), not as they are spelled.
    upgrade_request = {"http_upgrade": "websocket", "http_connection": "Upgrade"}
    config = server.config
    expected = {"proxy_http_version": "1.1", "Upgrade": "websocket", "Connection": "upgrade"}
    written = {
        "proxy_http_version": location.proxy_http_version,
        "Upgrade": location.header("Upgrade"),
        "Connection": location.header("Connection"),
    }
    sent = {
        key: config.evaluate(value, upgrade_request) if value is not None and key != "proxy_http_version" else value
        for key, value in written.items()
    }
    wrong = [key for key in expected if (sent[key] or "").lower() != expected[key].lower()]

    def shown(key: str) -> str:
        if written[key] is None:
            return f"{key} (not set)"
        value = sent[key] or '""'
        return f"{key} {written[key]}" + (f" (= {value} for an upgrade request)" if sent[key] != written[key] else "")

    if wrong:
        fail(
            backend_host.id,
            f"{_where(settings)}: location {location.match}",
            expected=", ".join(f"{k} {expected[k]}" for k in wrong) + " for an agent's upgrade request",
            found=", ".join(shown(k) for k in wrong),
            evidence=location.directive.where,
        )


@pytest.mark.smoke
def test_nginx_ws_location_keeps_idle_websockets_open(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    location = _location(backend_host, settings, server, settings.edge.ws_path, recorder)
    minimum = settings.backend.ws_min_read_timeout_s
    if location.read_timeout_s < minimum:
        fail(
            backend_host.id,
            f"{_where(settings)}: location {location.match}",
            expected=f"proxy_read_timeout at least {minimum:.0f} s",
            found=f"proxy_read_timeout {location.read_timeout_text} ({location.read_timeout_s:.0f} s)",
            evidence=location.directive.where,
        )


@pytest.mark.smoke
def test_nginx_root_location_proxies_to_backend_agent_api_port(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    location = _location(backend_host, settings, server, API_PATH, recorder)
    _check_proxies_to(backend_host, settings, location, settings.backend.api_port)


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("identity")
def test_nginx_sets_the_identity_headers_on_every_location_to_the_backend_agent(
    backend_host, backend_snapshot, settings, recorder
):
    """The agent trusts the identity headers nginx passes: on every route to it (any server, any
    port), nginx must set them itself, or a client chooses its own agent id."""
    config = backend_snapshot.nginx.require()
    agent, headers = settings.backend.agent_container, settings.backend.identity_headers
    problems = []
    for server in config.servers:
        for location, target in server.locations_proxying_to(agent):
            found = [problem for header in headers if (problem := identity_header_problem(location, header))]
            if found:
                recorder.attach(f"nginx location {location.match}", location.text())
                problems.append(
                    f"location {location.match} to {target} ({location.directive.where}) {' and '.join(found)}"
                )
    if problems:
        fail(
            backend_host.id,
            _where(settings),
            expected=f"every location that proxies to {agent} to set {', '.join(headers)} itself "
            '(from $ssl_client_*, or "" to clear), so a client can never supply them',
            found="; ".join(problems),
        )


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("tls")
def test_nginx_ws_location_requires_a_verified_client_certificate(backend_host, agent_server, settings, recorder):
    server = agent_server.require()
    _location(backend_host, settings, server, settings.edge.ws_path, recorder)
    verification = server.client_verification(settings.edge.ws_path)
    if not verification.enforced:
        fail(
            backend_host.id,
            _where(settings, server),
            expected=f"client certificates verified on {settings.edge.ws_path} "
            "(ssl_verify_client on, or optional + if ($ssl_client_verify != SUCCESS) { return 403; })",
            found=verification.how,
        )


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("tls")
def test_nginx_client_ca_is_a_ca_certificate(backend_host, agent_server, nginx_tls_files, settings):
    server = agent_server.require()
    where = _where(settings, server)
    path = server.client_ca_path
    if not path:
        fail(
            backend_host.id,
            where,
            expected="ssl_client_certificate naming the internal CA",
            found="none",
            evidence=server.where,
        )
    ca_file = nginx_tls_files.require().get(path)
    if ca_file is None or not ca_file.exists:
        fail(
            backend_host.id,
            f"{where}: ssl_client_certificate {path}",
            expected="the internal CA certificate",
            found="no such file",
        )
    if ca_file.content is None:
        fail(
            backend_host.id,
            f"{where}: ssl_client_certificate {path}",
            expected="a readable file",
            found=f"a {ca_file.kind}, mode {ca_file.octal}",
        )
    problem = ca_bundle_problem(ca_file.content)
    if problem is not None:
        fail(
            backend_host.id,
            f"{where}: ssl_client_certificate {path}",
            expected="CA certificates",
            found=f"it {problem}",
        )


@pytest.mark.smoke
@pytest.mark.tls
@pytest.mark.area("tls")
def test_nginx_server_certificate_and_key_exist(backend_host, agent_server, nginx_tls_files, settings):
    server = agent_server.require()
    where = _where(settings, server)
    if not (server.certificate_paths and server.key_paths):
        fail(
            backend_host.id,
            where,
            expected="ssl_certificate and ssl_certificate_key",
            found=f"ssl_certificate {server.certificate_paths or 'none'}, "
            f"ssl_certificate_key {server.key_paths or 'none'}",
            evidence=server.where,
        )
    files = nginx_tls_files.require()
    missing = [
        path
        for path in (*server.certificate_paths, *server.key_paths)
        if "$" not in path and not (files.get(path) and files[path].is_file)
    ]
    if missing:
        fail(
            backend_host.id,
            where,
            expected="the server certificate and key files",
            found=f"missing: {', '.join(missing)}",
        )
