"""Variants: healthy deployments written differently from the reference lab, each of which the gate
must pass with zero failures (a false alarm on a correct deployment gets a gate switched off).

``viworks-lab variants`` lists them; ``viworks-lab up --variant NAME`` builds one (and it stays the
lab's variant until another ``up --variant``). A variant changes what the lab renders and deploys,
and the lab's target follows it (``.lab/generated.toml``): nothing in the suite knows variants exist.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    description: str
    # The nginx server block template (fixtures/lab/nginx/) and the snippets it includes (snippets/).
    nginx_template: str = "viworks-agent.conf.template"
    # The gateway's and the target's pins: "prefixed" (sha256/<primary>) or "forms" (prefixed and
    # bare, a primary and a backup, written differently on each side).
    pins: str = "prefixed"
    # The agent path, everywhere: the backend serves it, nginx routes its location, the gateway and the target name it.
    ws_path: str = "/ws/agent"
    ws_location: str = "/ws/"
    # The TLS PKI: "single" (one internal CA issues everything) or "intermediate" (root -> issuing
    # intermediate -> leaves; the edge serves the chain, certificate files carry it, bundles hold it).
    pki: str = "single"
    # The gateway host's other services as a real one runs them (resolver, VPN server, fwknopd, chrony),
    # and the listeners the target declares for them.
    stock_gateway_services: bool = False
    # How the gateway agent is configured: "env" (the .env alone, the reference form) or "toml"
    # (agent.toml in its WorkingDirectory, the .env overriding [outbound]).
    gateway_config: str = "env"
    # The backend host reached as production reaches it: over SSH (a host with sshd whose Docker
    # engine is the lab's), rather than as the local engine.
    backend_over_ssh: bool = False

    @property
    def gateway_listeners(self) -> tuple[str, ...]:
        """The listeners the target declares for its gateway hosts (gateway.allowed_listeners)."""
        if not self.stock_gateway_services:
            return ("sshd:22/tcp",)
        return (
            "sshd:22/tcp",
            "systemd-resolve:53",
            "systemd-resolve:5355",
            "chronyd:323/udp",
            "fwknopd:62201/udp",
            "vpnserver:443/tcp",
            "vpnserver:992/tcp",
            "vpnserver:5555/tcp",
            "vpnserver:1194/udp",
        )


REFERENCE = Variant("reference", "the lab as the contract draws it (the default)")
VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        REFERENCE,
        Variant(
            "nginx-idioms",
            "nginx written another way: upstream blocks, the map $http_upgrade $connection_upgrade idiom, "
            "location ^~ /ws/, the proxy headers from an included snippet",
            nginx_template="viworks-agent-idioms.conf.template",
        ),
        Variant(
            "pin-forms",
            "pins written in both forms: the gateway pins sha256/<primary>,<backup>, the target <primary>, "
            "sha256/<backup>; the backup is a key the edge does not serve",
            pins="forms",
        ),
        Variant(
            "other-ws-path",
            "the agent path is /agent/ws everywhere (backend, nginx location /agent/, the gateway's URL, "
            "the target's edge.ws_path)",
            ws_path="/agent/ws",
            ws_location="/agent/",
        ),
        Variant(
            "intermediate-ca",
            "root -> issuing intermediate -> leaf for the edge (full chain served) and for client "
            "certificates (their files carry the intermediate); "
            "the gateway's trust bundle and nginx's client CA hold the chain",
            pki="intermediate",
        ),
        Variant(
            "stock-gateway-host",
            "the gateway host runs what a real one does: systemd-resolved on 127.0.0.53:53, a VPN "
            "server on TCP 443/992/5555 and UDP 1194, fwknopd, chrony; the target declares them",
            stock_gateway_services=True,
        ),
        Variant(
            "toml-gateway-config",
            "the gateway agent reads agent.toml (every section; a placeholder pin in [outbound]) and "
            "a short .env overriding the URL, the id and the pin; the paths, site and features come from agent.toml",
            gateway_config="toml",
        ),
        Variant(
            "backend-over-ssh",
            "the backend host is reached over SSH as production reaches it (ansible_host, ansible_user, "
            "become), its Docker engine through its socket forwarded over that connection",
            backend_over_ssh=True,
        ),
    )
}
