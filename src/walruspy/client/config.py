"""The client configuration file (YAML): contexts, each a network to talk to and how.

Theory of operation (spec/walrus-system.md 4.1 and 4.2; Walrus `client_config_example.yaml`).
A file holds named `contexts` and a `default_context`, as Walrus's does; a file without
`contexts` is one context named "default". Each context says where the control plane is (one or
more Ethereum JSON-RPC URLs, tried in order, and the deployment: the path of the JSON file that
`walruspy chain deploy` writes, or the same object inline), which wallet key pays for
transactions (optional: without one the client can only read), and the communication limits.
Walrus's `system_object`/`staking_object` become the deployment, `rpc_urls` stay, and `n_shards`
is read from the chain.

Every field is checked for type and range when the file is loaded; unknown keys are refused (a
misspelt limit must not silently fall back to its default); each error names the field, as in
`contexts.devnet.communication.max_node_connections`. Relative paths are taken from the file's
directory. `client_config_example.yaml` at the repository root lists every field; a test loads it.

Without `--config`, the file is the one `$WALRUSPY_CONFIG` names (as `AWS_CONFIG_FILE` does for
boto3: a devnet's `client_config.yaml` for a whole shell session), else it is looked for where
Walrus looks, with `walruspy` for `walrus`: `./client_config.yaml|yml`,
`$XDG_CONFIG_HOME/walruspy/`, `~/.config/walruspy/`, `~/.walruspy/`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from walruspy.backoff import Backoff
from walruspy.chain.api import DeploymentError
from walruspy.chain.deploy import Deployment
from walruspy.client.errors import ConfigError

#: The environment variable naming the configuration file used without `--config`.
CONFIG_ENV_VAR = "WALRUSPY_CONFIG"
#: The file names looked for in each default directory, in order.
CONFIG_FILE_NAMES = ("client_config.yaml", "client_config.yml")
#: The largest configuration file read; a real one is a few kilobytes.
MAX_CONFIG_BYTES = 1 << 20
#: Most contexts and RPC URLs one file may list (a guard against a runaway generated file).
MAX_CONTEXTS = 256
MAX_RPC_URLS = 16
#: Length of an EVM private key.
WALLET_KEY_BYTES = 32
#: The default context name of a file without `contexts`.
DEFAULT_CONTEXT_NAME = "default"
_GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Retries of a node request that may succeed later (NOT_REGISTERED, 429, 503)."""

    #: Our nodes poll the chain every 0.4 s, so a fresh registration is usually seen within half
    #: a second: starting at 0.1 s and doubling finds it within a poll or two (Walrus starts at
    #: 1 s, for Sui checkpoints).
    min_backoff_s: float = 0.1
    #: A cap that keeps a retrying upload responsive once the node catches up.
    max_backoff_s: float = 2.0
    #: 0.1 + 0.2 + ... + 2 + 2: about 11 s of retrying, longer than a node's catch-up after a
    #: restart but short of the upload's own bound (Walrus retries 5 times at 1-30 s).
    max_retries: int = 9

    def __post_init__(self) -> None:
        if not 0 < self.min_backoff_s <= self.max_backoff_s:
            raise ConfigError(
                f"min_backoff_s ({self.min_backoff_s}) must be positive and at most "
                f"max_backoff_s ({self.max_backoff_s})"
            )

    @property
    def policy(self) -> Backoff:
        """These bounds as the one retry policy (`walruspy.backoff`)."""
        return Backoff(self.min_backoff_s, self.max_backoff_s, self.max_retries)

    def delay_s(self, attempt: int) -> float:
        """The delay before retry `attempt` (0-based): doubling from min, capped at max."""
        return self.policy.delay_s(attempt)


