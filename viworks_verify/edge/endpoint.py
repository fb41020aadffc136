"""Reaching the TLS edge on the agent domain: TLS contexts, URLs, and the connect-address override.

``connect_address`` works like ``curl --resolve``: the TCP connection goes to that address while
TLS (SNI, certificate name) and HTTP (Host) speak as the agent domain. Production leaves it unset.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from pathlib import Path

from viworks_verify.gateway.env import expected_backend_url
from viworks_verify.target.settings import Edge


@dataclasses.dataclass(frozen=True)
class EdgeEndpoint:
    edge: Edge
    timeout_s: float = 5.0

    @property
    def address(self) -> str:
        return self.edge.connect_address or self.edge.domain

    def https_url(self, path: str) -> str:
        return f"https://{self.address}:{self.edge.https_port}{path}"

    def wss_url(self, path: str | None = None) -> str:
        """The URL as an agent writes it (the domain), whatever address the socket goes to."""
        return expected_backend_url(self.edge.domain, path or self.edge.ws_path, self.edge.https_port)

    @property
    def request_extensions(self) -> dict[str, str]:
        return {"sni_hostname": self.edge.domain}

    @property
    def host_header(self) -> dict[str, str]:
        return {"Host": self.edge.domain}

    def tls_context(
        self,
        *,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        minimum: ssl.TLSVersion | None = None,
        maximum: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.edge.ca_bundle) if self.edge.ca_bundle else None)
        if client_cert is not None:
            context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
        if minimum is not None:
            context.minimum_version = minimum
        if maximum is not None:
            context.maximum_version = maximum
        return context

    def open_tcp(self, port: int | None = None) -> socket.socket:
        return socket.create_connection((self.address, port or self.edge.https_port), timeout=self.timeout_s)

    def answers(self) -> bool:
        """Whether anything speaks TLS on the edge (a bad certificate still counts: it answered).

        Connection-level failures (refused, reset, timed out) raise, so a poller reports them.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with self.open_tcp() as raw, context.wrap_socket(raw, server_hostname=self.edge.domain):
            return True

    def tls_problem(self) -> str | None:
        """Why a verified TLS session to the domain cannot be had (None when it can)."""
        try:
            with self.open_tcp() as raw, self.tls_context().wrap_socket(raw, server_hostname=self.edge.domain):
                return None
        except ssl.SSLCertVerificationError as exc:
            return f"certificate does not verify: {exc.verify_message}"
        except (OSError, ssl.SSLError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def served_chain(self) -> list[bytes]:
        """The DER certificates the edge serves for the domain, leaf first, read without trusting them."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with self.open_tcp() as raw, context.wrap_socket(raw, server_hostname=self.edge.domain) as tls:
            return _unverified_chain(tls)


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """Every certificate the peer sent: public from Python 3.13; before, the same call on the socket's
    ``_sslobj`` (there since 3.10, returning certificate objects). The leaf alone when neither exists."""
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        return [bytes(der) for der in public()]
    private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if private is not None:
        return [certificate.public_bytes(ssl._ssl.ENCODING_DER) for certificate in private() or []]
    return [tls.getpeercert(binary_form=True)]
