"""The configuration files the lab deploys: as the reference writes them, or as a fault, a variant or a
release candidate has them. nginx (its server block and snippets, TLS files), the backend agent's
TOML and signing key, Redis and Postgres; a gateway host's .env and agent.toml; a stock gateway
host's services."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from viworks_lab.candidate import (
    BackendSecrets,
    Candidate,
    GatewayValues,
    database_name,
    fill_backend_config,
    fill_gateway_env,
    fill_gateway_toml,
)
from viworks_lab.engine import LabError
from viworks_lab.faults import Knobs
from viworks_lab.layout import AGENT_DOMAIN, BACKEND_VERSION, FIXTURES, GatewayHost, StateDir, render
from viworks_lab.material import Material, ensure_server_variant, gateway_pins
from viworks_lab.variants import Variant

# The identity-header-passthrough fault, as it is written in real configurations: "prefer the
# identity a front proxy set". Genuine agents send no such header and still connect; a client
# that sends one chooses its own agent id.
_PASSTHROUGH_MAPS = """# Prefer the identity a front proxy set, else the certificate's.
map $http_x_client_cn $viworks_forwarded_cn {
    "" $viworks_client_cn;
    default $http_x_client_cn;
}
map $http_x_client_verify $viworks_forwarded_verify {
    "" $ssl_client_verify;
    default $http_x_client_verify;
}
"""


_REFUSE_UNVERIFIED = """if ($ssl_client_verify != SUCCESS) {
            return 403;
        }"""


def _edge_values(knobs: Knobs) -> dict[str, str]:
    """nginx as the reference lab writes it, or as a fault breaks it."""
    unchecked = knobs.client_certificate_unchecked
    return {
        "HTTP_ROOT": "proxy_pass http://viworks-backend-agent-new:8080;"
        if knobs.http_serves_agent
        else "return 301 https://$host$request_uri;",
        "VERIFY_CLIENT": "optional_no_ca" if unchecked else "optional",
        "WS_CLIENT_CHECK": "# any client certificate, or none, goes through" if unchecked else _REFUSE_UNVERIFIED,
        "API_IDENTITY_CN": "$http_x_client_cn" if knobs.api_identity_from_client else '""',
        "API_IDENTITY_VERIFY": "$http_x_client_verify" if knobs.api_identity_from_client else '""',
    }


def _identity_values(from_client: bool) -> dict[str, str]:
    if from_client:
        return {
            "IDENTITY_MAPS": _PASSTHROUGH_MAPS,
            "IDENTITY_CN": "$viworks_forwarded_cn",
            "IDENTITY_VERIFY": "$viworks_forwarded_verify",
        }
    return {"IDENTITY_MAPS": "", "IDENTITY_CN": "$viworks_client_cn", "IDENTITY_VERIFY": "$ssl_client_verify"}


def render_backend_host(
    state: StateDir, variant: Variant, material: Material, knobs: Knobs, candidate: Candidate | None
) -> None:
    """Write the backend host's files (nginx and its TLS files, the backend agent's config and signing key, Redis,
    Postgres) under the state's ``rendered`` directory, rewriting only what changed."""
    rendered = state.rendered
    served = knobs.served_identity
    if served != "server":
        ensure_server_variant(state, served)
    values = {
        "AGENT_DOMAIN": AGENT_DOMAIN,
        "WS_PORT": str(knobs.nginx_ws_port),
        "VERSION": knobs.reported_version or BACKEND_VERSION,
        "POSTGRES_PASSWORD": material.postgres_password,
        "REDIS_PASSWORD": material.redis_password,
        "JWT_SECRET": material.rotated_jwt_secret if knobs.backend_jwt_secret_rotated else material.jwt_secret,
        "WS_SERVER_ENABLED": str(knobs.ws_server_enabled).lower(),
        "DISPATCH_ENABLED": str(knobs.dispatch_enabled).lower(),
        **_identity_values(knobs.identity_from_client),
        "WS_PATH": variant.ws_path,
        "WS_LOCATION": variant.ws_location,
        **_edge_values(knobs),
        "LAB_FAULTS": "# The lab agent's fault switches (see viworks_lab/faults.py).\n[lab_faults]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in knobs.backend_faults),
        "TLS_PROTOCOLS": "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3" if knobs.old_tls_protocols else "TLSv1.2 TLSv1.3",
        "TLS_CIPHERS": "DEFAULT:@SECLEVEL=0" if knobs.old_tls_protocols else "HIGH:!aNULL:!MD5",
    }
    nginx = FIXTURES / "nginx"
    files = {
        "nginx/nginx.conf": ((nginx / "nginx.conf").read_text(), 0o644),
        "nginx/conf.d/viworks-agent.conf": (render((nginx / variant.nginx_template).read_text(), values), 0o644),
        **{
            f"nginx/snippets/{snippet.name.removesuffix('.template')}": (render(snippet.read_text(), values), 0o644)
            for snippet in sorted((nginx / "snippets").glob("*.template"))
        },
        "nginx/tls/server.crt": (material.read(f"{served}.crt").decode(), 0o644),
        "nginx/tls/server.key": (material.read(f"{served}.key").decode(), 0o600),
        "nginx/tls/client-ca.crt": (material.read("ca.crt").decode(), 0o644),
        "backend/backend-agent.toml": (backend_config(material, values, candidate), 0o600),
        "backend/command-signing.key": (material.read_signing("command-signing.key").decode(), 0o600),
        "redis/redis.conf": (render((FIXTURES / "redis" / "redis.conf.template").read_text(), values), 0o600),
        "postgres/postgres-password": (material.postgres_password, 0o600),
    }
    # Postgres creates the database the deployed config names (none with the database-missing fault).
    files["postgres/database-name"] = (
        database_to_create(files["backend/backend-agent.toml"][0]) if knobs.database_created else "",
        0o644,
    )
    for relative, (text, mode) in files.items():
        path = rendered / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        path.chmod(mode)


