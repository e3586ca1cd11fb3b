"""The storage node's configuration file (YAML), validated at start with messages naming the field.

Theory of operation (spec/walrus-system.md 3.4, 3.7, 3.9; Walrus `node_config_example.yaml`): the
file is read once by `load_config`; every field is checked for type and range, unknown keys are
refused (a misspelt limit must not silently fall back to its default), and relative paths are
resolved against the directory of the file. The result is a tree of frozen dataclasses whose
defaults say why they are what they are. `node_config_example.yaml` at the repository root lists
every field with a comment; a test loads it.

Walrus's `sui` group becomes `chain`: an Ethereum JSON-RPC URL and the deployment file that
`walruspy chain deploy` writes (`walruspy.chain.deploy.Deployment`: chain ID and contract
addresses), which the node reads at start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from walruspy.backoff import Backoff
from walruspy.node.errors import ConfigError
from walruspy.node_api.connection_guard import ConnectionLimits

#: Walrus's default REST port (`rest_api_address: 0.0.0.0:9185`).
DEFAULT_PORT = 9185
#: The largest configuration file read; a real one is a few kilobytes.
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """Where the chain is and which contracts to follow."""

    rpc_url: str
    deployment_file: Path
    #: Walrus polls every 400 ms; our devchain makes a block per transaction, so the same pace
    #: keeps the node within a block or two without flooding the RPC endpoint.
    event_polling_interval_s: float = 0.4
    #: Events fetched per poll: enough to catch up fast, small enough to bound one answer.
    events_per_poll: int = 1000
    #: Chain calls are retried with exponential backoff between these bounds (Walrus: 1 s..30 s).
    retry_min_backoff_s: float = 1.0
    retry_max_backoff_s: float = 30.0
    #: Events are acted on only once this many blocks follow theirs. 0 suits the devchain and
    #: anvil, which reorganise only when told to; a public chain wants its finality depth
    #: (Ethereum mainnet: 64 blocks, two epochs).
    confirmations: int = 0
    #: How far back (in blocks) the node can take back applied events when the chain
    #: reorganises deeper than `confirmations`: an undo record of a few hundred bytes per event.
    #: 256 blocks is about 50 minutes of Ethereum, far beyond any reorganisation seen since the
    #: merge, and a few thousand records at most.
    reorg_window_blocks: int = 256
    #: Read the events as soon as the endpoint pushes a new head (`eth_subscribe` newHeads over
    #: a WebSocket, chain/new_heads.py) rather than at the next poll only.
    subscribe_new_heads: bool = True
    #: The endpoint's WebSocket URL, if not the JSON-RPC URL's own (ws:// for http://).
    ws_url: str | None = None

    @property
    def backoff(self) -> Backoff:
        """The retry policy of these bounds (`walruspy.backoff`)."""
        return Backoff(self.retry_min_backoff_s, self.retry_max_backoff_s)


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """Bounds of the REST API."""

    #: The largest request body any route accepts. A primary sliver at the largest symbol size
    #: is s x 65,534 bytes; 64 MiB covers committees up to ~1,000 shards, and each route also
    #: has its own exact limit below this one.
    max_body_bytes: int = 64 << 20
    #: Requests handled at once; more are refused with 429 so the node keeps answering.
    max_concurrent_requests: int = 256
    #: Recovery-symbol requests computed at once (each expands slivers: CPU-bound); Walrus
    #: refuses extra ones with 503 UNAVAILABLE.
    max_concurrent_symbol_requests: int = 16
    #: Longest wait for a registration in a confirmation long-poll; 0 disables it (Walrus's
    #: default `confirmation_long_poll_max_millis: 0`).
    confirmation_long_poll_max_ms: int = 0
    #: Longest wait of a metadata upload for the blob's registration event, which the client
    #: sends as soon as its registration is on chain: the upload goes on the moment this node
    #: sees the event, instead of after a NOT_REGISTERED answer and the client's backoff. 0
    #: answers at once, as Walrus does. Waiters count towards `max_long_polls`.
    upload_registration_wait_ms: int = 0
    #: Long-polls waiting at once; beyond it requests answer without waiting, as in Walrus.
    max_long_polls: int = 1000
    #: Most slivers one shard-sync answer may be asked for; larger requests are refused with
    #: SLIVER_COUNT_EXCEEDS_LIMIT (Walrus's `max_sliver_count_per_sync_request`, default 100,000;
    #: requesters ask for 1,000).
    max_sliver_count_per_sync_request: int = 100_000


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    """Blob sync (spec 3.4): bounded concurrency, timeouts and retries."""

    #: Blobs synced at once (Walrus: 100; fewer here because decoding runs on our two cores).
    max_concurrent_blob_syncs: int = 8
    #: Requests one sync has in flight to other nodes at once.
    max_concurrent_requests: int = 16
    #: Blob IDs waiting for a sync slot; the event processor waits when it is full.
    max_pending_syncs: int = 100_000
    #: Walrus's `metadata_request_timeout_secs: 5`.
    metadata_request_timeout_s: float = 5.0
    #: Walrus's `sliver_request_timeout_secs: 45`.
    sliver_request_timeout_s: float = 45.0
    #: Rounds of requests for one sliver or metadata before the sync gives up until the next scan.
    max_attempts: int = 10
    #: Backoff between rounds, doubling from min to max (Walrus: 1 s .. 3600 s).
    retry_min_backoff_s: float = 1.0
    retry_max_backoff_s: float = 60.0
    #: Wait after a certification before recovering, since the client may still be uploading
    #: to this node (Walrus's live-upload deferral: 15 s for blobs up to 100 MiB).
    live_upload_deferral_s: float = 15.0
    #: Period of the scan that re-queues certified blobs still missing data (after a restart,
    #: a give-up, or a race); 10 minutes keeps its cost negligible.
    rescan_interval_s: float = 600.0
    #: A sync that gave up is queued again this many times, after the same capped backoff,
    #: before it waits for the scan: a peer busy or lying for a moment does not cost 10 minutes.
    sync_retries: int = 5

    @property
    def backoff(self) -> Backoff:
        """The retry policy of these bounds (`walruspy.backoff`)."""
        return Backoff(self.retry_min_backoff_s, self.retry_max_backoff_s)


@dataclass(frozen=True, slots=True)
class EpochConfig:
    """The epoch-change driver and garbage collection (spec 3.5, 3.7)."""

    #: Whether this node calls the permissionless `advance_epoch` when the epoch is over.
    drive_epoch_change: bool = True
    #: Random delay before calling it, so the nodes do not all send the same transaction.
    max_jitter_s: float = 5.0
    #: How often the driver looks at the chain clock when the epoch end is far.
    check_interval_s: float = 10.0
    #: Delete the data of blobs with no live registration at each epoch change.
    enable_data_deletion: bool = True
    #: Delete data as soon as a deletion leaves no registration (Walrus's default: off).
    enable_immediate_data_deletion: bool = False


@dataclass(frozen=True, slots=True)
class ShardSyncConfig:
    """Shard sync at epoch changes (spec 3.5; Walrus `ShardSyncConfig`)."""

    #: Walrus `sliver_count_per_sync_request`: slivers asked for per request (one transaction).
    batch_size: int = 1000
    #: Walrus `shard_sync_concurrency`: gained shards synced at once.
    max_concurrent_shard_syncs: int = 10
    #: Time one request may take.
    request_timeout_s: float = 120.0
    #: Backoff between requests to a source that cannot answer yet, doubling (Walrus: 60..600 s).
    retry_min_backoff_s: float = 60.0
    retry_max_backoff_s: float = 600.0
    #: Walrus `shard_sync_retry_switch_to_recovery_interval_secs`: with no batch stored for this
    #: long, the shard is recovered blob by blob instead (12 h; seconds on a devnet).
    retry_window_s: float = 12 * 3600.0

    @property
    def backoff(self) -> Backoff:
        """The retry policy of these bounds (`walruspy.backoff`)."""
        return Backoff(self.retry_min_backoff_s, self.retry_max_backoff_s)


@dataclass(frozen=True, slots=True)
class ScrubConfig:
    """The background scrubber that checks every stored record (node/scrub.py)."""

    #: Bytes of records checked per second. XXH3 runs at about 30 GB/s on one core and a cold
    #: disk reads at about 1 GB/s: 8 MiB/s costs under 1% of either, and passes over 250 GB (a
    #: Walrus node's default capacity) in about 9 hours. 0 disables the scan (reads still check
    #: every record they return).
    bytes_per_second: int = 8 << 20
    #: Records checked per step: bounds one read transaction and the work between two pauses.
    batch_records: int = 1000
    #: The position is saved at most this often, so a restart resumes near where it stopped
    #: without a synced write per batch.
    save_interval_s: float = 30.0
    #: Pause between two passes over the whole store.
    pass_interval_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS of the REST API, bound to the network key (Walrus `tls`; node_api/tls.py)."""

    #: Serve plain HTTP although the node has a network key (debugging only: clients that find
    #: the key on chain connect with TLS and fail).
    disable_tls: bool = False
    #: A certificate (PEM, e.g. CA-signed for a public name) for the network key; by default
    #: a self-signed one is made at every start.
    certificate_path: Path | None = None


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The whole node configuration."""

    storage_path: Path
    protocol_key_path: Path
    wallet_key_path: Path
    chain: ChainConfig
    rest_api_host: str = "127.0.0.1"
    rest_api_port: int = DEFAULT_PORT
    #: The URL other nodes and clients use; informational (the chain holds the real address).
    public_url: str = ""
    name: str = "walruspy-node"
    limits: ApiLimits = field(default_factory=ApiLimits)
    blob_recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    epoch: EpochConfig = field(default_factory=EpochConfig)
    shard_sync: ShardSyncConfig = field(default_factory=ShardSyncConfig)
    scrub: ScrubConfig = field(default_factory=ScrubConfig)
    metrics_enabled: bool = True
    #: Slow and greedy clients of the REST API: header deadline, minimum body rate, idle
    #: timeout, connections per address (defaults and their reasons in `ConnectionLimits`).
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    #: Tests and devnets only: a JSON file that can make the node misbehave (node/faults.py).
    fault_file: Path | None = None
    #: The P-256 network key (`walruspy node keygen`): the node's TLS identity, registered on
    #: chain. Without one the node serves plain HTTP.
    network_key_path: Path | None = None
    tls: TlsConfig = field(default_factory=TlsConfig)

    @property
    def serves_tls(self) -> bool:
        """Whether the REST API speaks TLS (a network key, and TLS not disabled)."""
        return self.network_key_path is not None and not self.tls.disable_tls


# --- reading ----------------------------------------------------------------------------------


class _Section:
    """One mapping of the YAML file, read field by field; unknown keys are refused at `done`."""

    def __init__(self, raw: object, where: str, base_dir: Path) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where or 'the config'} must be a mapping, got {_kind(raw)}")
        self._raw: dict[Any, Any] = raw
        self._where = where
        self._base = base_dir
        self._seen: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        return self._raw.get(key)

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self._name(key)} is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self._name(key)} must be a non-empty string, got {value!r}")
        return value

    def path(self, key: str) -> Path:
        path = Path(self.text(key)).expanduser()
        return path if path.is_absolute() else self._base / path

    def optional_path(self, key: str) -> Path | None:
        return None if self._get(key) is None else self.path(key)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{self._name(key)} must be an integer in [{low}, {high}]: {value!r}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(f"{self._name(key)} must be a number in [{low}, {high}]: {value!r}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self._name(key)} must be true or false, got {value!r}")
        return value

    def section(self, key: str) -> _Section:
        return _Section(self._get(key), self._name(key), self._base)

    def done(self) -> None:
        unknown = sorted(str(k) for k in self._raw if k not in self._seen)
        if unknown:
            raise ConfigError(f"unknown field {self._name(unknown[0])}")


def _kind(value: object) -> str:
    return type(value).__name__


def parse_host_port(text: str, where: str) -> tuple[str, int]:
    """`host:port` (IPv6 hosts in brackets) -> (host, port); port 0 picks a free one."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{where} must be host:port with a port in [0, 65535], got {text!r}")
    return host.strip("[]"), int(port_text)


