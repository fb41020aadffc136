"""Latency of the live paths the gate exercises, as p50/p95 over repeated samples.

    .venv/bin/python benchmarks/latency.py [--target lab] [--samples 30]

Measures against the target's edge, with its secrets: GET /health, the mTLS WebSocket upgrade,
a command round-trip to the synthetic agent (the suite answers), and a get_system_health
round-trip to each deployed gateway agent. Read-only verbs only; the synthetic agent's record
is removed afterwards. Figures go to stdout and reports/latency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from viworks_verify.backend.api import BackendApi
from viworks_verify.core.polling import poll_until
from viworks_verify.edge.endpoint import EdgeEndpoint
from viworks_verify.target.secrets import Secrets
from viworks_verify.target.settings import load_settings
from viworks_verify.wire import protocol
from viworks_verify.wire.probe_agent import ProbeSession, open_session, start_probe

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def wait_command(api: BackendApi, correlation_id: str) -> dict:
    return api.wait_for_command(correlation_id, 30, interval_s=0.01, max_interval_s=0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="lab")
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    settings = load_settings(args.target, REPO / "targets")
    secrets = Secrets.load(settings.secrets_file)
    edge = EdgeEndpoint(settings.edge)
    cert, key = settings.probe.client_cert, secrets.agent_key_file()
    figures: dict[str, list[float]] = {
        "GET /health": [],
        "wss upgrade (mTLS)": [],
        "command round-trip (synthetic agent)": [],
    }
    with BackendApi(edge, secrets.api_token(role="admin")) as api:
        for _ in range(args.samples):
            figures["GET /health"].append(api.health().elapsed_ms)
        for _ in range(args.samples):
            started = time.perf_counter()
            open_session(edge, client_cert=cert, client_key=key).close()
            figures["wss upgrade (mTLS)"].append((time.perf_counter() - started) * 1000)
        agent_id = settings.probe.agent_id
        connection, welcome, _ = start_probe(edge, agent_id, client_cert=cert, client_key=key)
        probe = ProbeSession(connection, agent_id, welcome, 0)
        poll_until(lambda: api.agent_info(agent_id)["status"], lambda s: s == "Online", what=agent_id, timeout_s=10)
        for _ in range(args.samples):
            started = time.perf_counter()
            correlation_id = api.submit_command("get_system_health", {}, [agent_id], timeout_s=30).json()[
                "correlation_id"
            ]
            probe.next_frame(10, protocol.COMMAND)
            probe.send(
                protocol.make_frame(
                    protocol.RESULT,
                    protocol.result_payload(
                        corr_id=correlation_id,
                        agent_id=agent_id,
                        verb="get_system_health",
                        status="SUCCESS",
                        rc=0,
                        duration_ms=0,
                        stdout="{}",
                    ),
                    correlation_id=correlation_id,
                )
            )
            wait_command(api, correlation_id)
            figures["command round-trip (synthetic agent)"].append((time.perf_counter() - started) * 1000)
        probe.close()
        poll_until(lambda: api.agent_info(agent_id)["status"], lambda s: s != "Online", what=agent_id, timeout_s=10)
        api.forget_agent(agent_id)
        for gateway in settings.gateway.agent_ids:
            name = f"command round-trip ({gateway})"
            figures[name] = []
            for _ in range(max(5, args.samples // 3)):
                started = time.perf_counter()
                correlation_id = api.submit_command("get_system_health", {}, [gateway], timeout_s=30).json()[
                    "correlation_id"
                ]
                wait_command(api, correlation_id)
                figures[name].append((time.perf_counter() - started) * 1000)
    summary = {
        name: {
            "n": len(v),
            "p50_ms": round(statistics.median(v), 1),
            "p95_ms": round(percentile(v, 0.95), 1),
            "max_ms": round(max(v), 1),
        }
        for name, v in figures.items()
    }
    for name, row in summary.items():
        print(
            f"{name:<40} n={row['n']:<3} p50={row['p50_ms']:>7.1f} ms  "
            f"p95={row['p95_ms']:>7.1f} ms  max={row['max_ms']:>7.1f} ms"
        )
    (REPO / "reports").mkdir(exist_ok=True)
    (REPO / "reports" / "latency.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
