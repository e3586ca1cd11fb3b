"""`python -m walruspy.node run --config FILE` / `keygen --out DIR`, without the full CLI.

The `walruspy node ...` commands (walruspy.cli.node_cmd) do the same with `--json` and the CLI's
error handling; this entry point exists for service managers that start the module directly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from walruspy.core.errors import WalrusError
from walruspy.node.keys import keygen
from walruspy.node.node import run_from_config


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m walruspy.node")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a storage node")
    run.add_argument("--config", type=Path, required=True)
    gen = commands.add_parser("keygen", help="create the node's keys")
    gen.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            keys = keygen(args.out)
            sys.stdout.write(f"{keys.protocol_public_key_hex} {keys.wallet_address}\n")
        else:
            asyncio.run(run_from_config(args.config))
    except WalrusError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
