"""nginx configuration from an ``nginx -T`` dump: includes, the agent server block, routing and client verification."""

import pytest

from viworks_verify.backend.nginx_config import NginxConfigError, parse_time
from viworks_verify.backend.nginx_dump import nginx_test_failure, parse_nginx_dump, split_dump
from viworks_verify.pki.certs import ca_bundle_problem, issue, new_ca

MAIN = """\
user www-data;
events { worker_connections 512; }
http {
    include /etc/nginx/mime.types;
    proxy_read_timeout 90s;
    include /etc/nginx/conf.d/*.conf;
}
"""
MIME = "types {\n    text/html html;\n}\n"
AGENT = """\
# Agent server block; "proxy_pass http://wrong:1;" in a comment must not count.
server {
    listen 80;
    server_name agent.example.com;
    location / { return 301 https://$host$request_uri; }
}
server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name agent.example.com;
    ssl_certificate /etc/nginx/tls/server.crt;
    ssl_certificate_key /etc/nginx/tls/server.key;
    ssl_client_certificate tls/client-ca.crt;
    ssl_verify_client optional;
    proxy_set_header Host $host;

    location /ws/ {
        if ($ssl_client_verify != SUCCESS) {
            return 403;
        }
        proxy_pass http://viworks-backend-agent-new:8081;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_read_timeout 1h;
    }
    location / {
        proxy_pass http://viworks-backend-agent-new:8080;
    }
}
"""
OTHER = "server {\n    listen 443 ssl;\n    server_name other.example.com;\n    location / { return 404; }\n}\n"


def dump(agent: str = AGENT, main: str = MAIN) -> str:
    """What ``nginx -T`` prints: each file after its header line, in the order nginx read them."""
    parts = [
        ("/etc/nginx/nginx.conf", main),
        ("/etc/nginx/mime.types", MIME),
        ("/etc/nginx/conf.d/agent.conf", agent),
        ("/etc/nginx/conf.d/other.conf", OTHER),
    ]
    return "".join(f"# configuration file {path}:\n{text}\n" for path, text in parts)


def agent_server(text: str):
    server = parse_nginx_dump(text).server_for("agent.example.com")
    assert server is not None
    return server


def test_the_dump_is_split_into_its_files():
    files = split_dump(dump())
    assert list(files) == [
        "/etc/nginx/nginx.conf",
        "/etc/nginx/mime.types",
        "/etc/nginx/conf.d/agent.conf",
        "/etc/nginx/conf.d/other.conf",
    ]
    assert files["/etc/nginx/mime.types"].startswith("types {")


def test_includes_are_expanded_from_the_dump_so_every_server_is_found():
    config = parse_nginx_dump(dump())
    assert config.errors == []
    assert [s.server_names for s in config.servers] == [
        ["agent.example.com"],
        ["agent.example.com"],
        ["other.example.com"],
    ]
    assert config.server_for("other.example.com").location("/") is not None
    assert config.server_for("missing.example.com") is None
    assert config.server_for("agent.example.com", 80).listens[0].ssl is False


def test_healthy_agent_server():
    server = agent_server(dump())
    assert [(listen.address, listen.port, listen.ssl) for listen in server.listens_on(443)] == [
        (None, 443, True),
        ("::", 443, True),
    ]
    assert server.certificate_paths == ["/etc/nginx/tls/server.crt"]
    assert server.key_paths == ["/etc/nginx/tls/server.key"]
    assert server.client_ca_path == "/etc/nginx/tls/client-ca.crt"  # relative: to nginx's prefix
    ws = server.location("/ws/")
    assert ws.proxy_targets == ["http://viworks-backend-agent-new:8081"]
    assert ws.proxy_http_version == "1.1"
    assert (ws.header("upgrade"), ws.header("Connection")) == ("$http_upgrade", "upgrade")
    assert ws.read_timeout_s == 3600
    verification = server.client_verification("/ws/")
    assert (
        verification.enforced
        and "optional + if ($ssl_client_verify != SUCCESS) { return 403; } in location /ws/" in verification.how
    )
    api = server.location("/")
    assert api.proxy_targets == ["http://viworks-backend-agent-new:8080"]


