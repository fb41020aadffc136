"""Bring the lab replica up, report on it, take it down."""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import hashlib
import json
import re
import ssl
import time
from typing import Callable

import docker
import httpx

from viworks_verify.polling import NotReady, poll_until
from viworks_verify.tokens import mint_token
from viworks_lab import images, topology
from viworks_lab.engine import LabError, docker_client
from viworks_lab.layout import (
    BACKEND, BACKEND_HOST, NGINX, POSTGRES, REDIS,
    AGENT_DOMAIN, BACKEND_VERSION, FIXTURES, LOOPBACK, MAX_GATEWAYS, PORTS, GatewayHost, StateDir,
    default_state, fleet, gateway_by_id, render,
)
from viworks_lab.faults import FAULTS, Fault, Knobs
from viworks_lab.variants import REFERENCE, VARIANTS, Variant
from viworks_lab.material import Material, ensure_material, ensure_server_variant, gateway_pins
from viworks_lab.candidate import (
    BackendSecrets, Candidate, GatewayValues, database_name, fill_backend_config, fill_gateway_env, fill_gateway_toml,
    forget_candidate, load_candidate, take_candidate,
)
from viworks_lab.release import Build, build_agent, write_manifest

GATEWAY_FILES_MARK = "/var/lib/viworks-lab/deployed.sha256"
ALL_READY = ("backend", "edge", "gateway")
BACKEND_BINARY = "/app/viworks-backend-agent"
GATEWAY_BINARY = "/opt/viworks/viworks-gateway-agent"
GATEWAY_UNIT = "viworks-gateway-agent.service"
SETTLED_S = 2  # a candidate's process counts as started once it has run this long (or, the backend, answered /health)
_VERSION = re.compile(r"\b\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?\b")
Log = Callable[[str], None]


class CandidateDidNotStart(LabError):
    """The lab is up, but a candidate's agent did not start: the message holds its last log lines."""


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


_DOCKER_GROUP_FOR_OPS = (
    'gid=$(stat -c %g /var/run/docker.sock)'
    ' && { getent group "$gid" >/dev/null || groupadd -g "$gid" docker-engine; }'
    ' && usermod -aG "$(getent group "$gid" | cut -d: -f1)" ops'
    ' && chown -R ops:ops /home/ops/.ssh && chmod 0700 /home/ops/.ssh'
)
STOCK_SERVICES = ("systemd-resolved.service", "chrony.service", "fwknop-server.service", "vpnserver.service")
_STOP_STOCK_SERVICES = (
    "systemctl disable --now systemd-resolved.service chrony.service fwknop-server.service"
    " && if [ -e /etc/systemd/system/vpnserver.service ]; then systemctl disable --now vpnserver.service; fi"
)


def _stock_service_files(material: Material) -> dict[str, tuple[bytes, int]]:
    """A stock gateway host's services, configured as the lab's container allows them to run."""
    stock = FIXTURES / "gateway" / "stock"
    knock_key = hashlib.sha256(("fwknop:" + material.jwt_secret).encode()).digest()
    access = f"SOURCE ANY\nKEY_BASE64 {base64.b64encode(knock_key[:16]).decode()}\nHMAC_KEY_BASE64 {base64.b64encode(knock_key).decode()}\n"
    return {
        "/usr/local/vpnserver/vpnserver.py": ((stock / "vpnserver.py").read_bytes(), 0o644),
        "/etc/systemd/system/vpnserver.service": ((stock / "vpnserver.service").read_bytes(), 0o644),
        "/etc/systemd/system/chrony.service.d/lab.conf": ((stock / "chrony-in-a-container.conf").read_bytes(), 0o644),
        "/etc/systemd/system/fwknop-server.service.d/lab.conf": ((stock / "fwknop-test-mode.conf").read_bytes(), 0o644),
        "/etc/fwknop/access.conf": (access.encode(), 0o600),
    }


_REFUSE_UNVERIFIED = """if ($ssl_client_verify != SUCCESS) {
            return 403;
        }"""


def _edge_values(knobs: Knobs) -> dict[str, str]:
    """nginx as the reference lab writes it, or as a fault breaks it."""
    unchecked = knobs.client_certificate_unchecked
    return {
        "HTTP_ROOT": "proxy_pass http://viworks-backend-agent-new:8080;" if knobs.http_serves_agent else "return 301 https://$host$request_uri;",
        "VERIFY_CLIENT": "optional_no_ca" if unchecked else "optional",
        "WS_CLIENT_CHECK": "# any client certificate, or none, goes through" if unchecked else _REFUSE_UNVERIFIED,
        "API_IDENTITY_CN": "$http_x_client_cn" if knobs.api_identity_from_client else '""',
        "API_IDENTITY_VERIFY": "$http_x_client_verify" if knobs.api_identity_from_client else '""',
    }