def backend_config(material: Material, values: dict[str, str], candidate: Candidate | None) -> str:
    """The reference config, or the candidate's as given (its lab-owned values filled when asked)."""
    given = candidate.text("backend_config") if candidate is not None else None
    if given is None:
        return render((FIXTURES / "backend" / "backend-agent.toml.template").read_text(), values)
    if not candidate.lab_secrets:
        return given
    return fill_backend_config(
        given, BackendSecrets(material.postgres_password, material.redis_password, material.jwt_secret)
    )


def gateway_config(
    variant: Variant, material: Material, gateway: GatewayHost, values: dict[str, str], candidate: Candidate | None
) -> tuple[str | None, str]:
    """(agent.toml or None, .env) for a gateway host: the variant's, or the candidate's as given
    (the lab's own values filled when asked). A candidate that brings one file gets the other from the reference."""
    toml = variant.gateway_config == "toml"
    templates = FIXTURES / "gateway" / ("toml" if toml else "")
    toml_text = render((templates / "agent.toml.template").read_text(), values) if toml else None
    env_text = render((templates / "agent.env.template").read_text(), values)
    if candidate is None:
        return toml_text, env_text
    owned = GatewayValues(AGENT_DOMAIN, gateway.agent_id, gateway.site, gateway_pins(material, variant))
    given_toml, given_env = candidate.text("gateway_config"), candidate.text("gateway_env")
    if given_toml is not None:
        toml_text = fill_gateway_toml(given_toml, owned) if candidate.lab_secrets else given_toml
    if given_env is not None:
        env_text = fill_gateway_env(given_env, owned) if candidate.lab_secrets else given_env
    return toml_text, env_text


def stock_service_files(material: Material) -> dict[str, tuple[bytes, int]]:
    """A stock gateway host's services, configured as the lab's container allows them to run."""
    stock = FIXTURES / "gateway" / "stock"
    knock_key = hashlib.sha256(("fwknop:" + material.jwt_secret).encode()).digest()
    access = (
        f"SOURCE ANY\nKEY_BASE64 {base64.b64encode(knock_key[:16]).decode()}\n"
        f"HMAC_KEY_BASE64 {base64.b64encode(knock_key).decode()}\n"
    )
    return {
        "/usr/local/vpnserver/vpnserver.py": ((stock / "vpnserver.py").read_bytes(), 0o644),
        "/etc/systemd/system/vpnserver.service": ((stock / "vpnserver.service").read_bytes(), 0o644),
        "/etc/systemd/system/chrony.service.d/lab.conf": ((stock / "chrony-in-a-container.conf").read_bytes(), 0o644),
        "/etc/systemd/system/fwknop-server.service.d/lab.conf": ((stock / "fwknop-test-mode.conf").read_bytes(), 0o644),
        "/etc/fwknop/access.conf": (access.encode(), 0o600),
    }


def database_to_create(config_text: str) -> str:
    """The database Postgres must have for the backend's config (as a deploy would create it)."""
    name = database_name(config_text) or ""
    if name and not re.fullmatch(r"[A-Za-z0-9_-]{1,63}", name):
        raise LabError(
            f"the backend config's [database] url names {name!r}: the lab creates databases named [A-Za-z0-9_-] only"
        )
    return name