def test_directives_inherit_from_the_nearest_block_that_sets_them():
    server = agent_server(dump())
    api = server.location("/")
    assert api.read_timeout_s == 90  # from http
    assert api.header("Host") == "$host"  # from server: the location sets no proxy_set_header
    assert api.proxy_http_version == "1.0"  # nginx's default
    ws = server.location("/ws/")
    assert ws.header("Host") is None  # the location sets its own headers: the server's are not inherited
    no_timeout = agent_server(dump(main=MAIN.replace("    proxy_read_timeout 90s;\n", "")))
    assert no_timeout.location("/").read_timeout_s == 60 and "default" in no_timeout.location("/").read_timeout_text


def test_broken_ws_location_proxying_to_the_api_port():
    ws = agent_server(dump(AGENT.replace("agent-new:8081", "agent-new:8080"))).location("/ws/")
    assert ws.proxy_targets == ["http://viworks-backend-agent-new:8080"]


def test_broken_ws_location_without_upgrade_headers():
    ws = agent_server(dump(AGENT.replace("        proxy_set_header Upgrade $http_upgrade;\n", ""))).location("/ws/")
    assert ws.header("Upgrade") is None and ws.header("Connection") == "upgrade"


@pytest.mark.parametrize(
    "change, how",
    [
        (lambda a: a.replace("ssl_verify_client optional;", "ssl_verify_client off;"), "ssl_verify_client off"),
        (lambda a: a.replace("    ssl_verify_client optional;\n", ""), "ssl_verify_client off"),
        (
            lambda a: a.replace("ssl_verify_client optional;", "ssl_verify_client optional_no_ca;"),
            "does not verify against the CA",
        ),
        (lambda a: a.replace("return 403;", "set $x 1;"), "optional without an if"),
        (lambda a: a.replace("$ssl_client_verify != SUCCESS", "$http_x_debug = 1"), "optional without an if"),
        (
            lambda a: a.replace("$ssl_client_verify != SUCCESS", "$ssl_client_verify = SUCCESS"),
            "optional without an if",
        ),
    ],
)
def test_broken_client_verification(change, how):
    verification = agent_server(dump(change(AGENT))).client_verification("/ws/")
    assert not verification.enforced and how in verification.how


def test_refusing_requests_without_a_certificate_is_enforcement_too():
    # With "optional", nginx itself answers 495 to a certificate that fails verification.
    server = agent_server(dump(AGENT.replace("$ssl_client_verify != SUCCESS", "$ssl_client_verify = NONE")))
    assert server.client_verification("/ws/").enforced


def test_client_verification_on_for_the_whole_server():
    server = agent_server(dump(AGENT.replace("ssl_verify_client optional;", "ssl_verify_client on;")))
    assert server.client_verification("/ws/").enforced and server.client_verification("/").enforced


def test_upstreams_are_expanded_and_a_uri_suffix_is_kept():
    agent = AGENT.replace("proxy_pass http://viworks-backend-agent-new:8081;", "proxy_pass http://agents/;")
    main = MAIN.replace(
        "http {\n",
        "http {\n    upstream agents { server viworks-backend-agent-new:8081 max_fails=3; server b:8081; }\n",
    )
    ws = agent_server(dump(agent, main)).location("/ws/")
    assert ws.proxy_pass == "http://agents/"
    assert ws.proxy_targets == ["http://viworks-backend-agent-new:8081/", "http://b:8081/"]


def test_missing_location_and_missing_proxy_pass():
    server = agent_server(dump(AGENT.replace("location /ws/ {", "location /wss/ {")))
    assert server.location("/ws/") is None
    bare = agent_server(
        dump(AGENT.replace("        proxy_pass http://viworks-backend-agent-new:8080;\n", ""))
    ).location("/")
    assert bare.proxy_pass is None and bare.proxy_targets == []