def _chain(section: _Section) -> ChainConfig:
    rpc_url = section.text("rpc_url")
    if not rpc_url.startswith(("http://", "https://")):
        raise ConfigError(f"chain.rpc_url must be an http(s) URL, got {rpc_url!r}")
    low = section.number("retry_min_backoff_s", 1.0, 0.001, 3600)
    config = ChainConfig(
        rpc_url=rpc_url,
        deployment_file=section.path("deployment_file"),
        event_polling_interval_s=section.number("event_polling_interval_s", 0.4, 0.01, 600),
        events_per_poll=section.integer("events_per_poll", 1000, 1, 100_000),
        retry_min_backoff_s=low,
        retry_max_backoff_s=section.number("retry_max_backoff_s", 30.0, low, 3600),
        confirmations=section.integer("confirmations", 0, 0, 10_000),
        reorg_window_blocks=section.integer("reorg_window_blocks", 256, 0, 1_000_000),
        subscribe_new_heads=section.flag("subscribe_new_heads", True),
        ws_url=section.text("ws_url", "") or None,
    )
    if config.ws_url is not None and not config.ws_url.startswith(("ws://", "wss://")):
        raise ConfigError(f"chain.ws_url must be a ws(s) URL, got {config.ws_url!r}")
    section.done()
    return config