def _identity_values(from_client: bool) -> dict[str, str]:
    if from_client:
        return {"IDENTITY_MAPS": _PASSTHROUGH_MAPS, "IDENTITY_CN": "$viworks_forwarded_cn", "IDENTITY_VERIFY": "$viworks_forwarded_verify"}
    return {"IDENTITY_MAPS": "", "IDENTITY_CN": "$viworks_client_cn", "IDENTITY_VERIFY": "$ssl_client_verify"}


@dataclasses.dataclass
class Lab:
    """One lab on this machine: its state directory and a Docker client."""

    state: StateDir = dataclasses.field(default_factory=default_state)
    log: Log = print
    ready_timeout_s: float = 120.0
    _client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    # ---- the fleet of gateway hosts ------------------------------------------------------------
    @property
    def gateway_count(self) -> int:
        """How many gateway hosts the lab runs: as the last ``up --gateways N`` said, else one."""
        if self.state.fleet.exists():
            return int(json.loads(self.state.fleet.read_text())["gateways"])
        return 1

    @property
    def gateways(self) -> list[GatewayHost]:
        return fleet(self.gateway_count)

    @property
    def variant(self) -> Variant:
        """The lab's variant: as the last ``up --variant NAME`` said, else the reference."""
        if self.state.variant.exists():
            return VARIANTS[json.loads(self.state.variant.read_text())["variant"]]
        return REFERENCE

    @property
    def candidate(self) -> Candidate | None:
        """The release candidate the lab rehearses instead of the reference agents (``up --release``)."""
        return load_candidate(self.state.root)

    @property
    def fault_gateway(self) -> GatewayHost:
        """The gateway host the active fault is injected into (gw-lab-01 unless ``break --host`` said)."""
        host = json.loads(self.state.fault.read_text()).get("host") if self.state.fault.exists() else None
        return gateway_by_id(host, self.gateway_count) if host else self.gateways[0]

    # ---- up, break, heal ----------------------------------------------------------------------
    def rehearse(self, release_dir, files: dict, lab_secrets: bool, version: str | None = None,
                 gateways: int | None = None, variant: str | None = None) -> dict[str, float]:
        """Deploy a release candidate (``up --release``) and check that its agents start."""
        candidate = take_candidate(self.state.root, release_dir, files, lab_secrets, version)
        self.log(f"rehearsing a candidate: {candidate.describe()}")
        return self.up(gateways=gateways, variant=variant)

    def use_reference_agents(self) -> bool:
        """Forget the candidate (``up --reference-agents``); whether there was one."""
        return forget_candidate(self.state.root)

    def up(self, gateways: int | None = None, variant: str | None = None) -> dict[str, float]:
        """Build what is missing, start what is not running, wait until every gateway is Online.

        ``gateways``: run that many gateway hosts from now on (gw-lab-01..NN); None keeps the count.
        With a fault in (``break``), the lab keeps it and waits only for what the fault leaves working.
        With a candidate (``rehearse``), it waits until the candidate's agents have started, not for
        them to work: that is the gate's to judge (``CandidateDidNotStart`` when one does not start).
        """
        if gateways is not None:
            if not 1 <= gateways <= MAX_GATEWAYS:
                raise LabError(f"--gateways must be 1..{MAX_GATEWAYS}, not {gateways}")
            self.state.root.mkdir(parents=True, exist_ok=True)
            self.state.fleet.write_text(json.dumps({"gateways": gateways}))
        if variant is not None:
            if variant not in VARIANTS:
                raise LabError(f"unknown variant {variant!r}; `viworks-lab variants` lists them")
            self.state.root.mkdir(parents=True, exist_ok=True)
            self.state.variant.write_text(json.dumps({"variant": variant}))
        fault = self.active_fault()
        return self._converge(fault.knobs if fault else Knobs(), fault.wait_for if fault else ALL_READY)

    def break_fault(self, name: str, host: str | None = None) -> None:
        """Inject one fault into a healthy lab (healing any other first); ``host``: the gateway a gateway fault hits."""
        fault = FAULTS.get(name)
        if fault is None:
            raise LabError(f"unknown fault {name!r}; `viworks-lab faults` lists them")
        if host is not None:
            if not fault.redeploy_gateway:
                raise LabError(f"fault {name} is not a gateway host's: --host does not apply")
            if gateway_by_id(host, self.gateway_count) is None:
                raise LabError(f"no gateway host {host} in the lab (it runs {', '.join(g.agent_id for g in self.gateways)})")
        if self.variant is not REFERENCE:
            raise LabError(f"faults are injected into the reference lab; this lab is the {self.variant.name} variant "
                           "(viworks-lab up --variant reference first)")
        if self.active_fault() is not None:
            self.heal()
        else:
            self.up()
        self.state.fault.write_text(json.dumps({"fault": name, "host": host}))
        self._converge(fault.knobs, ())
        if fault.action is not None:
            fault.action(self)
        self._wait_for(ensure_material(self.state, self.gateway_count, self.variant), fault.wait_for)
        self.log(f"fault {name} is in{' on ' + host if host else ''}: {fault.description}")

    def heal(self) -> dict[str, float]:
        """Back to the healthy lab, without rebuilding any image."""
        fault = self.active_fault()
        if fault is not None:
            for name in fault.recreate:
                container = topology.find(self.client, name)
                if container is not None:
                    container.remove(force=True)
            if fault.redeploy_gateway:
                gateway = topology.find(self.client, self.fault_gateway.container)
                if gateway is not None:
                    gateway.exec_run(["rm", "-f", GATEWAY_FILES_MARK])
            self.state.fault.unlink()
            self.log(f"healing {fault.name}")
        return self.up()

    def active_fault(self) -> Fault | None:
        if not self.state.fault.exists():
            return None
        return FAULTS[json.loads(self.state.fault.read_text())["fault"]]

    def _converge(self, knobs: Knobs, wait_for: tuple[str, ...]) -> dict[str, float]:
        timings: dict[str, float] = {}
        started = time.monotonic()
        material = ensure_material(self.state, self.gateway_count, self.variant)
        candidate = self.candidate
        backend_build = _candidate_build(candidate, "backend") or build_agent("backend")
        gateway_build = _candidate_build(candidate, "gateway") or build_agent("gateway")
        if candidate is None:
            write_manifest(self.state.release, BACKEND_VERSION, [backend_build, gateway_build])
        bases = images.ensure_bases(self.client, self.log)
        roles = self._role_images(bases, backend_build)
        timings["images_s"] = time.monotonic() - started

        self._render(material, knobs, candidate)
        topology.ensure_networks(self.client)
        changed = {}
        specs = self._specs(roles, knobs)
        for spec in specs:
            _, changed[spec.name] = topology.ensure_container(self.client, spec)
        self._remove_extra_gateways({spec.name for spec in specs})
        backend_known_host = self._deploy_backend_host() if self.variant.backend_over_ssh else ""
        if changed[BACKEND] and not changed[NGINX]:
            # nginx resolved the backend's address when it started; a new backend container has a new one.
            self.client.containers.get(NGINX).restart(timeout=5)
        self._deploy_gateways(material, gateway_build, backend_known_host, candidate)
        timings["containers_s"] = time.monotonic() - started - timings["images_s"]
        ready_started = time.monotonic()
        if candidate is not None:
            # The expected release follows the candidate: the gate's binary check passes for it and nothing else.
            write_manifest(self.state.release, None, [
                dataclasses.replace(backend_build, version=self._binary_version(roles["backend-agent"]) or candidate.version),
                dataclasses.replace(gateway_build, version=self._gateway_binary_version()),
            ])
            self._wait_candidate_started(candidate)
        else:
            self._wait_for(material, wait_for)
        timings["ready_s"] = time.monotonic() - ready_started
        timings["total_s"] = time.monotonic() - started
        return timings

    def _wait_for(self, material: Material, parts: tuple[str, ...]) -> None:
        if "backend" in parts:
            self._wait_backend(material)
        if "edge" in parts:
            self._wait_edge()
        if "gateway" in parts:
            for gateway in self.gateways:
                self._wait_gateway_online(material, gateway.agent_id)

    def _role_images(self, bases: dict[str, str], backend_build: Build) -> dict[str, str]:
        backend = images.RoleImage(
            "backend-agent",
            images.APP,
            "COPY viworks-backend-agent /app/viworks-backend-agent\n"
            "RUN mkdir -p /app/config\nWORKDIR /app\n"
            'CMD ["/app/viworks-backend-agent", "--config", "/app/config/backend-agent.toml"]\n',
            {"viworks-backend-agent": backend_build.data},
        )
        services = images.RoleImage(
            "services",
            images.SERVICES,
            "COPY entrypoint.sh /usr/local/bin/viworks-postgres-entrypoint\n",
            {"entrypoint.sh": (FIXTURES / "postgres" / "entrypoint.sh").read_bytes()},
        )
        gateway_host = images.RoleImage(
            "gateway-host",
            images.GATEWAY_HOST,
            "RUN useradd --create-home --shell /bin/bash ops"
            " && echo 'ops ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/ops && chmod 0440 /etc/sudoers.d/ops"
            " && printf 'PasswordAuthentication no\\nPermitRootLogin no\\n' > /etc/ssh/sshd_config.d/lab.conf"
            " && systemctl set-default multi-user.target"
            " && systemctl mask getty@tty1.service console-getty.service systemd-logind.service"
            # Installed for the stock-gateway-host variant, which starts them; the reference host runs none.
            " && systemctl disable systemd-resolved.service chrony.service fwknop-server.service\n"
            'CMD ["/sbin/init"]\n',
            {},
        )
        roles = (backend, services, gateway_host)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(roles)) as pool:  # a cold start builds all three
            tags = list(pool.map(lambda role: images.ensure_role(self.client, role, bases, self.log), roles))
        return {role.name: tag for role, tag in zip(roles, tags)}

    def _render(self, material: Material, knobs: Knobs, candidate: Candidate | None) -> None:
        rendered = self.state.rendered
        served = knobs.served_identity
        if served != "server":
            ensure_server_variant(self.state, served)
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
            "WS_PATH": self.variant.ws_path,
            "WS_LOCATION": self.variant.ws_location,
            **_edge_values(knobs),
            "LAB_FAULTS": "# The lab agent's fault switches (see viworks_lab/faults.py).\n[lab_faults]\n"
                          + "".join(f"{key} = {json.dumps(value)}\n" for key, value in knobs.backend_faults),
            "TLS_PROTOCOLS": "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3" if knobs.old_tls_protocols else "TLSv1.2 TLSv1.3",
            "TLS_CIPHERS": "DEFAULT:@SECLEVEL=0" if knobs.old_tls_protocols else "HIGH:!aNULL:!MD5",
        }
        nginx = FIXTURES / "nginx"
        files = {
            "nginx/nginx.conf": ((nginx / "nginx.conf").read_text(), 0o644),
            "nginx/conf.d/viworks-agent.conf": (render((nginx / self.variant.nginx_template).read_text(), values), 0o644),
            **{f"nginx/snippets/{snippet.name.removesuffix('.template')}": (render(snippet.read_text(), values), 0o644)
               for snippet in sorted((nginx / "snippets").glob("*.template"))},
            "nginx/tls/server.crt": (material.read(f"{served}.crt").decode(), 0o644),
            "nginx/tls/server.key": (material.read(f"{served}.key").decode(), 0o600),
            "nginx/tls/client-ca.crt": (material.read("ca.crt").decode(), 0o644),
            "backend/backend-agent.toml": (self._backend_config(material, values, candidate), 0o600),
            "backend/command-signing.key": (material.read_signing("command-signing.key").decode(), 0o600),
            "redis/redis.conf": (render((FIXTURES / "redis" / "redis.conf.template").read_text(), values), 0o600),
            "postgres/postgres-password": (material.postgres_password, 0o600),
        }
        # Postgres creates the database the deployed config names (none with the database-missing fault).
        files["postgres/database-name"] = (_database_to_create(files["backend/backend-agent.toml"][0]) if knobs.database_created else "", 0o644)
        for relative, (text, mode) in files.items():
            path = rendered / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
            path.chmod(mode)

    def _backend_config(self, material: Material, values: dict[str, str], candidate: Candidate | None) -> str:
        """The reference config, or the candidate's as given (its lab-owned values filled when asked)."""
        given = candidate.text("backend_config") if candidate is not None else None
        if given is None:
            return render((FIXTURES / "backend" / "backend-agent.toml.template").read_text(), values)
        if not candidate.lab_secrets:
            return given
        return fill_backend_config(given, BackendSecrets(material.postgres_password, material.redis_password, material.jwt_secret))

    def _specs(self, roles: dict[str, str], knobs: Knobs) -> list[topology.ContainerSpec]:
        rendered = self.state.rendered
        # Production publishes nothing of the backend agent: nginx reaches it over the Docker networks.
        agent_ports = {"8080/tcp": PORTS["api"], "8081/tcp": PORTS["ws"]} if knobs.agent_ports_published else {}
        return [
            topology.ContainerSpec(
                POSTGRES, roles["services"], {"viworks-internal": ()},
                command=("/usr/local/bin/viworks-postgres-entrypoint",),
                mounts={str(rendered / "postgres"): "/run/viworks:ro"},
            ),
            topology.ContainerSpec(
                REDIS, roles["services"], {"viworks-internal": ()},
                command=("redis-server", "/etc/viworks/redis.conf"),
                mounts={str(rendered / "redis"): "/etc/viworks:ro"},
            ),
            topology.ContainerSpec(
                BACKEND, roles["backend-agent"], {"viworks-internal": (), "viworks-public": ()},
                ports=agent_ports,
                mounts={str(rendered / "backend"): "/app/config:ro"},
            ),
            topology.ContainerSpec(
                # Also on viworks-internal: "whatever reaches the backend agent" in the contract's words.
                NGINX, roles["services"], {"viworks-public": (AGENT_DOMAIN,), "viworks-internal": ()},
                command=("nginx", "-g", "daemon off;"),
                ports={"80/tcp": PORTS["http"], "443/tcp": PORTS["https"]},
                mounts={
                    str(rendered / "nginx" / "nginx.conf"): "/etc/nginx/nginx.conf:ro",
                    str(rendered / "nginx" / "conf.d"): "/etc/nginx/conf.d:ro",
                    str(rendered / "nginx" / "snippets"): "/etc/nginx/snippets:ro",
                    str(rendered / "nginx" / "tls"): "/etc/nginx/tls:ro",
                },
            ),
            *(
                [topology.ContainerSpec(
                    # A VM of its own in production; here a systemd host with sshd and the lab's engine's socket.
                    BACKEND_HOST, roles["gateway-host"], {"viworks-public": ()},
                    ports={"22/tcp": PORTS["backend_ssh"]}, hostname="backend-lab", systemd=True,
                    mounts={"/var/run/docker.sock": "/var/run/docker.sock:rw"},
                )] if self.variant.backend_over_ssh else []
            ),
            *(
                topology.ContainerSpec(
                    gateway.container, roles["gateway-host"], {"viworks-public": ()},
                    ports={"22/tcp": gateway.ssh_port}, hostname=gateway.agent_id, systemd=True,
                )
                for gateway in self.gateways
            ),
        ]

    def _deploy_backend_host(self) -> str:
        """The backend host of the backend-over-ssh variant: the ops user may use the engine's socket
        (the docker group of production, by the socket's group id), and logs in with the lab's key.
        Returns its known_hosts line."""
        container = self.client.containers.get(BACKEND_HOST)
        self._wait(
            lambda: topology.exec_checked(container, ["systemctl", "is-system-running"], "systemd").strip(),
            lambda state: state in ("running", "degraded"),
            f"systemd in {BACKEND_HOST}",
        )
        topology.put_files(container, {"/home/ops/.ssh/authorized_keys": ((self.state.ssh / "id_ed25519.pub").read_bytes(), 0o600)})
        topology.exec_checked(container, ["sh", "-c", _DOCKER_GROUP_FOR_OPS], "give ops the engine's socket")
        key = topology.exec_checked(container, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], "read the ssh host key")
        algorithm, blob = key.split()[:2]
        return f"[{LOOPBACK}]:{PORTS['backend_ssh']} {algorithm} {blob}\n"

    def _remove_extra_gateways(self, wanted: set[str]) -> None:
        """Gateway hosts beyond the fleet's count (after ``up --gateways`` with fewer), and a backend
        host no variant asks for, are removed."""
        for container in topology.lab_containers(self.client):
            if (container.name.startswith("viworks-gw-lab-") or container.name == BACKEND_HOST) and container.name not in wanted:
                container.remove(force=True)
                self.log(f"removed {container.name} (the fleet is {self.gateway_count})")

    def _wait_backend(self, material: Material) -> None:
        def health() -> tuple[int, str]:
            response = httpx.get(f"{self._backend_api()}/health", timeout=2)
            return response.status_code, response.json().get("status", "?")

        self._wait(health, lambda seen: seen == (200, "healthy"), "backend agent /health on its Docker network")

    def _backend_api(self) -> str:
        """The backend agent's API as the lab itself reaches it: at its address on a Docker network
        (this machine routes to the lab's bridges), since nothing of it is published on the host."""
        networks = self.client.containers.get(BACKEND).attrs["NetworkSettings"]["Networks"]
        for name in ("viworks-public", *networks):
            address = (networks.get(name) or {}).get("IPAddress")
            if address:
                return f"http://{address}:{PORTS['api']}"
        raise LabError(f"{BACKEND} has no address on any Docker network")

    def _wait_edge(self) -> None:
        context = ssl.create_default_context(cafile=str(ensure_material(self.state, self.gateway_count, self.variant).path("ca.crt")))

        def health_via_nginx() -> int:
            # Reach the loopback port, but speak to it as the agent domain (SNI, certificate name, Host).
            with httpx.Client(verify=context, timeout=2) as http:
                response = http.get(
                    f"https://{LOOPBACK}:{PORTS['https']}/health",
                    headers={"Host": AGENT_DOMAIN},
                    extensions={"sni_hostname": AGENT_DOMAIN},
                )
            return response.status_code

        self._wait(health_via_nginx, lambda status: status == 200, f"nginx https://{AGENT_DOMAIN} on {LOOPBACK}:{PORTS['https']}")

    def _wait(self, probe, ready, what: str) -> float:
        try:
            return poll_until(probe, ready, what=what, timeout_s=self.ready_timeout_s).elapsed_s
        except NotReady as exc:
            raise LabError(f"lab not up: {exc}") from exc

    # ---- the gateway host -------------------------------------------------------------------
    def _deploy_gateways(self, material: Material, build: Build, other_known_hosts: str = "", candidate: Candidate | None = None) -> None:
        """Deploy to every gateway host at once (each waits for its own systemd); record their ssh host keys."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.gateways)) as pool:
            lines = list(pool.map(lambda gateway: self._deploy_gateway(material, build, gateway, candidate), self.gateways))
        known_hosts = self.state.ssh / "known_hosts"
        text = "".join(lines) + other_known_hosts
        if not known_hosts.exists() or known_hosts.read_text() != text:
            known_hosts.write_text(text)

    def _deploy_gateway(self, material: Material, build: Build, gateway: GatewayHost, candidate: Candidate | None = None) -> str:
        """Install the gateway agent the way a deploy would: binary, .env, certs, scripts, unit. Returns its known_hosts line."""
        container = self.client.containers.get(gateway.container)
        self._wait(
            lambda: topology.exec_checked(container, ["systemctl", "is-system-running"], "systemd").strip(),
            lambda state: state in ("running", "degraded"),
            f"systemd in {gateway.container}",
        )
        values = {"AGENT_DOMAIN": AGENT_DOMAIN, "AGENT_ID": gateway.agent_id, "SPKI_PINS": gateway_pins(material, self.variant),
                  "SITE": gateway.site, "WS_PATH": self.variant.ws_path}
        toml_text, env_text = self._gateway_config(material, gateway, values, candidate)
        toml = toml_text is not None
        files = {
            GATEWAY_BINARY: (build.data, 0o755),
            "/opt/viworks/agent/.env": (env_text.encode(), 0o600),
            **({"/opt/viworks/agent/agent.toml": (toml_text.encode(), 0o644)} if toml else {}),
            "/opt/viworks/agent/certs/client.crt": (material.read(f"{gateway.agent_id}.crt"), 0o644),
            "/opt/viworks/agent/certs/client.key": (material.read(f"{gateway.agent_id}.key"), 0o600),
            "/opt/viworks/agent/certs/ca.crt": (material.read("ca.crt"), 0o644),
            "/opt/viworks/agent/certs/backend-signing.pub": (material.read_signing("command-signing.pub"), 0o644),
            "/etc/systemd/system/viworks-gateway-agent.service": ((FIXTURES / "gateway" / "viworks-gateway-agent.service").read_bytes(), 0o644),
            "/home/ops/.ssh/authorized_keys": ((self.state.ssh / "id_ed25519.pub").read_bytes(), 0o600),
        }
        for script in sorted((FIXTURES / "gateway" / "scripts").glob("*.sh")):
            files[f"/opt/viworks/scripts/{script.name}"] = (script.read_bytes(), 0o755)
        stock = self.variant.stock_gateway_services
        if stock:
            files.update(_stock_service_files(material))
        digest = _files_digest(files)
        deployed = container.exec_run(["cat", GATEWAY_FILES_MARK]).output.decode(errors="replace").strip()
        if deployed != digest or not _unit_active(container):
            topology.put_files(container, {**files, GATEWAY_FILES_MARK: (digest.encode(), 0o644)})
            if not toml:  # back from the toml-gateway-config variant: the .env alone again
                topology.exec_checked(container, ["rm", "-f", "/opt/viworks/agent/agent.toml"], "remove agent.toml")
            topology.exec_checked(container, ["chown", "-R", "ops:ops", "/home/ops/.ssh"], "chown ~ops/.ssh")
            topology.exec_checked(container, ["chmod", "0700", "/home/ops/.ssh"], "chmod ~ops/.ssh")
            topology.exec_checked(container, ["systemctl", "daemon-reload"], "systemctl daemon-reload")
            topology.exec_checked(container, ["systemctl", "enable", "viworks-gateway-agent.service"], "enable the gateway unit")
            topology.exec_checked(container, ["systemctl", "restart", "viworks-gateway-agent.service"], "start the gateway unit")
            # The stock host's services run in the stock-gateway-host variant only.
            if stock:  # run through a link named vpnserver: the host sees a process of that name, as it would the real one
                topology.exec_checked(container, ["ln", "-sf", "/usr/bin/python3", "/usr/local/vpnserver/vpnserver"], "link vpnserver")
            if stock:
                topology.exec_checked(container, ["systemctl", "enable", "--now", *STOCK_SERVICES], "start the stock services")
            else:  # back from the stock-gateway-host variant, or never in it: none of them runs
                topology.exec_checked(container, ["sh", "-c", _STOP_STOCK_SERVICES], "stop the stock services")
            self.log(f"deployed the gateway agent to {gateway.container} ({build.size} bytes, sha256 {build.sha256[:12]})")
        key = topology.exec_checked(container, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], "read the ssh host key")
        algorithm, blob = key.split()[:2]
        return f"[{LOOPBACK}]:{gateway.ssh_port} {algorithm} {blob}\n"

    def _gateway_config(self, material: Material, gateway: GatewayHost, values: dict[str, str],
                        candidate: Candidate | None) -> tuple[str | None, str]:
        """(agent.toml or None, .env) for a gateway host: the variant's, or the candidate's as given
        (the lab's own values filled when asked). A candidate that brings one file gets the other from the reference."""
        toml = self.variant.gateway_config == "toml"
        templates = FIXTURES / "gateway" / ("toml" if toml else "")
        toml_text = render((templates / "agent.toml.template").read_text(), values) if toml else None
        env_text = render((templates / "agent.env.template").read_text(), values)
        if candidate is None:
            return toml_text, env_text
        owned = GatewayValues(AGENT_DOMAIN, gateway.agent_id, gateway.site, gateway_pins(material, self.variant))
        given_toml, given_env = candidate.text("gateway_config"), candidate.text("gateway_env")
        if given_toml is not None:
            toml_text = fill_gateway_toml(given_toml, owned) if candidate.lab_secrets else given_toml
        if given_env is not None:
            env_text = fill_gateway_env(given_env, owned) if candidate.lab_secrets else given_env
        return toml_text, env_text

    # ---- a candidate's start ------------------------------------------------------------------
    def _binary_version(self, image: str) -> str | None:
        """What the backend binary says its version is (``--version``), in a throwaway container with no network."""
        container = self.client.containers.run(image, [BACKEND_BINARY, "--version"], detach=True, network_disabled=True)
        try:
            outcome = container.wait(timeout=20)
            output = container.logs(stdout=True, stderr=False).decode(errors="replace")
        except Exception:  # noqa: BLE001 - a binary that hangs on --version has no version to give
            return None
        finally:
            container.remove(force=True)
        return _version_in(output) if outcome.get("StatusCode") == 0 else None

    def _gateway_binary_version(self) -> str | None:
        container = self.client.containers.get(self.gateways[0].container)
        done = container.exec_run(["timeout", "20", GATEWAY_BINARY, "--version"], demux=True)
        return _version_in((done.output[0] or b"").decode(errors="replace")) if done.exit_code == 0 else None

    def _wait_candidate_started(self, candidate: Candidate) -> None:
        """Each agent the candidate replaced is up: the backend answers /health (any status), a gateway's
        unit runs its program for a few seconds. Ends at once on proof it did not start: the container
        exited or restarted, the unit failed or restarted. Its last log lines say why."""
        problems = []
        if {"backend_binary", "backend_config"} & candidate.files.keys():
            problems += self._backend_started()
        if {"gateway_binary", "gateway_config", "gateway_env"} & candidate.files.keys():
            problems += [problem for gateway in self.gateways for problem in self._gateway_started(gateway)]
        if problems:
            raise CandidateDidNotStart("the candidate did not start:\n" + "\n".join(problems))
        self.log("the candidate's agents started: run the gate (pytest -m smoke) to judge them")

    def _backend_started(self) -> list[str]:
        def observe() -> tuple[str, int]:
            container = self.client.containers.get(BACKEND)
            state, restarts = container.attrs["State"]["Status"], container.attrs["RestartCount"]
            if state == "running" and restarts == 0:
                try:
                    return f"answered HTTP {httpx.get(f'{self._backend_api()}/health', timeout=2).status_code}", restarts
                except (httpx.HTTPError, LabError):
                    return "running", restarts
            return state, restarts

        try:
            seen, _ = poll_until(observe, lambda seen: seen[0].startswith("answered") or seen[0] != "running" or seen[1] > 0,
                                 what="the candidate backend agent", timeout_s=self.ready_timeout_s).value
        except NotReady as exc:
            seen = f"never answered /health ({exc.last})"
        if seen.startswith("answered"):
            return []
        logs = self.client.containers.get(BACKEND).logs(tail=12).decode(errors="replace").rstrip()
        return [f"{BACKEND}: {seen}; its last log lines:\n" + _indent(logs)]

    def _gateway_started(self, gateway: GatewayHost) -> list[str]:
        container = self.client.containers.get(gateway.container)
        show = ["systemctl", "show", GATEWAY_UNIT, "-p", "ActiveState", "-p", "SubState", "-p", "NRestarts", "-p", "MainPID"]

        def observe() -> dict[str, str]:
            properties = dict(line.split("=", 1) for line in topology.exec_checked(container, show, "systemctl show").splitlines() if "=" in line)
            pid = properties.get("MainPID", "0")
            running_s = container.exec_run(["ps", "-o", "etimes=", "-p", pid]).output.decode().strip() if pid != "0" else ""
            properties["running_s"] = running_s if running_s.isdigit() else "0"
            return properties

        def settled(seen: dict[str, str]) -> bool:
            failed = seen.get("NRestarts", "0") != "0" or seen.get("ActiveState") not in ("active", "activating")
            return failed or int(seen["running_s"]) >= SETTLED_S

        try:
            seen = poll_until(observe, settled, what=f"the candidate gateway agent on {gateway.container}", timeout_s=self.ready_timeout_s).value
        except NotReady as exc:
            seen = exc.last or {}
        if seen.get("ActiveState") == "active" and seen.get("NRestarts", "0") == "0" and int(seen.get("running_s", "0")) >= SETTLED_S:
            return []
        journal = container.exec_run(["journalctl", "-u", GATEWAY_UNIT, "-n", "12", "--no-pager", "-o", "cat"]).output.decode(errors="replace").rstrip()
        state = f"ActiveState={seen.get('ActiveState')} SubState={seen.get('SubState')} NRestarts={seen.get('NRestarts')}"
        return [f"{gateway.container}: {GATEWAY_UNIT} {state}; its last log lines:\n" + _indent(journal)]

    def _wait_gateway_online(self, material: Material, agent_id: str) -> None:
        token = mint_token(material.jwt_secret, subject="viworks-lab", role="viewer", ttl_s=self.ready_timeout_s + 60)

        def registry_status() -> str:
            response = httpx.get(
                f"{self._backend_api()}/api/v1/agents/{agent_id}",
                headers={"Authorization": f"Bearer {token}"}, timeout=2,
            )
            if response.status_code == 404:
                return "not registered"
            return response.json().get("status", f"HTTP {response.status_code}")

        self._wait(registry_status, lambda status: status == "Online", f"gateway agent {agent_id} Online in the registry")

    # ---- down and status --------------------------------------------------------------------
    def down(self) -> list[str]:
        return topology.remove_all(self.client)

    def status(self) -> list[dict[str, str]]:
        rows = []
        for container in sorted(topology.lab_containers(self.client), key=lambda c: c.name):
            attrs = container.attrs
            networks = sorted(attrs["NetworkSettings"]["Networks"])
            ports = sorted(
                f"{binding[0]['HostIp']}:{binding[0]['HostPort']}->{port}"
                for port, binding in (attrs["NetworkSettings"]["Ports"] or {}).items() if binding
            )
            rows.append({
                "container": container.name,
                "state": attrs["State"]["Status"],
                "restarts": str(attrs["RestartCount"]),
                "networks": ",".join(networks),
                "ports": " ".join(ports),
            })
        return rows


def _candidate_build(candidate: Candidate | None, agent: str) -> Build | None:
    data = candidate.data(f"{agent}_binary") if candidate is not None else None
    return Build(agent, data) if data is not None else None


def _database_to_create(config_text: str) -> str:
    """The database Postgres must have for the backend's config (as a deploy would create it)."""
    name = database_name(config_text) or ""
    if name and not re.fullmatch(r"[A-Za-z0-9_-]{1,63}", name):
        raise LabError(f"the backend config's [database] url names {name!r}: the lab creates databases named [A-Za-z0-9_-] only")
    return name


def _version_in(output: str) -> str | None:
    found = _VERSION.search(output)
    return found.group(0) if found else None


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in (text or "(nothing logged)").splitlines())


def _files_digest(files: dict[str, tuple[bytes, int]]) -> str:
    sha = hashlib.sha256()
    for path, (data, mode) in sorted(files.items()):
        sha.update(f"{path}:{mode:o}:".encode())
        sha.update(data)
    return sha.hexdigest()


def _unit_active(container) -> bool:
    return container.exec_run(["systemctl", "is-active", "viworks-gateway-agent.service"]).exit_code == 0