@pytest.mark.parametrize(
    "text, seconds", [("3600", 3600), ("3600s", 3600), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800)]
)
def test_nginx_time_units(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "h", "1 h"])
def test_invalid_nginx_times(text):
    with pytest.raises(NginxConfigError):
        parse_time(text)


def test_text_that_is_not_a_dump_is_refused():
    with pytest.raises(NginxConfigError):
        parse_nginx_dump('nginx: [emerg] unknown directive "proxy_passs"\n')


def test_client_ca_bundle_must_hold_ca_certificates_only():
    ca = new_ca("Lab CA")
    leaf = issue(ca, "gw-lab-01", server=False)
    assert ca_bundle_problem(ca.cert_pem()) is None
    assert "not a CA" in ca_bundle_problem(leaf.cert_pem())
    assert "not a CA" in ca_bundle_problem(ca.cert_pem() + leaf.cert_pem())
    assert (
        ca_bundle_problem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        == "holds no PEM certificate"
    )


def test_the_nginx_test_failure_is_the_emerg_line_without_timestamp_and_pid():
    stderr = (
        '2026/11/22 23:22:05 [emerg] 145#145: unknown directive "proxy_http_versio" '
        "in /etc/nginx/conf.d/agent.conf:35\n"
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n"
    )
    assert (
        nginx_test_failure(stderr) == '[emerg] unknown directive "proxy_http_versio" in /etc/nginx/conf.d/agent.conf:35'
    )
    assert nginx_test_failure('nginx: [emerg] open() "/etc/nginx/x" failed\n') == '[emerg] open() "/etc/nginx/x" failed'
    assert nginx_test_failure("") is None


# ---- the identity headers: nginx sets them on every route to the agent, from the certificate only

IDENTITY_HTTP = """\
user www-data;
events { worker_connections 512; }
http {
    map $ssl_client_s_dn $client_cn {
        default "";
        "~(^|,)CN=(?<cn>[^,]+)" $cn;
    }
    map $http_x_client_cn $echoed_cn {
        default $http_x_client_cn;
    }
    upstream agent_api { server viworks-backend-agent-new:8080; }
    server {
        listen 443 ssl;
        server_name agent.example.com;
        proxy_set_header X-Client-CN $client_cn;
        proxy_set_header X-Client-Verify $ssl_client_verify;
        location /ws/ {
            proxy_pass http://viworks-backend-agent-new:8081;
            WS_HEADERS
        }
        location / {
            proxy_pass http://agent_api;
            API_HEADERS
        }
        location /static/ { root /srv; }
    }
}
"""


def identity_problems(ws_headers: str = "", api_headers: str = "") -> dict[str, list[str]]:
    from viworks_verify.backend.nginx_identity import identity_header_problem

    main = IDENTITY_HTTP.replace("WS_HEADERS", ws_headers).replace("API_HEADERS", api_headers)
    config = parse_nginx_dump(f"# configuration file /etc/nginx/nginx.conf:\n{main}\n")
    routes = config.servers[0].locations_proxying_to("viworks-backend-agent-new")
    return {
        location.match: [p for h in ("X-Client-CN", "X-Client-Verify") if (p := identity_header_problem(location, h))]
        for location, _ in routes
    }


def test_identity_headers_set_at_the_server_level_from_a_certificate_map_pass_on_every_route():
    assert identity_problems() == {"/ws/": [], "/": []}  # /static/ proxies nowhere: not a route to the agent


def test_a_location_setting_any_header_of_its_own_inherits_none_from_the_server():
    found = identity_problems(api_headers="proxy_set_header Host $host;")
    assert found["/"] == [
        "does not set X-Client-CN (a client's own X-Client-CN reaches the agent)",
        "does not set X-Client-Verify (a client's own X-Client-Verify reaches the agent)",
    ]
    assert found["/ws/"] == []