@dataclass(frozen=True, slots=True)
class CommunicationConfig:
    """How the client talks to storage nodes: concurrency, sizes and time limits."""

    #: Sliver uploads in flight over all nodes. Enough to keep every node of a 100-shard committee
    #: busy on both slivers of a shard; the byte limit below bounds the memory they hold.
    max_concurrent_writes: int = 200
    #: Bytes of sliver data in flight in uploads (each also exists once more as its request
    #: body). Walrus's `balanced` upload mode allows about 125 MB.
    max_data_in_flight_bytes: int = 125_000_000
    #: Requests in flight to one node at a time (Walrus's `max_node_connections: 10`).
    max_node_connections: int = 10
    #: Sliver requests in flight in a read; None means n - 2f, the number a read needs, as in
    #: Walrus: one round trip when every node answers.
    max_concurrent_sliver_reads: int | None = None
    #: Nodes asked for metadata at a time; the first valid answer ends it (Walrus: 3).
    max_concurrent_metadata_reads: int = 3
    #: Nodes asked for a blob status at a time; None means all of them (Walrus's default).
    max_concurrent_status_reads: int | None = None
    #: The total time of one HTTP request to a node (Walrus's `total_timeout_millis: 300000`).
    request_timeout_s: float = 300.0
    #: How long a status fan-out waits for a quorum of answers before it decides with what came
    #: (Walrus's CLI: 1 s, with retries; we ask once, so we wait longer).
    status_timeout_s: float = 5.0
    #: The longest the upload phase of one store may take: 1 GiB (max_blob_bytes) encodes to
    #: ~4.9 GB at n = 1000, an hour is 1.4 MB/s, below any link we expect to use.
    store_timeout_s: float = 3600.0
    #: The longest the sliver phase of one read may take (a read moves ~1/3 of a store's bytes).
    read_timeout_s: float = 1200.0
    #: After the quorum, uploads to slower nodes continue for factor x (time to quorum) + base,
    #: so more honest nodes get their slivers directly (Walrus's `sliver_write_extra_time`).
    sliver_write_extra_time_factor: float = 0.5
    sliver_write_extra_time_base_s: float = 0.5
    #: Largest blob stored or read: the whole blob and its encoding are held in memory (about
    #: 5.5x the blob while storing). Walrus caps a store's total at 1 GiB (`max_total_blob_size`).
    max_blob_bytes: int = _GIB
    #: Retries of NOT_REGISTERED and overload answers.
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    #: Upload a small blob while its registration is on its way, marked `pending=true`: nodes
    #: verify and hold it until they see the registration (Walrus's `pending_uploads_enabled`).
    pending_uploads: bool = True
    #: The largest blob uploaded so (Walrus's `optimistic_upload_max_blob_bytes`).
    pending_upload_max_blob_bytes: int = 4 << 20
    #: How long a confirmation request may wait at the node for the blob's registration
    #: (Walrus's `confirmation_long_poll_millis`; the node bounds it; 0: not at all).
    confirmation_long_poll_ms: int = 2000

    def linger_s(self, time_to_quorum_s: float) -> float:
        """The extra upload time after the quorum was reached."""
        return (
            self.sliver_write_extra_time_factor * time_to_quorum_s
            + self.sliver_write_extra_time_base_s
        )


@dataclass(frozen=True, slots=True)
class ContextConfig:
    """One network: its chain, its deployment, the wallet and the communication limits."""

    name: str
    rpc_urls: tuple[str, ...]
    deployment: Deployment
    wallet_key_path: Path | None = None
    communication: CommunicationConfig = field(default_factory=CommunicationConfig)
    #: Encoder worker processes; None means one per core but one (walruspy.workers), 0 encodes
    #: on a thread of this process only.
    encoder_workers: int | None = None
    #: Blocks that must follow a transaction's before the client relies on it (a store reports
    #: its blob certified only then). 0 suits the devchain and anvil; a public chain wants its
    #: finality depth, as the nodes' `chain.confirmations`.
    confirmations: int = 0

    def read_wallet_key(self) -> bytes | None:
        """The wallet's 32-byte private key (a file of hex), or None without a wallet."""
        path = self.wallet_key_path
        if path is None:
            return None
        where = f"contexts.{self.name}.wallet_key_path"
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from exc
        try:
            key = bytes.fromhex(text.strip().removeprefix("0x"))
        except ValueError:
            raise ConfigError(f"{where}: {path} does not hold a hex private key") from None
        if len(key) != WALLET_KEY_BYTES:
            raise ConfigError(
                f"{where}: {path} holds {len(key)} bytes, a private key has {WALLET_KEY_BYTES}"
            )
        return key


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A whole configuration file: its contexts and which one is the default."""

    contexts: Mapping[str, ContextConfig]
    default_context: str
    source: Path | None = None

    def context(self, name: str | None = None) -> ContextConfig:
        """The context `name`, or the default one."""
        chosen = name or self.default_context
        found = self.contexts.get(chosen)
        if found is None:
            known = ", ".join(sorted(self.contexts))
            where = f" in {self.source}" if self.source else ""
            raise ConfigError(f"no context {chosen!r}{where}; contexts: {known}")
        return found


# --- locating and loading -----------------------------------------------------------------------


def default_config_dirs() -> list[Path]:
    """Walrus's search path with `walruspy`: ., $XDG_CONFIG_HOME, ~/.config, ~/."""
    dirs = [Path.cwd()]
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        dirs.append(Path(xdg) / "walruspy")
    home = Path.home()
    dirs += [home / ".config" / "walruspy", home / ".walruspy"]
    return dirs


