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
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID

from viworks_lab.layout import (
    AGENT_DOMAIN,
    GATEWAY_ID,
    LOOPBACK,
    PORTS,
    REPO_ROOT,
    SUITE_AGENT_ID,
    GatewayHost,
    StateDir,
    fleet,
)
from viworks_lab.variants import REFERENCE, Variant
from viworks_verify.pki import certs
from viworks_verify.pki.pins import spki_pin


@dataclasses.dataclass(frozen=True)
class Material:
    state: StateDir
    postgres_password: str
    redis_password: str
    jwt_secret: str
    pki: Path  # the TLS identities in use: the reference PKI, or the intermediate-ca variant's

    def path(self, name: str) -> Path:
        return self.pki / name

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def read_signing(self, name: str) -> bytes:
        """The backend's command-signing key pair: one for every variant (it is not part of the TLS PKI)."""
        return (self.state.pki / name).read_bytes()

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


def _identity_files(pki: Path, stem: str, identity: certs.Identity, chain: bytes = b"") -> None:
    """``stem``.crt (the certificate, then ``chain``: the intermediates it is sent with) and ``stem``.key."""
    _write(pki / f"{stem}.crt", identity.cert_pem() + chain)
    _write(pki / f"{stem}.key", identity.key_pem(), 0o600)


def _issuer(pki: Path) -> tuple[certs.Identity, bytes]:
    """The CA that issues this PKI's leaves, and the chain a leaf is sent with (its intermediates)."""
    if (pki / "issuing.crt").exists():  # root -> issuing intermediate -> leaves
        issuing = pki / "issuing.crt"
        return certs.Identity(
            certs.load_pem_certificates(issuing.read_bytes())[0],
            certs.load_private_key((pki / "issuing.key").read_bytes()),
        ), issuing.read_bytes()
    return certs.Identity(
        certs.load_pem_certificates((pki / "ca.crt").read_bytes())[0],
        certs.load_private_key((pki / "ca.key").read_bytes()),
    ), b""


def _ensure_pki(pki: Path, intermediate: bool) -> None:
    """A PKI for the lab's TLS: ca.crt (what trusts it: the root, and the intermediate when there is
    one), root.crt (the root alone), the edge's server certificate, the gateway's and the suite's."""
    if (pki / "ca.crt").exists():
        if not intermediate and not (pki / "root.crt").exists():  # a PKI made before root.crt was written
            _write(pki / "root.crt", (pki / "ca.crt").read_bytes())
        return
    root = certs.new_ca("ViWorkS Lab Root CA" if intermediate else "ViWorkS Lab Internal CA")
    if intermediate:
        _identity_files(pki, "root", root)
        issuing = certs.new_ca("ViWorkS Lab Issuing CA", issuer=root)
        _identity_files(pki, "issuing", issuing)
        _write(pki / "ca.crt", root.cert_pem() + issuing.cert_pem())
    else:
        _identity_files(pki, "ca", root)
        _write(pki / "root.crt", root.cert_pem())
    issuer, chain = _issuer(pki)
    _identity_files(pki, "server", certs.issue(issuer, AGENT_DOMAIN, server=True), chain)
    _identity_files(pki, GATEWAY_ID, certs.issue(issuer, GATEWAY_ID, server=False), chain)
    _identity_files(pki, SUITE_AGENT_ID, certs.issue(issuer, SUITE_AGENT_ID, server=False), chain)


def ensure_material(state: StateDir, gateways: int = 1, variant: Variant = REFERENCE) -> Material:
    """Create what is missing; never regenerate what exists (keys and pins stay stable)."""
    state.root.mkdir(parents=True, exist_ok=True)
    state.root.chmod(0o700)
    pki = state.root / "pki-intermediate" if variant.pki == "intermediate" else state.pki
    _ensure_pki(state.pki, intermediate=False)
    _ensure_pki(pki, intermediate=variant.pki == "intermediate")
    if not (state.pki / "command-signing.key").exists():
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
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            ),
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
        if not (pki / f"{gateway.agent_id}.crt").exists():
            issuer, chain = _issuer(pki)
            _identity_files(pki, gateway.agent_id, certs.issue(issuer, gateway.agent_id, server=False), chain)
    values = json.loads(state.lab_secrets.read_text())
    material = Material(state, values["postgres_password"], values["redis_password"], values["jwt_secret"], pki)
    _write_suite_files(material, hosts, variant)
    return material


