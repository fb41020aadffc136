"""Bring the lab replica up, report on it, take it down.

``Lab`` converges the containers to a fault's, a variant's or a candidate's state: it renders the
configuration (``configs``), builds and runs the images (``images``, ``topology``), deploys each
gateway host as a deploy would, and waits until each part is ready (``readiness``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable

import docker

from viworks_lab import images, topology
from viworks_lab.candidate import Candidate, forget_candidate, load_candidate, take_candidate
from viworks_lab.configs import gateway_config, render_backend_host, stock_service_files
from viworks_lab.engine import LabError, docker_client
from viworks_lab.faults import FAULTS, Fault, Knobs
from viworks_lab.layout import (
    AGENT_DOMAIN,
    BACKEND,
    BACKEND_HOST,
    BACKEND_VERSION,
    FIXTURES,
    GATEWAY_BINARY,
    GATEWAY_UNIT,
    LOOPBACK,
    MAX_GATEWAYS,
    NGINX,
    PORTS,
    POSTGRES,
    REDIS,
    GatewayHost,
    StateDir,
    default_state,
    fleet,
    gateway_by_id,
)
from viworks_lab.material import Material, ensure_material, gateway_pins
from viworks_lab.readiness import CandidateDidNotStart, LabReadiness
from viworks_lab.release import Build, build_agent, write_manifest
from viworks_lab.variants import REFERENCE, VARIANTS, Variant

__all__ = ["CandidateDidNotStart", "Lab"]

GATEWAY_FILES_MARK = "/var/lib/viworks-lab/deployed.sha256"
GATEWAY_SCRIPTS = "/opt/viworks/scripts"
# Units of this name in directories that outrank /etc/systemd/system (a mask left by a fault).
GATEWAY_UNIT_OVERRIDES = f"/etc/systemd/system.control/{GATEWAY_UNIT} /run/systemd/system.control/{GATEWAY_UNIT}"
ALL_READY = ("backend", "edge", "gateway")
Log = Callable[[str], None]


_DOCKER_GROUP_FOR_OPS = (
    "gid=$(stat -c %g /var/run/docker.sock)"
    ' && { getent group "$gid" >/dev/null || groupadd -g "$gid" docker-engine; }'
    ' && usermod -aG "$(getent group "$gid" | cut -d: -f1)" ops'
    " && chown -R ops:ops /home/ops/.ssh && chmod 0700 /home/ops/.ssh"
)
STOCK_SERVICES = ("systemd-resolved.service", "chrony.service", "fwknop-server.service", "vpnserver.service")
_STOP_STOCK_SERVICES = (
    "systemctl disable --now systemd-resolved.service chrony.service fwknop-server.service"
    " && if [ -e /etc/systemd/system/vpnserver.service ]; then systemctl disable --now vpnserver.service; fi"
)


@dataclasses.dataclass
class Lab(LabReadiness):
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
    def rehearse(
        self,
        release_dir,
        files: dict,
        lab_secrets: bool,
        version: str | None = None,
        gateways: int | None = None,
        variant: str | None = None,
    ) -> dict[str, float]:
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
                raise LabError(
                    f"no gateway host {host} in the lab (it runs {', '.join(g.agent_id for g in self.gateways)})"
                )
        if self.variant is not REFERENCE:
            raise LabError(
                f"faults are injected into the reference lab; this lab is the {self.variant.name} variant "
                "(viworks-lab up --variant reference first)"
            )
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

        render_backend_host(self.state, self.variant, material, knobs, candidate)
        topology.ensure_networks(self.client)
        changed = {}
        specs = self._specs(roles, knobs)
        for spec in specs:
            _, changed[spec.name] = topology.ensure_container(self.client, spec)
        self._remove_extra_gateways({spec.name for spec in specs})
        backend_known_host = self._deploy_backend_host() if self.variant.backend_over_ssh else ""
        if changed[BACKEND] and not changed[NGINX]:
            self._reload_nginx()
        self._deploy_gateways(material, gateway_build, backend_known_host, candidate)
        timings["containers_s"] = time.monotonic() - started - timings["images_s"]
        ready_started = time.monotonic()
        if candidate is not None:
            # The expected release follows the candidate: the gate's binary check passes for it and nothing else.
            write_manifest(
                self.state.release,
                None,
                [
                    dataclasses.replace(
                        backend_build, version=self._binary_version(roles["backend-agent"]) or candidate.version
                    ),
                    dataclasses.replace(gateway_build, version=self._gateway_binary_version()),
                ],
            )
            self._wait_candidate_started(candidate)
        else:
            self._wait_for(material, wait_for)
        timings["ready_s"] = time.monotonic() - ready_started
        timings["total_s"] = time.monotonic() - started
        return timings

    def _reload_nginx(self) -> None:
        """nginx resolved the backend's address when it started; a new backend container has a new one.

        A reload resolves it again. Unlike a restart, it leaves nginx serving when the new backend has
        no address (a candidate that exits at start: "host not found in upstream"), on its old
        configuration, as a deploy's reload would; a restart would take the edge down with it.
        """
        nginx = self.client.containers.get(NGINX)
        if nginx.status != "running":
            nginx.restart(timeout=5)
            return
        reloaded = nginx.exec_run(["nginx", "-s", "reload"])
        if reloaded.exit_code != 0:
            self.log(f"nginx kept its configuration: {reloaded.output.decode(errors='replace').strip()[-200:]}")

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

    def _specs(self, roles: dict[str, str], knobs: Knobs) -> list[topology.ContainerSpec]:
        rendered = self.state.rendered
        # Production publishes nothing of the backend agent: nginx reaches it over the Docker networks.
        agent_ports = {"8080/tcp": PORTS["api"], "8081/tcp": PORTS["ws"]} if knobs.agent_ports_published else {}
        return [
            topology.ContainerSpec(
                POSTGRES,
                roles["services"],
                {"viworks-internal": ()},
                command=("/usr/local/bin/viworks-postgres-entrypoint",),
                mounts={str(rendered / "postgres"): "/run/viworks:ro"},
            ),
            topology.ContainerSpec(
                REDIS,
                roles["services"],
                {"viworks-internal": ()},
                command=("redis-server", "/etc/viworks/redis.conf"),
                mounts={str(rendered / "redis"): "/etc/viworks:ro"},
            ),
            topology.ContainerSpec(
                BACKEND,
                roles["backend-agent"],
                {"viworks-internal": (), "viworks-public": ()},
                ports=agent_ports,
                mounts={str(rendered / "backend"): "/app/config:ro"},
            ),
            topology.ContainerSpec(
                # Also on viworks-internal: "whatever reaches the backend agent" in the contract's words.
                NGINX,
                roles["services"],
                {"viworks-public": (AGENT_DOMAIN,), "viworks-internal": ()},
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
                [
                    topology.ContainerSpec(
                        # A VM of its own in production; here a systemd host with sshd and the lab's engine's socket.
                        BACKEND_HOST,
                        roles["gateway-host"],
                        {"viworks-public": ()},
                        ports={"22/tcp": PORTS["backend_ssh"]},
                        hostname="backend-lab",
                        systemd=True,
                        mounts={"/var/run/docker.sock": "/var/run/docker.sock:rw"},
                    )
                ]
                if self.variant.backend_over_ssh
                else []
            ),
            *(
                topology.ContainerSpec(
                    gateway.container,
                    roles["gateway-host"],
                    {"viworks-public": ()},
                    ports={"22/tcp": gateway.ssh_port},
                    hostname=gateway.agent_id,
                    systemd=True,
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
        topology.put_files(
            container, {"/home/ops/.ssh/authorized_keys": ((self.state.ssh / "id_ed25519.pub").read_bytes(), 0o600)}
        )
        topology.exec_checked(container, ["sh", "-c", _DOCKER_GROUP_FOR_OPS], "give ops the engine's socket")
        key = topology.exec_checked(container, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], "read the ssh host key")
        algorithm, blob = key.split()[:2]
        return f"[{LOOPBACK}]:{PORTS['backend_ssh']} {algorithm} {blob}\n"

    def _remove_extra_gateways(self, wanted: set[str]) -> None:
        """Gateway hosts beyond the fleet's count (after ``up --gateways`` with fewer), and a backend
        host no variant asks for, are removed."""
        for container in topology.lab_containers(self.client):
            if (
                container.name.startswith("viworks-gw-lab-") or container.name == BACKEND_HOST
            ) and container.name not in wanted:
                container.remove(force=True)
                self.log(f"removed {container.name} (the fleet is {self.gateway_count})")

    # ---- the gateway host -------------------------------------------------------------------
    def _deploy_gateways(
        self, material: Material, build: Build, other_known_hosts: str = "", candidate: Candidate | None = None
    ) -> None:
        """Deploy to every gateway host at once (each waits for its own systemd); record their ssh host keys."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.gateways)) as pool:
            lines = list(
                pool.map(lambda gateway: self._deploy_gateway(material, build, gateway, candidate), self.gateways)
            )
        known_hosts = self.state.ssh / "known_hosts"
        text = "".join(lines) + other_known_hosts
        if not known_hosts.exists() or known_hosts.read_text() != text:
            known_hosts.write_text(text)

    def _deploy_gateway(
        self, material: Material, build: Build, gateway: GatewayHost, candidate: Candidate | None = None
    ) -> str:
        """Install the gateway agent the way a deploy would: binary, .env, certs, scripts, unit.
        Returns its known_hosts line."""
        container = self.client.containers.get(gateway.container)
        self._wait(
            lambda: topology.exec_checked(container, ["systemctl", "is-system-running"], "systemd").strip(),
            lambda state: state in ("running", "degraded"),
            f"systemd in {gateway.container}",
        )
        values = {
            "AGENT_DOMAIN": AGENT_DOMAIN,
            "AGENT_ID": gateway.agent_id,
            "SPKI_PINS": gateway_pins(material, self.variant),
            "SITE": gateway.site,
            "WS_PATH": self.variant.ws_path,
        }
        toml_text, env_text = gateway_config(self.variant, material, gateway, values, candidate)
        toml = toml_text is not None
        files = {
            GATEWAY_BINARY: (build.data, 0o755),
            "/opt/viworks/agent/.env": (env_text.encode(), 0o600),
            **({"/opt/viworks/agent/agent.toml": (toml_text.encode(), 0o644)} if toml else {}),
            "/opt/viworks/agent/certs/client.crt": (material.read(f"{gateway.agent_id}.crt"), 0o644),
            "/opt/viworks/agent/certs/client.key": (material.read(f"{gateway.agent_id}.key"), 0o600),
            "/opt/viworks/agent/certs/ca.crt": (material.read("ca.crt"), 0o644),
            "/opt/viworks/agent/certs/backend-signing.pub": (material.read_signing("command-signing.pub"), 0o644),
            f"/etc/systemd/system/{GATEWAY_UNIT}": ((FIXTURES / "gateway" / GATEWAY_UNIT).read_bytes(), 0o644),
            "/home/ops/.ssh/authorized_keys": ((self.state.ssh / "id_ed25519.pub").read_bytes(), 0o600),
        }
        for script in sorted((FIXTURES / "gateway" / "scripts").glob("*.sh")):
            files[f"{GATEWAY_SCRIPTS}/{script.name}"] = (script.read_bytes(), 0o755)
        stock = self.variant.stock_gateway_services
        if stock:
            files.update(stock_service_files(material))
        digest = _files_digest(files)
        deployed = container.exec_run(["cat", GATEWAY_FILES_MARK]).output.decode(errors="replace").strip()
        if deployed != digest or not _unit_active(container):
            # A deploy owns the scripts root and the unit: what a release did not put there goes.
            topology.exec_checked(
                container, ["sh", "-c", f"rm -rf {GATEWAY_SCRIPTS} {GATEWAY_UNIT_OVERRIDES}"], "clear the scripts root"
            )
            topology.put_files(container, {**files, GATEWAY_FILES_MARK: (digest.encode(), 0o644)})
            if not toml:  # back from the toml-gateway-config variant: the .env alone again
                topology.exec_checked(container, ["rm", "-f", "/opt/viworks/agent/agent.toml"], "remove agent.toml")
            topology.exec_checked(container, ["chown", "-R", "ops:ops", "/home/ops/.ssh"], "chown ~ops/.ssh")
            topology.exec_checked(container, ["chmod", "0700", "/home/ops/.ssh"], "chmod ~ops/.ssh")
            topology.exec_checked(container, ["systemctl", "daemon-reload"], "systemctl daemon-reload")
            topology.exec_checked(container, ["systemctl", "enable", GATEWAY_UNIT], "enable the gateway unit")
            topology.exec_checked(container, ["systemctl", "restart", GATEWAY_UNIT], "start the gateway unit")
            # The stock host's services run in the stock-gateway-host variant only.
            if (
                stock
            ):  # run through a link named vpnserver: the host sees a process of that name, as it would the real one
                topology.exec_checked(
                    container, ["ln", "-sf", "/usr/bin/python3", "/usr/local/vpnserver/vpnserver"], "link vpnserver"
                )
            if stock:
                topology.exec_checked(
                    container, ["systemctl", "enable", "--now", *STOCK_SERVICES], "start the stock services"
                )
            else:  # back from the stock-gateway-host variant, or never in it: none of them runs
                topology.exec_checked(container, ["sh", "-c", _STOP_STOCK_SERVICES], "stop the stock services")
            self.log(
                f"deployed the gateway agent to {gateway.container} ({build.size} bytes, sha256 {build.sha256[:12]})"
            )
        key = topology.exec_checked(container, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"], "read the ssh host key")
        algorithm, blob = key.split()[:2]
        return f"[{LOOPBACK}]:{gateway.ssh_port} {algorithm} {blob}\n"

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
                for port, binding in (attrs["NetworkSettings"]["Ports"] or {}).items()
                if binding
            )
            rows.append(
                {
                    "container": container.name,
                    "state": attrs["State"]["Status"],
                    "restarts": str(attrs["RestartCount"]),
                    "networks": ",".join(networks),
                    "ports": " ".join(ports),
                }
            )
        return rows


def _candidate_build(candidate: Candidate | None, agent: str) -> Build | None:
    data = candidate.data(f"{agent}_binary") if candidate is not None else None
    return Build(agent, data) if data is not None else None


def _files_digest(files: dict[str, tuple[bytes, int]]) -> str:
    sha = hashlib.sha256()
    for path, (data, mode) in sorted(files.items()):
        sha.update(f"{path}:{mode:o}:".encode())
        sha.update(data)
    return sha.hexdigest()


def _unit_active(container) -> bool:
    return container.exec_run(["systemctl", "is-active", GATEWAY_UNIT]).exit_code == 0