def find_config_file(dirs: Sequence[Path] | None = None) -> Path:
    """The first configuration file in the default locations."""
    searched = list(dirs) if dirs is not None else default_config_dirs()
    for directory in searched:
        for name in CONFIG_FILE_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    where = ", ".join(str(d) for d in searched)
    raise ConfigError(
        f"no client configuration found (looked for {' or '.join(CONFIG_FILE_NAMES)} in "
        f"{where}); pass --config FILE or set {CONFIG_ENV_VAR}"
    )


def load_config(path: str | os.PathLike[str] | None = None) -> ClientConfig:
    """Read and validate a configuration file (the default locations without `path`).

    The CLI's `--config` is this `path`, and its defaults are these: the file
    `$WALRUSPY_CONFIG` names, else the first file found in `default_config_dirs()`.
    """
    if path is None and os.environ.get(CONFIG_ENV_VAR):
        path = Path(os.environ[CONFIG_ENV_VAR]).expanduser()
    path = Path(path) if path is not None else find_config_file()
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the client configuration {path}: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, path.resolve().parent, source=path)


def parse_config(
    data: object, base_dir: str | os.PathLike[str], source: str | os.PathLike[str] | None = None
) -> ClientConfig:
    """Validate an already parsed configuration; relative paths are taken from `base_dir`."""
    base_dir = Path(base_dir)
    source = Path(source) if source is not None else None
    top = _Fields(data, "", base_dir)
    if top.has("contexts"):
        contexts_raw = top.mapping("contexts")
        if not contexts_raw:
            raise ConfigError("contexts must list at least one context")
        if len(contexts_raw) > MAX_CONTEXTS:
            raise ConfigError(f"contexts: more than {MAX_CONTEXTS} contexts")
        contexts = {}
        for name, body in contexts_raw.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"contexts: a context name must be a string, got {name!r}")
            contexts[name] = _parse_context(name, _Fields(body, f"contexts.{name}", base_dir))
        default = top.text("default_context", next(iter(contexts)))
        if default not in contexts:
            raise ConfigError(f"default_context {default!r} is not one of the contexts")
        top.done()
        return ClientConfig(contexts, default, source)
    context = _parse_context(DEFAULT_CONTEXT_NAME, top)
    return ClientConfig({DEFAULT_CONTEXT_NAME: context}, DEFAULT_CONTEXT_NAME, source)


def _parse_context(name: str, fields: _Fields) -> ContextConfig:
    rpc_urls = _rpc_urls(fields)
    deployment = _deployment(fields)
    wallet = fields.path("wallet_key_path") if fields.has("wallet_key_path") else None
    workers = fields.optional_integer("encoder_workers", 0, 1024)
    confirmations = fields.integer("confirmations", 0, 0, 10_000)
    communication = _communication(fields.section("communication"))
    fields.done()
    return ContextConfig(name, rpc_urls, deployment, wallet, communication, workers, confirmations)


def _rpc_urls(fields: _Fields) -> tuple[str, ...]:
    if fields.has("rpc_url") and fields.has("rpc_urls"):
        raise ConfigError(f"{fields.name('rpc_url')}: give rpc_url or rpc_urls, not both")
    if fields.has("rpc_url"):
        urls = [fields.text("rpc_url")]
    else:
        urls = fields.text_list("rpc_urls", MAX_RPC_URLS)
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{fields.name('rpc_urls')}: {url!r} is not an http(s) URL")
    return tuple(urls)


def _deployment(fields: _Fields) -> Deployment:
    where = fields.name("deployment")
    value = fields.get("deployment")
    if isinstance(value, dict):
        try:
            return Deployment.from_json(value, where)
        except DeploymentError as exc:
            raise ConfigError(str(exc)) from exc  # its message starts with `where`
    if isinstance(value, str) and value.strip():
        try:
            return Deployment.load(fields.path("deployment"))
        except DeploymentError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    if value is None:
        raise ConfigError(f"{where} is required (a deployment file's path, or its object inline)")
    raise ConfigError(f"{where} must be a path or a mapping, got {_kind(value)}")


