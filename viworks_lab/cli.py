"""``viworks-lab``: bring the local replica of a ViWorkS deployment up, report on it, take it down."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from viworks_lab.build_release import build_release
from viworks_lab.candidate import FILES
from viworks_lab.engine import LabError
from viworks_lab.faults import FAULTS
from viworks_lab.lab import CandidateDidNotStart, Lab
from viworks_lab.variants import VARIANTS

EXIT_CANDIDATE_DID_NOT_START = 3  # the lab is up, with the candidate in; the gate will say what it breaks


def _log(message: str) -> None:
    print(f"viworks-lab: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="viworks-lab", description=__doc__)
    parser.add_argument(
        "--ready-timeout", type=float, default=180.0, help="seconds to wait for each part to become ready"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build (cached) and start the lab; wait until every gateway agent is Online")
    up.add_argument(
        "--gateways",
        type=int,
        default=None,
        metavar="N",
        help="run N gateway hosts, gw-lab-01..NN, each its own systemd host, identity, ssh port and site "
        "(default: as the last up said, else 1)",
    )
    up.add_argument(
        "--variant",
        default=None,
        metavar="NAME",
        help="build a healthy variant written differently "
        "(see `variants`; default: as the last up said, else reference)",
    )
    rehearsal = up.add_argument_group(
        "release rehearsal",
        "deploy a candidate build instead of the reference agents, as production does "
        "(kept for later `up`s until --reference-agents or `down`)",
    )
    rehearsal.add_argument(
        "--release", type=Path, metavar="DIR", help=f"a release directory: any of {', '.join(FILES.values())}"
    )
    for role, name in FILES.items():
        rehearsal.add_argument(f"--{role.replace('_', '-')}", type=Path, metavar="FILE", help=f"the candidate's {name}")
    rehearsal.add_argument(
        "--lab-secrets",
        action="store_true",
        help="fill the values the lab owns where the candidate's configs have them: database and Redis URLs, "
        "JWT secret; on gateways the backend URL's host, agent id, site, pin and PKI paths",
    )
    rehearsal.add_argument(
        "--release-version",
        metavar="VERSION",
        help="the version the candidate is released as, when its backend binary prints none with --version",
    )
    rehearsal.add_argument(
        "--reference-agents", action="store_true", help="forget the candidate: back to the reference agents"
    )
    build = commands.add_parser(
        "build-release", help="package the reference agents as a candidate release directory (what --release takes)"
    )
    build.add_argument("directory", type=Path)
    commands.add_parser("variants", help="the healthy variants `up --variant` builds, one line each")
    commands.add_parser("down", help="remove every lab container and network (images stay cached)")
    commands.add_parser("status", help="the lab's containers: state, restarts, networks, published ports")
    breaking = commands.add_parser("break", help="inject one fault (see `faults`)")
    breaking.add_argument("fault")
    breaking.add_argument(
        "--host", default=None, metavar="GATEWAY", help="the gateway host a gateway fault hits (default gw-lab-01)"
    )
    commands.add_parser("heal", help="remove the injected fault: back to the healthy lab, no rebuild")
    commands.add_parser("faults", help="the faults `break` can inject, one line each")
    args = parser.parse_args(argv)
    lab = Lab(log=_log, ready_timeout_s=args.ready_timeout)
    try:
        if args.command == "up":
            files = {role: getattr(args, role) for role in FILES}
            if args.reference_agents and (args.release or any(files.values())):
                raise LabError(
                    "--reference-agents and a candidate (--release, --backend-binary, ...) exclude each other"
                )
            if args.reference_agents and lab.use_reference_agents():
                _log("the candidate is forgotten: the reference agents are deployed again")
            if args.release or any(files.values()):
                if (args.variant or lab.variant.name) != "reference":
                    raise LabError("a candidate is rehearsed in the reference lab (add --variant reference)")
                timings = lab.rehearse(
                    args.release,
                    files,
                    args.lab_secrets,
                    args.release_version,
                    gateways=args.gateways,
                    variant=args.variant,
                )
            else:
                if args.lab_secrets:
                    raise LabError("--lab-secrets goes with a candidate (--release DIR or the per-file flags)")
                timings = lab.up(gateways=args.gateways, variant=args.variant)
            _log(
                f"up ({lab.gateway_count} gateway{'s' if lab.gateway_count > 1 else ''}, variant {lab.variant.name}): "
                + ", ".join(f"{name} {seconds:.1f}" for name, seconds in timings.items())
            )
        elif args.command == "build-release":
            for line in build_release(args.directory):
                print(line)
        elif args.command == "down":
            if lab.use_reference_agents():
                _log("forgot the release candidate")
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
            candidate = lab.candidate
            print(f"agents: candidate: {candidate.describe()}" if candidate else "agents: reference")
            print(f"fault: {fault.name} ({fault.description})" if fault else "fault: none (healthy)")
            rows = lab.status()
            if not rows:
                print("no lab containers")
            for row in rows:
                print(
                    f"{row['container']:<28} {row['state']:<10} restarts={row['restarts']:<3} "
                    f"{row['networks']:<34} {row['ports']}"
                )
    except CandidateDidNotStart as exc:
        _log(str(exc))
        return EXIT_CANDIDATE_DID_NOT_START
    except LabError as exc:
        _log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
