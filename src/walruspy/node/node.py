"""`StorageNode`: one storage node's tasks under one TaskGroup, and the entry points that run it.

Theory of operation (spec/walrus-system.md section 3; STYLE.md 6). `StorageNode.run()`:

1. opens the LMDB store and assembles the node's parts, here and nowhere else: the typed storage
   gateway (`storage.NodeStorage`) every part reads and writes through, the committee view
   (`view.CommitteeViews`) that only the epoch code (`epoch.EpochChanges`) publishes, the request
   handler (`service.NodeService`), and the workers, each given the narrow dependencies it uses.
   It reads the current and previous committees from the chain, installs the view (deciding the
   shard changes since the node last ran: shards to sync, lock or delete), marks itself Active,
   or RecoveryCatchUp when it has not seen the current epoch begin, and completes any garbage
   collection a crash interrupted;
2. starts the REST API (`api.NodeApi`) on its address (or a socket the caller bound), behind
   the guard against slow and greedy clients (`walruspy.node_api.connection_guard`), over TLS
   with a certificate for its network key when it has one (`tls_context`,
   `walruspy.node_api.tls`);
3. opens one `asyncio.TaskGroup` for the event processor, the blob-sync workers, the
   invalidation workers (which post the certificate of a blob that sync found inconsistent), the
   shard syncer (which transfers gained shards once the missed events are replayed), the
   epoch-sync reporter (which tells the chain once the node holds its shards of a new epoch),
   the scrubber (`scrub.Scrubber`: checks every stored record at a bounded rate and hands what
   fails its checksum to blob sync) and the epoch-change driver; `ready` is set once the API
   serves, the event processor has reached the end of the chain's event stream once, and the
   first scan has queued the recovery of every certified blob with missing data, so a ready
   node answers with up-to-date records;
4. on cancellation (SIGTERM or Ctrl-C in `main`, or the caller's `task.cancel()`), the TaskGroup
   cancels every task, the API stops, and the store closes: every write acknowledged before was
   synced to disk, so nothing is lost.

The simulator (issue #16, `walruspy.sim`) runs nodes without sockets: `listen` serves the API
runner on its network instead of a site (it returns the node's URL), and `session`, lent to every
worker that calls peers, carries those calls over it.

Start-up check (`store_integrity.check_data_file`): a truncated LMDB data file would kill the
process with SIGBUS once mapped, so it is refused first with one line naming the file, the damage
and the remedy. With `rebuild_store` (`--rebuild-store`) a damaged store is moved aside (kept,
never deleted) and the node starts empty: it replays the chain's events and its sync scan
recovers every certified blob of its shards from the peers (spec/walrus-system.md 3.4).

`run_from_config` is what `walruspy node run --config FILE` does: load and validate the
configuration and keys, connect to the chain named by the deployment file (`walruspy.chain.evm`),
and run the node until a signal arrives. `keygen` is re-exported from `keys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from walruspy.chain.api import ChainWriter
from walruspy.clock import wall
from walruspy.core import blake2_batch
from walruspy.core.crypto import BlsPrivateKey
from walruspy.logs import get_logger
from walruspy.node.api import NodeApi
from walruspy.node.challenges import Challenges, ChallengeStarter, ChallengeWorker
from walruspy.node.config import NodeConfig, load_config
from walruspy.node.epoch import EpochChangeDriver, EpochChanges, EpochSyncReporter, retry_chain
from walruspy.node.errors import ConfigError
from walruspy.node.events import EventProcessor
from walruspy.node.faults import Faults
from walruspy.node.gc import GarbageCollector
from walruspy.node.invalidation import Invalidator
from walruspy.node.keys import keygen, load_protocol_key, load_wallet_key
from walruspy.node.metrics import NodeMetrics
from walruspy.node.recovery import BlobSyncer
from walruspy.node.scrub import Scrubber
from walruspy.node.service import NodeService
from walruspy.node.shard_sync import ShardSyncer
from walruspy.node.storage import NodeStorage
from walruspy.node.store import NodeStore, StoreConfig
from walruspy.node.store_integrity import StoreDamagedError, check_data_file, move_aside
from walruspy.node.store_records import NodeStatus, NodeStatusKind
from walruspy.node.symbols import SymbolService
from walruspy.node.view import CommitteeView, CommitteeViews, NodeState, RegistrationWaiters
from walruspy.node_api.connection_guard import GuardedAppRunner
from walruspy.node_api.tls import node_server_context
from walruspy.node_api.waiting import serve_unavailable

__all__ = ["StorageNode", "keygen", "run_from_config"]

log = get_logger("walruspy.node")

#: Time in-flight requests get to finish when the node stops. Walrus waits 60 s; a storage
#: request either finishes within seconds or the client retries elsewhere.
GRACEFUL_SHUTDOWN_S = 5.0
#: After refusing an oversized body, the server reads and drops the rest for up to this long so
#: the client can read the refusal before the connection closes (aiohttp's default is 10 s,
#: which a slow sender could use to hold a connection).
LINGERING_TIME_S = 1.0


class StorageNode:
    """A storage node; `await run()` serves until cancelled. See the module docstring."""

    def __init__(
        self,
        config: NodeConfig,
        chain: ChainWriter,
        protocol_key: BlsPrivateKey,
        *,
        sock: socket.socket | None = None,
        clock: Callable[[], float] = wall,
        rng: random.Random | None = None,
        rebuild_store: bool = False,
        listen: Callable[[web.BaseRunner], Awaitable[str]] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self._listen = listen
        self._session = session
        self._rebuild_store = rebuild_store
        self.chain = chain
        self.protocol_key = protocol_key
        self.public_key = protocol_key.public_key()
        self.ready = asyncio.Event()
        self.url: str | None = None
        self._sock = sock
        self._clock = clock
        self._rng = rng
        # Set by run(), for tests and the devnet to look inside.
        self.store: NodeStore | None = None
        self.service: NodeService | None = None
        self.processor: EventProcessor | None = None
        self.syncer: BlobSyncer | None = None
        self.invalidator: Invalidator | None = None
        self.reporter: EpochSyncReporter | None = None
        self.shard_syncer: ShardSyncer | None = None
        self.scrubber: Scrubber | None = None
        self.epochs: EpochChanges | None = None
        #: At start the node had not seen the current epoch begin: it catches up first.
        self.catching_up = False
        self.api: NodeApi | None = None
        self.challenges: Challenges | None = None
        self.faults = Faults(None)

    async def wait_ready(self) -> None:
        """Wait until the node serves and has caught up with the chain once."""
        await self.ready.wait()

    async def run(self) -> None:
        """Run the node until cancelled."""
        # Every sliver it takes or serves is hashed: the compiled loop loads meanwhile.
        blake2_batch.warm_in_background()
        store_config = StoreConfig(self.config.storage_path)
        store = await asyncio.to_thread(open_store, store_config, self._rebuild_store)
        self.store = store
        try:
            await self._run_with(store)
        finally:
            self.ready.clear()
            await asyncio.to_thread(store.close)

    async def _run_with(self, store: NodeStore) -> None:
        """Assemble the node's parts (the one place that does) and serve."""
        config = self.config
        backoff = config.chain.backoff
        committees = await retry_chain(
            self.chain.epoch_committees, backoff, what="committee", max_attempts=None
        )
        metrics = NodeMetrics()
        view = CommitteeView.of(committees.current, self.public_key, committees.previous)
        if not view.is_member:
            log.warning("this node's key is not in the committee; it owns no shard")
        # The view is published by `epochs` only; every other part reads it through `state`.
        state = NodeState(CommitteeViews(view), self.public_key)
        storage = NodeStorage(store, state, metrics)
        registrations = RegistrationWaiters(config.limits.max_long_polls)
        key = self.protocol_key
        self.service = NodeService(
            storage, key, state, metrics, config.limits, registrations=registrations
        )
        self.invalidator = Invalidator(
            storage,
            state,
            metrics,
            key,
            self.chain,
            config=config.blob_recovery,
            chain_config=config.chain,
            rng=self._rng,
            session=self._session,
        )
        self.faults = Faults(config.fault_file)
        self.syncer = BlobSyncer(
            storage,
            state,
            metrics,
            config.blob_recovery,
            self.invalidator,
            rng=self._rng,
            faults=self.faults,
            session=self._session,
        )
        syncer = self.syncer
        self.scrubber = Scrubber(
            store, metrics, config.scrub, lambda blob_id: syncer.start_sync(blob_id, defer=False)
        )
        self.shard_syncer = ShardSyncer(
            storage,
            state,
            metrics,
            key,
            config.shard_sync,
            fetch_metadata=self.syncer.fetch_metadata,
            session=self._session,
        )
        gc = GarbageCollector(store, metrics, config.epoch.enable_data_deletion)
        epochs = EpochChanges(
            self.chain,
            storage,
            state,
            gc,
            metrics,
            shard_syncer=self.shard_syncer,
            backoff=backoff,
        )
        self.epochs = epochs
        self.reporter = EpochSyncReporter(
            self.chain,
            state,
            storage,
            self.syncer,
            metrics,
            shard_syncer=self.shard_syncer,
            backoff=backoff,
        )
        state.views.subscribe(self.reporter.epoch_started)
        # Behind: the node has not seen the current epoch start (it was away, or is new). It
        # replays the events it missed before it syncs shards, and says so (Walrus's catch-up).
        last_gc = (await asyncio.to_thread(store.gc_progress)).last_completed_epoch
        self.catching_up = last_gc is None or last_gc < view.epoch
        await epochs.install(committees)
        # Walrus's Standby: a node outside the committee serves what it has, stores nothing new.
        kind = NodeStatusKind.STANDBY
        if view.is_member:
            kind = NodeStatusKind.RECOVERY_CATCH_UP if self.catching_up else NodeStatusKind.ACTIVE
        await storage.set_node_status(NodeStatus(kind))
        await gc.resume()
        self.challenges = Challenges(storage, state, metrics)
        # A challenge of this epoch that started before a restart goes on.
        record = await asyncio.to_thread(store.challenge, view.epoch)
        if record is not None:
            self.challenges.begin(record)
        self.processor = EventProcessor(
            self.chain,
            storage,
            state,
            metrics,
            registrations=registrations,
            syncer=self.syncer,
            epochs=epochs,
            config=config.chain,
            challenges=self.challenges,
            immediate_deletion=config.epoch.enable_immediate_data_deletion,
            flush_pending=self.service.flush_pending,
        )
        self.api = NodeApi(
            self.service,
            SymbolService(
                self.service,
                config.limits.max_concurrent_symbol_requests,
                withheld=self.challenges.refuses_symbols,
            ),
            config.limits.max_body_bytes,
            config.limits.max_concurrent_requests,
            config.metrics_enabled,
            challenges=self.challenges,
        )
        # Guarded against slow and greedy clients (header deadline, minimum body rate, idle
        # timeout, connections per address): `walruspy.node_api.connection_guard`.
        runner = GuardedAppRunner(
            self.api.app,
            config.connections,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=GRACEFUL_SHUTDOWN_S,
            lingering_time=LINGERING_TIME_S,
        )
        await runner.setup()
        try:
            await self._start_site(runner)
            await self._run_tasks(metrics)
        finally:
            await runner.cleanup()

    async def _start_site(self, runner: web.AppRunner) -> None:
        if self._listen is not None:
            self.url = await self._listen(runner)
            log.info("node API serving", url=self.url, name=self.config.name)
            return
        site: web.BaseSite
        context = await asyncio.to_thread(tls_context, self.config)
        if self._sock is not None:
            site = web.SockSite(runner, self._sock, ssl_context=context)
        else:
            host, port = self.config.rest_api_host, self.config.rest_api_port
            site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=context)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"{'https' if context is not None else 'http'}://{host}:{port}"
        log.info("node API serving", url=self.url, name=self.config.name)

    async def _run_tasks(self, metrics: NodeMetrics) -> None:
        assert self.processor is not None and self.syncer is not None
        assert self.invalidator is not None and self.reporter is not None
        assert self.shard_syncer is not None and self.store is not None
        assert self.scrubber is not None and self.challenges is not None
        assert self.service is not None
        async with asyncio.TaskGroup() as group:
            group.create_task(self.processor.run())
            group.create_task(self.faults.run(self.service.storage, self.service.state))
            group.create_task(
                ChallengeWorker(
                    self.challenges,
                    self.chain,
                    self.service.sign,
                    request_timeout_s=self.config.blob_recovery.sliver_request_timeout_s,
                    session=self._session,
                ).run()
            )
            group.create_task(self.syncer.run())
            group.create_task(self.scrubber.run())
            group.create_task(self.invalidator.run())
            group.create_task(self.shard_syncer.run())
            if self.config.epoch.drive_epoch_change:
                driver = EpochChangeDriver(
                    self.chain, self.config.epoch, metrics, clock=self._clock, rng=self._rng
                )
                group.create_task(driver.run())
                starter = ChallengeStarter(
                    self.chain,
                    self.service.state,
                    check_interval_s=self.config.epoch.check_interval_s,
                    max_jitter_s=self.config.epoch.max_jitter_s,
                    rng=self._rng or random.Random(),  # noqa: S311 - jitter only
                    clock=self._clock,
                )
                group.create_task(starter.run())
            await self.processor.caught_up.wait()
            # The missed events are replayed: now sync what the node owns, then report it.
            self.shard_syncer.enable()
            if self.catching_up and self.service is not None and self.service.state.view.is_member:
                status = NodeStatus(
                    NodeStatusKind.RECOVERY_IN_PROGRESS, recovery_epoch=self.service.state.epoch
                )
                await asyncio.to_thread(self.store.set_node_status, status)
            group.create_task(self.reporter.run())
            await self.syncer.scanned.wait()
            self.ready.set()
            log.info("node ready", epoch=self.service.state.epoch if self.service else None)


