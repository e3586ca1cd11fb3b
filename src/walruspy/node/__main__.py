"""`python -m walruspy.node run --config FILE [--rebuild-store]` / `keygen --out DIR [...]`.

The `walruspy node ...` commands (walruspy.cli.node_cmd) do the same with `--json` and the CLI's
error handling; this entry point exists for service managers that start the module directly.
`keygen` prints the BLS public key and the wallet address, and with `--deployer` also the
protocol key's proof of possession for that deployer (the committee file's
`proof_of_possession`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from walruspy.core.errors import WalrusError
from walruspy.logs import configure_logging
from walruspy.node.keys import keygen
from walruspy.node.node import run_from_config


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m walruspy.node")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a storage node")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument(
        "--rebuild-store",
        action="store_true",
        help="if the store is damaged, move it aside (kept) and recover the data from the peers",
    )
    gen = commands.add_parser("keygen", help="create the node's keys")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--deployer", help="EVM address: also print the key's proof of possession")
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            keys = keygen(args.out, args.deployer)
            fields = [keys.protocol_public_key_hex, keys.wallet_address]
            if keys.proof_of_possession_hex is not None:
                fields.append(keys.proof_of_possession_hex)
            sys.stdout.write(" ".join(fields) + "\n")
        else:
            configure_logging(as_json=False)  # as `walruspy node run` does
            asyncio.run(run_from_config(args.config, rebuild_store=args.rebuild_store))
    except (WalrusError, ValueError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