def _communication(fields: _Fields) -> CommunicationConfig:
    d = CommunicationConfig()
    extra = fields.section("sliver_write_extra_time")
    factor = extra.number("factor", d.sliver_write_extra_time_factor, 0.0, 10.0)
    base_s = extra.number("base_s", d.sliver_write_extra_time_base_s, 0.0, 600.0)
    extra.done()
    backoff_fields = fields.section("backoff")
    b = BackoffConfig()
    min_s = backoff_fields.number("min_backoff_s", b.min_backoff_s, 0.001, 3600.0)
    max_s = backoff_fields.number("max_backoff_s", b.max_backoff_s, 0.001, 3600.0)
    retries = backoff_fields.integer("max_retries", b.max_retries, 0, 100)
    if min_s > max_s:
        raise ConfigError(f"{backoff_fields.name('min_backoff_s')} exceeds max_backoff_s")
    backoff_fields.done()
    integer, optional, number = fields.integer, fields.optional_integer, fields.number
    config = CommunicationConfig(
        max_concurrent_writes=integer("max_concurrent_writes", d.max_concurrent_writes, 1, 10**5),
        max_data_in_flight_bytes=integer(
            "max_data_in_flight_bytes", d.max_data_in_flight_bytes, 1 << 16, 1 << 40
        ),
        max_node_connections=integer("max_node_connections", d.max_node_connections, 1, 1000),
        max_concurrent_sliver_reads=optional("max_concurrent_sliver_reads", 1, 10**5),
        max_concurrent_metadata_reads=integer(
            "max_concurrent_metadata_reads", d.max_concurrent_metadata_reads, 1, 1000
        ),
        max_concurrent_status_reads=optional("max_concurrent_status_reads", 1, 10**5),
        request_timeout_s=number("request_timeout_s", d.request_timeout_s, 0.01, 86_400.0),
        status_timeout_s=number("status_timeout_s", d.status_timeout_s, 0.01, 3600.0),
        store_timeout_s=number("store_timeout_s", d.store_timeout_s, 0.01, 86_400.0),
        read_timeout_s=number("read_timeout_s", d.read_timeout_s, 0.01, 86_400.0),
        sliver_write_extra_time_factor=factor,
        sliver_write_extra_time_base_s=base_s,
        max_blob_bytes=integer("max_blob_bytes", d.max_blob_bytes, 0, 1 << 44),
        backoff=BackoffConfig(min_s, max_s, retries),
        pending_uploads=fields.flag("pending_uploads_enabled", d.pending_uploads),
        pending_upload_max_blob_bytes=integer(
            "optimistic_upload_max_blob_bytes", d.pending_upload_max_blob_bytes, 0, 1 << 44
        ),
        confirmation_long_poll_ms=integer(
            "confirmation_long_poll_millis", d.confirmation_long_poll_ms, 0, 600_000
        ),
    )
    fields.done()
    return config


class _Fields:
    """One mapping of the file, read field by field; `done` refuses the keys nobody read."""

    def __init__(self, raw: object, where: str, base_dir: Path) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where or 'the configuration'} must be a mapping, got {_kind(raw)}")
        self._raw: dict[Any, Any] = raw
        self._where = where
        self._base = base_dir
        self._seen: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def has(self, key: str) -> bool:
        self._seen.add(key)
        return self._raw.get(key) is not None

    def get(self, key: str) -> Any:
        self._seen.add(key)
        return self._raw.get(key)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.get(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self.name(key)} is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.name(key)} must be a non-empty string, got {value!r}")
        return value

    def text_list(self, key: str, max_items: int) -> list[str]:
        value = self.get(key)
        if value is None:
            raise ConfigError(f"{self.name(key)} is required")
        if not isinstance(value, list) or not value or len(value) > max_items:
            raise ConfigError(f"{self.name(key)} must be a list of 1 to {max_items} strings")
        if not all(isinstance(item, str) and item.strip() for item in value):
            raise ConfigError(f"{self.name(key)} must hold non-empty strings, got {value!r}")
        return list(value)

    def mapping(self, key: str) -> dict[Any, Any]:
        value = self.get(key)
        if not isinstance(value, dict):
            raise ConfigError(f"{self.name(key)} must be a mapping, got {_kind(value)}")
        return value

    def path(self, key: str) -> Path:
        path = Path(self.text(key)).expanduser()
        return path if path.is_absolute() else self._base / path

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{self.name(key)} must be an integer in [{low}, {high}]: {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.name(key)} must be true or false, got {value!r}")
        return value

    def optional_integer(self, key: str, low: int, high: int) -> int | None:
        if self.get(key) is None:
            return None
        return self.integer(key, 0, low, high)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.get(key)
        if value is None:
            return default
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(f"{self.name(key)} must be a number in [{low}, {high}]: {value!r}")
        return float(value)

    def section(self, key: str) -> _Fields:
        return _Fields(self.get(key), self.name(key), self._base)

    def done(self) -> None:
        unknown = sorted(str(k) for k in self._raw if k not in self._seen)
        if unknown:
            raise ConfigError(f"unknown field {self.name(unknown[0])}")


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