def open_store(config: StoreConfig, rebuild: bool = False) -> NodeStore:
    """Open the node's store; with `rebuild`, move a damaged one aside and start empty."""
    try:
        return NodeStore.open(config)
    except StoreDamagedError as exc:
        if not rebuild:
            raise
        moved = move_aside(config.path)
        log.warning(
            "the store is damaged; moved it aside and starting empty, to recover from the peers",
            damage=str(exc),
            moved_to=str(moved),
        )
        return NodeStore.open(config)


def tls_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The REST API's TLS context (node_api/tls.py), or None for plain HTTP: a configured
    certificate, else one made now for the host of `public_url` from the network key."""
    if not config.serves_tls:
        return None
    assert config.network_key_path is not None
    host = urlsplit(config.public_url).hostname or config.rest_api_host
    try:
        return node_server_context(config.network_key_path, host, config.tls.certificate_path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tls: {exc}") from exc


async def run_from_config(config_path: Path, rebuild_store: bool = False) -> None:
    """`walruspy node run --config FILE [--rebuild-store]`: run a node until SIGTERM or SIGINT."""
    from walruspy.chain.api import DeploymentError
    from walruspy.chain.deploy import Deployment
    from walruspy.chain.evm import open_evm_chain_when_up

    config = load_config(config_path)
    if not rebuild_store:
        # Before anything else (the chain may be down): a damaged store is one line and exit 1.
        await asyncio.to_thread(check_data_file, config.storage_path)
    protocol_key = load_protocol_key(config.protocol_key_path)
    wallet_key = load_wallet_key(config.wallet_key_path)
    try:
        deployment = Deployment.load(config.chain.deployment_file)
    except DeploymentError as exc:
        raise ConfigError(f"chain.deployment_file: {exc}") from exc
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        # Started before its chain (a full restart brings everything up at once), the node
        # waits for it, then reads the committee, waiting as long as that takes too.
        opener = open_evm_chain_when_up(
            [config.chain.rpc_url],
            deployment,
            wallet_key,
            confirmations=config.chain.confirmations,
        )
        async with contextlib.AsyncExitStack() as stack:
            # Meanwhile its REST address answers 503 "waiting for the chain", health included.
            placeholder = contextlib.AsyncExitStack()
            await placeholder.enter_async_context(
                serve_unavailable(
                    config.rest_api_host,
                    config.rest_api_port,
                    f"storage node {config.name} is waiting for its chain at"
                    f" {config.chain.rpc_url}",
                    await asyncio.to_thread(tls_context, config),
                )
            )
            try:
                chain = await stack.enter_async_context(opener)
            finally:
                await placeholder.aclose()
            node = StorageNode(config, chain, protocol_key, rebuild_store=rebuild_store)
            with contextlib.suppress(asyncio.CancelledError):
                await node.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
