"""Around the edge: what a client on the network gets from the backend agent's own ports.

The agent's 8080 (API) and 8081 (agent WebSocket) speak plain HTTP and trust the identity header
nginx sets; whoever reaches them directly bypasses TLS, the client-certificate check and the
identity binding. These probes try it as an attacker would, from the runner: an HTTP request to
the API port, and on the WebSocket port an upgrade with forged identity headers and a hello as
the forged id. Nothing answering (refused, or silent within the timeout) is the healthy outcome.
"""

from __future__ import annotations

import dataclasses

import httpx

from viworks_verify.wire import protocol
from viworks_verify.wire.probe_agent import UpgradeRefused, open_plain_session, say_hello


@dataclasses.dataclass(frozen=True)
class DirectAnswer:
    """What one port answered: ``reached`` when anything spoke HTTP (or WebSocket) back."""

    port: int
    reached: bool
    what: str
    welcomed: bool = False  # the forged hello was welcomed: the agent id was the client's choice


def forged_identity(headers: tuple[str, ...], agent_id: str) -> dict[str, str]:
    """The identity headers as a forger sends them: the first (the subject CN) naming ``agent_id``, the rest
    "SUCCESS"."""
    return {name: agent_id if index == 0 else "SUCCESS" for index, name in enumerate(headers)}


def probe_api_port(address: str, port: int, timeout_s: float) -> DirectAnswer:
    try:
        response = httpx.get(f"http://{address}:{port}/health", timeout=timeout_s)
    except httpx.TimeoutException:
        return DirectAnswer(port, False, f"no answer within {timeout_s:.1f} s")
    except httpx.TransportError as exc:
        return DirectAnswer(port, False, _unreached(exc))
    return DirectAnswer(
        port, True, f"HTTP {response.status_code} to GET /health, with no TLS and no client certificate"
    )


def probe_ws_port(
    address: str, port: int, path: str, forged: dict[str, str], agent_id: str, timeout_s: float
) -> DirectAnswer:
    url = f"ws://{address}:{port}{path}"
    try:
        session = open_plain_session(url, headers=forged, timeout_s=timeout_s)
    except UpgradeRefused as exc:
        return DirectAnswer(port, True, f"HTTP {exc.status} to a WebSocket upgrade at {path}, with no TLS")
    except (TimeoutError, OSError) as exc:
        return DirectAnswer(
            port, False, f"no answer within {timeout_s:.1f} s" if isinstance(exc, TimeoutError) else _unreached(exc)
        )
    except Exception as exc:
        return DirectAnswer(port, False, f"no WebSocket answer ({type(exc).__name__})")
    try:
        answer = say_hello(session, agent_id, timeout_s)
    except Exception as exc:
        return DirectAnswer(
            port,
            True,
            f"upgraded to a WebSocket at {path} with no TLS or client certificate (hello: {type(exc).__name__})",
        )
    finally:
        try:
            session.close()
        except Exception:
            pass
    claimed = ", ".join(f"{name}: {value}" for name, value in forged.items())
    if answer.is_type(protocol.WELCOME):
        return DirectAnswer(
            port,
            True,
            f"upgraded to a WebSocket at {path} with no TLS or client certificate, and welcomed a hello as "
            f"{agent_id} on the forged headers ({claimed})",
            welcomed=True,
        )
    return DirectAnswer(
        port,
        True,
        f"upgraded to a WebSocket at {path} with no TLS or client certificate (the hello as {agent_id}: {answer.type})",
    )


def _unreached(exc: Exception) -> str:
    text = str(exc).lower()
    return (
        "connection refused"
        if "refused" in text
        else f"not reachable ({' '.join(str(exc).split())[:120] or type(exc).__name__})"
    )
