"""``viworks-lab``: bring the local replica of a ViWorkS deployment up, report on it, take it down."""

from __future__ import annotations

import argparse
import sys

from viworks_lab.engine import LabError
from viworks_lab.faults import FAULTS
from viworks_lab.lab import Lab
from viworks_lab.variants import VARIANTS


def _log(message: str) -> None:
    print(f"viworks-lab: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="viworks-lab", description=__doc__)
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for each part to become ready")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build (cached) and start the lab; wait until every gateway agent is Online")
    up.add_argument("--gateways", type=int, default=None, metavar="N",
                    help="run N gateway hosts, gw-lab-01..NN, each its own systemd host, identity, ssh port and site "
                         "(default: as the last up said, else 1)")
    up.add_argument("--variant", default=None, metavar="NAME",
                    help="build a healthy variant written differently (see `variants`; default: as the last up said, else reference)")
    commands.add_parser("variants", help="the healthy variants `up --variant` builds, one line each")
    commands.add_parser("down", help="remove every lab container and network (images stay cached)")
    commands.add_parser("status", help="the lab's containers: state, restarts, networks, published ports")
    breaking = commands.add_parser("break", help="inject one fault (see `faults`)")
    breaking.add_argument("fault")
    breaking.add_argument("--host", default=None, metavar="GATEWAY", help="the gateway host a gateway fault hits (default gw-lab-01)")
    commands.add_parser("heal", help="remove the injected fault: back to the healthy lab, no rebuild")
    commands.add_parser("faults", help="the faults `break` can inject, one line each")
    args = parser.parse_args(argv)
    lab = Lab(log=_log, ready_timeout_s=args.ready_timeout)
    try:
        if args.command == "up":
            timings = lab.up(gateways=args.gateways, variant=args.variant)
            _log(f"up ({lab.gateway_count} gateway{'s' if lab.gateway_count > 1 else ''}, variant {lab.variant.name}): " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items()))
        elif args.command == "down":
            removed = lab.down()
            _log("down: removed " + (", ".join(removed) if removed else "nothing (no lab was running)"))
        elif args.command == "break":
            lab.break_fault(args.fault, host=args.host)
        elif args.command == "heal":
            timings = lab.heal()
            _log("healed: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items()))
        elif args.command == "variants":
            for variant in VARIANTS.values():
                print(f"{variant.name:<24} {variant.description}")
        elif args.command == "faults":
            for fault in FAULTS.values():
                print(f"{fault.name:<24} {fault.description}")
        else:
            fault = lab.active_fault()
            print(f"variant: {lab.variant.name}")
            print(f"fault: {fault.name} ({fault.description})" if fault else "fault: none (healthy)")
            rows = lab.status()
            if not rows:
                print("no lab containers")
            for row in rows:
                print(f"{row['container']:<28} {row['state']:<10} restarts={row['restarts']:<3} {row['networks']:<34} {row['ports']}")
    except LabError as exc:
        _log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