def _limits(section: _Section) -> ApiLimits:
    config = ApiLimits(
        max_body_bytes=section.integer("max_body_bytes", 64 << 20, 1024, 1 << 32),
        max_concurrent_requests=section.integer("max_concurrent_requests", 256, 1, 100_000),
        max_concurrent_symbol_requests=section.integer(
            "max_concurrent_symbol_requests", 16, 1, 10_000
        ),
        confirmation_long_poll_max_ms=section.integer(
            "confirmation_long_poll_max_ms", 0, 0, 600_000
        ),
        upload_registration_wait_ms=section.integer("upload_registration_wait_ms", 0, 0, 60_000),
        max_long_polls=section.integer("max_long_polls", 1000, 0, 100_000),
        max_sliver_count_per_sync_request=section.integer(
            "max_sliver_count_per_sync_request", 100_000, 1, 100_000
        ),
    )
    section.done()
    return config


def _recovery(section: _Section) -> RecoveryConfig:
    low = section.number("retry_min_backoff_s", 1.0, 0.001, 3600)
    config = RecoveryConfig(
        max_concurrent_blob_syncs=section.integer("max_concurrent_blob_syncs", 8, 1, 10_000),
        max_concurrent_requests=section.integer("max_concurrent_requests", 16, 1, 10_000),
        max_pending_syncs=section.integer("max_pending_syncs", 100_000, 1, 10_000_000),
        metadata_request_timeout_s=section.number("metadata_request_timeout_s", 5.0, 0.01, 3600),
        sliver_request_timeout_s=section.number("sliver_request_timeout_s", 45.0, 0.01, 3600),
        max_attempts=section.integer("max_attempts", 10, 1, 1000),
        retry_min_backoff_s=low,
        retry_max_backoff_s=section.number("retry_max_backoff_s", 60.0, low, 86_400),
        live_upload_deferral_s=section.number("live_upload_deferral_s", 15.0, 0, 3600),
        rescan_interval_s=section.number("rescan_interval_s", 600.0, 0.1, 86_400),
        sync_retries=section.integer("sync_retries", 5, 0, 1000),
    )
    section.done()
    return config


