"""The lab's generated material: CA and certificates, keys, secrets, and the files the suite reads.

Generated once into the state directory and reused, so ``up`` twice changes nothing. Secrets
stay in that (git-ignored) directory with mode 0600.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from viworks_verify import certs
from viworks_verify.pins import spki_pin
from viworks_lab.layout import AGENT_DOMAIN, GATEWAY_ID, LOOPBACK, REPO_ROOT, SUITE_AGENT_ID, GatewayHost, StateDir, fleet
from viworks_lab.variants import REFERENCE, Variant


@dataclasses.dataclass(frozen=True)
class Material:
    state: StateDir
    postgres_password: str
    redis_password: str
    jwt_secret: str

    def path(self, name: str) -> Path:
        return self.state.pki / name

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    @property
    def rotated_jwt_secret(self) -> str:
        """A JWT secret nobody holds (the api-auth-broken fault): derived, so it stays stable."""
        return hashlib.sha256(("rotated:" + self.jwt_secret).encode()).hexdigest()

    @property
    def server_pin(self) -> str:
        return spki_pin(self.read("server.crt"))


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    path.chmod(mode)


def _identity_files(state: StateDir, stem: str, identity: certs.Identity) -> None:
    _write(state.pki / f"{stem}.crt", identity.cert_pem())
    _write(state.pki / f"{stem}.key", identity.key_pem(), 0o600)


def ensure_material(state: StateDir, gateways: int = 1, variant: Variant = REFERENCE) -> Material:
    """Create what is missing; never regenerate what exists (keys and pins stay stable)."""
    state.root.mkdir(parents=True, exist_ok=True)
    state.root.chmod(0o700)
    if not (state.pki / "ca.crt").exists():
        ca = certs.new_ca("ViWorkS Lab Internal CA")
        _identity_files(state, "ca", ca)
        _identity_files(state, "server", certs.issue(ca, AGENT_DOMAIN, server=True))
        _identity_files(state, GATEWAY_ID, certs.issue(ca, GATEWAY_ID, server=False))
        _identity_files(state, SUITE_AGENT_ID, certs.issue(ca, SUITE_AGENT_ID, server=False))
        signing = Ed25519PrivateKey.generate()
        _write(
            state.pki / "command-signing.key",
            signing.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            0o600,
        )
        _write(
            state.pki / "command-signing.pub",
            signing.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
    if not (state.ssh / "id_ed25519").exists():
        key = Ed25519PrivateKey.generate()
        _write(
            state.ssh / "id_ed25519",
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()),
            0o600,
        )
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        _write(state.ssh / "id_ed25519.pub", public + b" viworks-lab\n")
    if not state.lab_secrets.exists():
        _write(
            state.lab_secrets,
            json.dumps(
                {
                    "postgres_password": secrets.token_urlsafe(24),
                    "redis_password": secrets.token_urlsafe(24),
                    "jwt_secret": secrets.token_urlsafe(48),
                }
            ),
            0o600,
        )
    hosts = fleet(gateways)
    for gateway in hosts:  # each gateway host its own client identity (CN = its agent id)
        if not (state.pki / f"{gateway.agent_id}.crt").exists():
            ca = certs.Identity(certs.load_pem_certificates((state.pki / "ca.crt").read_bytes())[0],
                                certs.load_private_key((state.pki / "ca.key").read_bytes()))
            _identity_files(state, gateway.agent_id, certs.issue(ca, gateway.agent_id, server=False))
    values = json.loads(state.lab_secrets.read_text())
    material = Material(state, values["postgres_password"], values["redis_password"], values["jwt_secret"])
    _write_suite_files(material, hosts, variant)
    return material


def ensure_server_variant(state: StateDir, stem: str) -> None:
    """A server certificate for the agent domain that a fault makes nginx serve instead of the real one.

    ``server-rekeyed``: same name and CA, another key (the pins no longer match);
    ``server-expired``: same key (pins still match), validity ended 30 days ago.
    """
    if (state.pki / f"{stem}.crt").exists():
        return
    ca = certs.Identity(
        certs.load_pem_certificates((state.pki / "ca.crt").read_bytes())[0], certs.load_private_key((state.pki / "ca.key").read_bytes())
    )
    if stem == "server-rekeyed":
        identity = certs.issue(ca, AGENT_DOMAIN, server=True)
    elif stem == "server-expired":
        key = certs.load_private_key((state.pki / "server.key").read_bytes())
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=120)
        identity = certs.issue(ca, AGENT_DOMAIN, server=True, key=key, not_before=start, days=90)
    else:
        raise ValueError(f"no server certificate variant {stem!r}")
    _identity_files(state, stem, identity)


def _backup_pin(material: Material) -> str:
    """The pin of a key the edge does not serve (a standby key, as operators keep for rotation)."""
    ensure_server_variant(material.state, "server-rekeyed")
    return spki_pin(material.read("server-rekeyed.crt"))


def gateway_pins(material: Material, variant: Variant) -> str:
    """``VIW_AGENT_BACKEND_SPKI_PIN`` as the variant writes it."""
    if variant.pins == "forms":
        return f"sha256/{material.server_pin},{_backup_pin(material)}"
    return f"sha256/{material.server_pin}"


def target_pins(material: Material, variant: Variant) -> str:
    """The target's ``edge.spki_pins`` as the variant writes it (the other form from the gateway's)."""
    if variant.pins == "forms":
        return f"{material.server_pin}, sha256/{_backup_pin(material)}"
    return f"sha256/{material.server_pin}"


def _write_suite_files(material: Material, gateways: list[GatewayHost], variant: Variant) -> None:
    """What the suite reads to target the lab: its secrets, the inventory, the gateway hosts' ssh config."""
    state = material.state
    _write(
        state.secrets_env,
        "# Secrets of the lab target (read by targets/lab.toml; environment variables take precedence).\n"
        f"VIWORKS_JWT_SECRET={material.jwt_secret}\n"
        f"VIWORKS_AGENT_KEY_FILE={state.pki / (SUITE_AGENT_ID + '.key')}\n"
        f"VIWORKS_SNAPSHOT_KEY={_snapshot_key(material)}\n",
        0o600,
    )
    # One gateway: the repository's hosts.ini. A fleet: an inventory of its own, beside this file.
    if len(gateways) == 1:
        inventory = str(REPO_ROOT / "hosts.ini")
    else:
        _write(
            state.fleet_inventory,
            f"# Written by `viworks-lab up --gateways {len(gateways)}`: the lab's fleet.\n\n"
            "[backend]\nbackend-lab ansible_connection=local\n\n[gateway]\n"
            + "".join(f"{gateway.agent_id} ansible_become=true\n" for gateway in gateways),
        )
        inventory = str(state.fleet_inventory)
    _write(
        state.root / "generated.toml",
        "# Written by `viworks-lab up` for targets/lab.toml: values that exist only once the lab made them.\n"
        f'inventory = "{inventory}"\n\n'
        "[edge]\n"
        f'spki_pins = "{target_pins(material, variant)}"\n'
        f'ws_path = "{variant.ws_path}"\n\n'
        "[gateway]\n"
        f"agent_ids = [{', '.join(repr(gateway.agent_id).replace(chr(39), chr(34)) for gateway in gateways)}]\n",
    )
    _write(
        state.ssh_config,
        "".join(
            f"Host {gateway.agent_id}\n"
            f"    HostName {LOOPBACK}\n"
            f"    Port {gateway.ssh_port}\n"
            "    User ops\n"
            f"    IdentityFile {state.ssh / 'id_ed25519'}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {state.ssh / 'known_hosts'}\n"
            "    StrictHostKeyChecking yes\n"
            "    ConnectTimeout 5\n"
            "    ServerAliveInterval 10\n\n"
            for gateway in gateways
        ),
    )


def _snapshot_key(material: Material) -> str:
    """The lab's key for hashing secret values in snapshots: stable, so two snapshots of the lab compare."""
    return hashlib.sha256(("snapshot:" + material.jwt_secret).encode()).hexdigest()
