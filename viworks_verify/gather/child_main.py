"""The gather phase as a program: ``python -m viworks_verify.gather.child_main --target lab --targets-dir targets``.

Reads every host of the target's inventory at once (``Gathering``) and writes each host's snapshot
to stdout as one JSON line the moment it is read. The pytest plugin starts it before it loads the
suite (``gather.child``). Exit 0 when every host was written (an unreachable host is a snapshot
too), 4 when the target or its inventory cannot be used (the reason on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.gather.child import RUN_KEY_ENV
from viworks_verify.gather.gathering import Gathering
from viworks_verify.target.connections import target_hosts
from viworks_verify.target.inventory import Inventory, InventoryError
from viworks_verify.target.secrets import Secrets
from viworks_verify.target.settings import SettingsError, load_settings
from viworks_verify.target.shards import WHOLE, Shard, ShardError

EXIT_USAGE = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--targets-dir", required=True, type=Path)
    parser.add_argument("--ready-timeout", type=float, default=None)
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument("--shard", default=None)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.target, args.targets_dir, args.ready_timeout, args.max_connections)
        inventory = Inventory.of_target(settings)
        shard = Shard.parse(args.shard) if args.shard else WHOLE
        hosts = target_hosts(settings, inventory, shard)
    except (SettingsError, InventoryError, ShardError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    key = Secrets.load(settings.secrets_file).snapshot_key() or os.environ.get(RUN_KEY_ENV, "").encode() or None
    if any(host.inventory_host.group == "backend" for host in hosts.values()):
        # The backend host is the long pole (its engine, then execs in four containers) and needs the
        # Docker SDK, slow to import: imported before the gateway reads start, it is not also slowed
        # by their threads, which would put the backend's snapshot last.
        importlib.import_module("docker")
    gathering = Gathering(settings, SecretHasher(key))
    gathering.start_hosts(hosts.values())
    for snapshot in gathering.as_read():
        sys.stdout.write(json.dumps(snapshot.to_json()) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