def _epoch(section: _Section) -> EpochConfig:
    config = EpochConfig(
        drive_epoch_change=section.flag("drive_epoch_change", True),
        max_jitter_s=section.number("max_jitter_s", 5.0, 0, 3600),
        check_interval_s=section.number("check_interval_s", 10.0, 0.01, 3600),
        enable_data_deletion=section.flag("enable_data_deletion", True),
        enable_immediate_data_deletion=section.flag("enable_immediate_data_deletion", False),
    )
    section.done()
    return config


def _shard_sync(section: _Section) -> ShardSyncConfig:
    low = section.number("retry_min_backoff_s", 60.0, 0.001, 86_400)
    config = ShardSyncConfig(
        batch_size=section.integer("batch_size", 1000, 1, 100_000),
        max_concurrent_shard_syncs=section.integer("max_concurrent_shard_syncs", 10, 1, 1000),
        request_timeout_s=section.number("request_timeout_s", 120.0, 0.01, 86_400),
        retry_min_backoff_s=low,
        retry_max_backoff_s=section.number("retry_max_backoff_s", 600.0, low, 86_400),
        retry_window_s=section.number("retry_window_s", 12 * 3600.0, 0.001, 30 * 86_400),
    )
    section.done()
    return config


def _scrub(section: _Section) -> ScrubConfig:
    config = ScrubConfig(
        bytes_per_second=section.integer("bytes_per_second", 8 << 20, 0, 1 << 40),
        batch_records=section.integer("batch_records", 1000, 1, 100_000),
        save_interval_s=section.number("save_interval_s", 30.0, 0.01, 86_400),
        pass_interval_s=section.number("pass_interval_s", 3600.0, 0.01, 30 * 86_400),
    )
    section.done()
    return config