def test_identity_taken_from_the_clients_own_header_is_named_directly_or_through_a_map():
    assert identity_problems(
        ws_headers="proxy_set_header X-Client-CN $http_x_client_cn; proxy_set_header X-Client-Verify SUCCESS;"
    )["/ws/"] == [
        "sets X-Client-CN from $http_x_client_cn (the client's own header), not from the verified client certificate"
    ]
    assert identity_problems(
        ws_headers="proxy_set_header X-Client-CN $echoed_cn; proxy_set_header X-Client-Verify $ssl_client_verify;"
    )["/ws/"] == [
        "sets X-Client-CN from $http_x_client_cn (the client's own header), not from the verified client certificate"
    ]


def test_clearing_the_identity_headers_on_the_api_route_is_setting_them():
    assert (
        identity_problems(api_headers='proxy_set_header X-Client-CN ""; proxy_set_header X-Client-Verify "";')["/"]
        == []
    )


# ---- evaluating what nginx sends: maps, as a request makes them

MAPS = """\
events { worker_connections 512; }
http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    map $http_upgrade $backwards {
        default close;
        ''      upgrade;
    }
    map $ssl_client_s_dn $client_cn {
        default "";
        "~(^|,)CN=(?<cn>[^,]+)" $cn;
    }
    map $http_x_tier $tier {
        ~*^gold$ premium;
        default standard;
    }
}
"""


def evaluated(value: str, **request: str) -> str:
    config = parse_nginx_dump(f"# configuration file /etc/nginx/nginx.conf:\n{MAPS}\n")
    return config.evaluate(value, request)


def test_the_connection_upgrade_idiom_sends_upgrade_for_a_websocket_request_and_close_otherwise():
    assert evaluated("$connection_upgrade", http_upgrade="websocket") == "upgrade"
    assert evaluated("$connection_upgrade", http_upgrade="") == "close"
    assert (
        evaluated("$backwards", http_upgrade="websocket") == "close"
    )  # a map written the wrong way round is seen as such


def test_map_regexes_match_in_order_with_their_captures_and_case_rules():
    assert evaluated("$client_cn", ssl_client_s_dn="CN=gw-lab-01,O=ViWorkS") == "gw-lab-01"
    assert evaluated("$client_cn", ssl_client_s_dn="O=ViWorkS") == ""
    assert evaluated("tier=$tier", http_x_tier="GOLD") == "tier=premium"
    assert evaluated("$unknown_variable") == "$unknown_variable"  # not computable here: left as written


# ---- which location nginx picks for a request

ROUTES = """\
events { worker_connections 512; }
http {
    server {
        listen 443 ssl;
        server_name agent.example.com;
        location / { return 200 root; }
        location /agent/ { return 200 agent-prefix; }
        location = /agent/ws { return 200 exact; }
        location ^~ /ws/ { return 200 ws-stop; }
        location ~ ^/ws/.*\\.png$ { return 200 image; }
        location ~* ^/API/ { return 200 api-regex; }
        location /api/v1/ { return 200 api-prefix; }
    }
}
"""


@pytest.mark.parametrize(
    "uri, picked",
    [
        ("/agent/ws", "= /agent/ws"),
        ("/agent/other", "/agent/"),
        ("/ws/agent", "^~ /ws/"),
        ("/ws/x.png", "^~ /ws/"),
        ("/api/v1/agents", "~* ^/API/"),
        ("/health", "/"),
    ],
)
def test_nginx_picks_the_location_by_its_own_rules_not_by_spelling(uri, picked):
    server = parse_nginx_dump(f"# configuration file /etc/nginx/nginx.conf:\n{ROUTES}\n").servers[0]
    location = server.location_for(uri)
    assert f"{location.modifier} {location.match}".strip() == picked