def ensure_server_variant(state: StateDir, stem: str) -> None:
    """A server certificate for the agent domain that a fault makes nginx serve instead of the real one.

    ``server-rekeyed``: same name and CA, another key (the pins no longer match);
    ``server-expired``: same key (pins still match), validity ended 30 days ago;
    ``server-cn-only``: same key, the domain in the subject CN only, no subjectAltName (Python's ssl
    accepts it, rustls, Go and browsers do not);
    ``server-weak-issuer``: same key, issued by an intermediate with an EC P-521 key (served with it):
    OpenSSL, so nginx and Python, accept it; strict clients take RSA >= 2048 or EC P-256/P-384 only.
    (An RSA 1024-bit key would be refused by nginx itself: Debian builds OpenSSL at security level 2.)
    """
    if (state.pki / f"{stem}.crt").exists():
        return
    ca, _ = _issuer(state.pki)
    key = certs.load_private_key((state.pki / "server.key").read_bytes())
    chain = b""
    if stem == "server-rekeyed":
        identity = certs.issue(ca, AGENT_DOMAIN, server=True)
    elif stem == "server-expired":
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=120)
        identity = certs.issue(ca, AGENT_DOMAIN, server=True, key=key, not_before=start, days=90)
    elif stem == "server-cn-only":
        identity = certs.issue(ca, AGENT_DOMAIN, server=True, key=key, subject_alt_names=False)
    elif stem == "server-weak-issuer":
        weak = certs.new_ca("ViWorkS lab P-521 issuing CA", issuer=ca, key=ec.generate_private_key(ec.SECP521R1()))
        identity, chain = certs.issue(weak, AGENT_DOMAIN, server=True, key=key), weak.cert_pem()
    else:
        raise ValueError(f"no server certificate variant {stem!r}")
    _identity_files(state.pki, stem, identity, chain)


def ensure_client_variant(state: StateDir, agent_id: str, stem: str) -> bytes:
    """A client certificate for ``agent_id`` that a fault deploys instead of its own; its PEM.

    ``wrong-usage``: same key and CA, its extended key usage serverAuth only: nginx (and any strict
    server) refuses it for a client.
    """
    path = state.pki / f"{agent_id}-{stem}.crt"
    if not path.exists():
        if stem != "wrong-usage":
            raise ValueError(f"no client certificate variant {stem!r}")
        ca, chain = _issuer(state.pki)
        key = certs.load_private_key((state.pki / f"{agent_id}.key").read_bytes())
        identity = certs.issue(ca, agent_id, server=False, key=key, extended_usages=(ExtendedKeyUsageOID.SERVER_AUTH,))
        _write(path, identity.cert_pem() + chain)
    return path.read_bytes()


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
        f"VIWORKS_AGENT_KEY_FILE={material.path(SUITE_AGENT_ID + '.key')}\n"
        f"VIWORKS_SNAPSHOT_KEY={_snapshot_key(material)}\n",
        0o600,
    )
    # One gateway: the repository's hosts.ini. A fleet, or a backend host over SSH: an inventory of its own.
    if len(gateways) == 1 and not variant.backend_over_ssh:
        inventory = str(REPO_ROOT / "hosts.ini")
    else:
        backend = (
            "backend-lab ansible_become=true" if variant.backend_over_ssh else "backend-lab ansible_connection=local"
        )
        _write(
            state.fleet_inventory,
            f"# Written by `viworks-lab up --gateways {len(gateways)} --variant {variant.name}`: the lab's hosts.\n\n"
            f"[backend]\n{backend}\n\n[gateway]\n"
            + "".join(f"{gateway.agent_id} ansible_become=true\n" for gateway in gateways),
        )
        inventory = str(state.fleet_inventory)
    _write(
        state.root / "generated.toml",
        "# Written by `viworks-lab up` for targets/lab.toml: values that exist only once the lab made them.\n"
        f'inventory = "{inventory}"\n\n'
        "[edge]\n"
        f'spki_pins = "{target_pins(material, variant)}"\n'
        f'ws_path = "{variant.ws_path}"\n'
        # The root alone: the edge must serve its intermediates for the chain to verify.
        f'ca_bundle = "{material.path("root.crt")}"\n\n'
        "[probe]\n"
        f'client_cert = "{material.path(SUITE_AGENT_ID + ".crt")}"\n\n'
        "[gateway]\n"
        f"agent_ids = [{', '.join(repr(gateway.agent_id).replace(chr(39), chr(34)) for gateway in gateways)}]\n"
        f"allowed_listeners = [{', '.join(chr(34) + listener + chr(34) for listener in variant.gateway_listeners)}]\n",
    )
    ssh_hosts = [(gateway.agent_id, gateway.ssh_port) for gateway in gateways]
    if variant.backend_over_ssh:
        ssh_hosts.append(("backend-lab", PORTS["backend_ssh"]))
    _write(
        state.ssh_config,
        "".join(
            f"Host {name}\n"
            f"    HostName {LOOPBACK}\n"
            f"    Port {port}\n"
            "    User ops\n"
            f"    IdentityFile {state.ssh / 'id_ed25519'}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {state.ssh / 'known_hosts'}\n"
            "    StrictHostKeyChecking yes\n"
            "    ConnectTimeout 5\n"
            "    ServerAliveInterval 10\n\n"
            for name, port in ssh_hosts
        ),
    )


def _snapshot_key(material: Material) -> str:
    """The lab's key for hashing secret values in snapshots: stable, so two snapshots of the lab compare."""
    return hashlib.sha256(("snapshot:" + material.jwt_secret).encode()).hexdigest()