def _connections(section: _Section) -> ConnectionLimits:
    d = ConnectionLimits()
    config = ConnectionLimits(
        header_timeout_s=section.number("header_timeout_s", d.header_timeout_s, 0.01, 3600),
        body_rate_window_s=section.number("body_rate_window_s", d.body_rate_window_s, 0.01, 3600),
        min_body_bytes_per_s=section.integer(
            "min_body_bytes_per_s", d.min_body_bytes_per_s, 0, 1 << 30
        ),
        idle_timeout_s=section.number("idle_timeout_s", d.idle_timeout_s, 0.01, 86_400),
        max_connections_per_address=section.integer(
            "max_connections_per_address", d.max_connections_per_address, 1, 1_000_000
        ),
        limit_loopback=section.flag("limit_loopback", d.limit_loopback),
    )
    section.done()
    return config


def _tls(section: _Section) -> TlsConfig:
    config = TlsConfig(
        disable_tls=section.flag("disable_tls", False),
        certificate_path=section.optional_path("certificate_path"),
    )
    section.done()
    return config


def parse_config(raw: object, base_dir: Path) -> NodeConfig:
    """Validate a decoded YAML document; relative paths are taken from `base_dir`."""
    top = _Section(raw, "", base_dir)
    host, port = parse_host_port(
        top.text("rest_api_address", f"127.0.0.1:{DEFAULT_PORT}"), "rest_api_address"
    )
    public_url = top.text("public_url", f"http://{host}:{port}")
    if not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"public_url must be an http(s) URL, got {public_url!r}")
    metrics = top.section("metrics")
    metrics_enabled = metrics.flag("enabled", True)
    metrics.done()
    config = NodeConfig(
        name=top.text("name", "walruspy-node"),
        storage_path=top.path("storage_path"),
        protocol_key_path=top.path("protocol_key_path"),
        wallet_key_path=top.path("wallet_key_path"),
        rest_api_host=host,
        rest_api_port=port,
        public_url=public_url,
        chain=_chain(top.section("chain")),
        limits=_limits(top.section("limits")),
        blob_recovery=_recovery(top.section("blob_recovery")),
        epoch=_epoch(top.section("epoch")),
        shard_sync=_shard_sync(top.section("shard_sync")),
        scrub=_scrub(top.section("scrub")),
        metrics_enabled=metrics_enabled,
        connections=_connections(top.section("connections")),
        fault_file=top.optional_path("fault_file"),
        network_key_path=top.optional_path("network_key_path"),
        tls=_tls(top.section("tls")),
    )
    top.done()
    return config


def load_config(path: Path) -> NodeConfig:
    """Read and validate the YAML configuration at `path`."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the config file {path} exceeds {MAX_CONFIG_BYTES} bytes")
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"the config file {path} is not valid YAML: {exc}") from exc
    return parse_config(raw, path.resolve().parent)
