"""The devnet's state file, `DIR/devnet.json`: what runs where, for `devnet status` and `down`.

A devnet writes it once every process is ready (and again when a node restarts): for each
process its pid and exact command line (so a later command never signals a recycled pid), its
log file and URL; for each node its shards and its committee URL (a lying node's proxy) beside
the address it serves on; and the chain, publisher and aggregator URLs and the client
configuration path. The file is written atomically.

The URLs hold the ports every process was given at the devnet's first start, and the file
says whether nodes serve TLS and the publisher's body limit: `walruspy devnet up` resumes a
stopped devnet from it (`walruspy.devnet.resume`) with the same ports and settings.

A devnet on an external chain (`devnet up --chain-rpc URL`, e.g. anvil) records the chain with
its URL only (pid 0, no command line, no log) and `chain_external`: it is not the devnet's
process, so `down` leaves it running and a resume reconnects to it. `funder_key_file` names the
key of the account that deployed and funds (`DIR/wallets/funder.key`), which later commands use
too. Files written before these fields existed lack them and read as what those devnets were:
the embedded devchain, funded by its first dev account.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from walruspy.devnet.errors import StateFileError
from walruspy.node.keys import load_wallet_key

__all__ = ["STATE_FILE", "STATE_FORMAT", "DevnetState", "NodeRecord", "ProcessRecord"]

STATE_FILE: Final = "devnet.json"
STATE_FORMAT: Final = "walruspy-devnet/1"
#: A state file is a few kilobytes; anything larger is not one.
MAX_STATE_BYTES: Final = 1 << 20
#: The publisher's body limit of a state file that does not record one (Walrus's 10 MiB, the
#: devnet's default).
DEFAULT_MAX_BODY_BYTES: Final = 10 << 20


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One running process: pid, the command line it runs, its log, its URL."""

    name: str
    pid: int
    command: tuple[str, ...]
    log: str
    url: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        """Parse one record."""
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            command=tuple(str(part) for part in data["command"]),
            log=str(data["log"]),
            url=str(data["url"]),
        )


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One storage node: its process, committee URL, shards and, if it lies, its proxy.

    `shards` and `in_committee` are as of the devnet's last look at the chain (its start, an
    epoch it advanced, a node added); the nodes' own drivers may have moved on since.
    """

    index: int
    process: ProcessRecord
    url: str
    shards: tuple[int, ...]
    node_id: str
    proxy: ProcessRecord | None = None
    in_committee: bool = True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRecord:
        """Parse one node."""
        proxy = data.get("proxy")
        return cls(
            index=int(data["index"]),
            process=ProcessRecord.from_json(data["process"]),
            url=str(data["url"]),
            shards=tuple(int(s) for s in data["shards"]),
            node_id=str(data["node_id"]),
            proxy=ProcessRecord.from_json(proxy) if proxy is not None else None,
            in_committee=bool(data.get("in_committee", True)),
        )


@dataclass(frozen=True, slots=True)
class DevnetState:
    """Everything a later command needs to find and stop the devnet's processes."""

    dir: str
    n_shards: int
    epoch_duration_s: int
    chain: ProcessRecord
    nodes: tuple[NodeRecord, ...]
    daemon: ProcessRecord
    client_config: str
    deployment_file: str
    #: Nodes serve TLS pinned to their network keys (a node added later does too).
    tls: bool = False
    #: The publisher's body limit, which a resumed devnet's daemon keeps.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: A `--hosts` devnet's network (`HostsNetwork.to_json`): hosts, addresses, link shape.
    hosts: dict[str, Any] | None = None
    #: The delaying relay of a `--hosts` devnet whose links delay where netem is missing.
    relay: ProcessRecord | None = None
    #: The chain is an Ethereum node the devnet did not start (`chain.url` only; module doc).
    chain_external: bool = False
    #: The funder's key file; empty: the devchain's first dev account.
    funder_key_file: str = ""
    format: str = field(default=STATE_FORMAT)

    @property
    def processes(self) -> list[ProcessRecord]:
        """Every process of the devnet's own, in the order to stop them: daemon, nodes, proxies,
        chain (not an external one, which runs on its own), relay."""
        nodes = [node.process for node in self.nodes]
        proxies = [node.proxy for node in self.nodes if node.proxy is not None]
        chain = [] if self.chain_external else [self.chain]
        relay = [self.relay] if self.relay is not None else []
        return [self.daemon, *nodes, *proxies, *chain, *relay]

    def funder_key(self) -> bytes | None:
        """The funder's private key, from its file; None for the devchain's first account."""
        if not self.funder_key_file:
            return None
        return load_wallet_key(Path(self.funder_key_file))

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the state file."""
        return asdict(self)

    def save(self) -> None:
        """Write `DIR/devnet.json` atomically."""
        path = Path(self.dir) / STATE_FILE
        tmp = path.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path | str) -> DevnetState:
        """Read `DIR/devnet.json`; `StateFileError` says what is wrong."""
        path = Path(directory) / STATE_FILE
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_STATE_BYTES + 1)
        except OSError as exc:
            raise StateFileError(f"no devnet state in {directory}: {exc.strerror}") from exc
        try:
            if len(raw) > MAX_STATE_BYTES:
                raise ValueError("the file is too large")
            data = json.loads(raw)
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {STATE_FORMAT!r}")
            return cls(
                dir=str(data["dir"]),
                n_shards=int(data["n_shards"]),
                epoch_duration_s=int(data["epoch_duration_s"]),
                chain=ProcessRecord.from_json(data["chain"]),
                nodes=tuple(NodeRecord.from_json(node) for node in data["nodes"]),
                daemon=ProcessRecord.from_json(data["daemon"]),
                client_config=str(data["client_config"]),
                deployment_file=str(data["deployment_file"]),
                tls=bool(data.get("tls", False)),
                max_body_bytes=int(data.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
                hosts=dict(data["hosts"]) if data.get("hosts") is not None else None,
                relay=ProcessRecord.from_json(data["relay"]) if data.get("relay") else None,
                chain_external=bool(data.get("chain_external", False)),
                funder_key_file=str(data.get("funder_key_file", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateFileError(f"{path} is not a devnet state file: {exc}") from exc
