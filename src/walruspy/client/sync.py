"""`walruspy.Client`: the async client, driven from synchronous code (scripts, notebooks).

Theory of operation. The client is async (`open_client` yields a `WalrusClient`); a script or
a notebook cell wants a plain call, as boto3 gives. `Client` is a wrapper, not a second
implementation: it starts one thread that runs an asyncio event loop, opens the async client on
that loop (`walruspy.client.open_client`, looked up at each opening, for the configuration the
CLI would read), and each of its methods hands one coroutine of that client to the loop and
waits for its result (`_LoopThread.wait`). So:

- an operation behaves exactly as the async one: same arguments (paths as `str` or
  `os.PathLike`, deletable by default as the CLI), same results (object IDs as `0x` text), and
  its exceptions propagate unchanged, of the same type;
- methods may be called from several threads at once; the operations then run concurrently on
  the loop, as concurrent tasks of one async client would (progress and `on_registered`
  callbacks run on the loop thread and must return at once);
- a KeyboardInterrupt (Ctrl-C) while waiting cancels the operation on the loop, then propagates;
- `close()` (or leaving `with Client(...) as client:`) lets the async client close its chain
  connection, HTTP session and encoder workers, then stops the loop and joins the thread. Calls
  after that raise `ClientClosedError`. A client dropped unclosed is closed when it is garbage
  collected, or at interpreter exit.

One task on the loop owns the async client from opening to closing (`_LoopThread._own`), so the
client's context managers are entered and left in the same task.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import walruspy.client
from walruspy.chain.api import BlobAttribute, BlobRecord, SharedBlobRecord
from walruspy.client.client import BlobData, FilePath, WalrusClient
from walruspy.client.config import ClientConfig, ContextConfig, load_config
from walruspy.client.errors import ClientClosedError
from walruspy.client.quilts import QuiltListing, QuiltRead, QuiltStoreResult
from walruspy.client.read import ByteRange
from walruspy.client.results import (
    DeleteResult,
    ExtendResult,
    NetworkInfo,
    ProgressCallback,
    RangeRead,
    StoreResult,
    VerifiedStatus,
)
from walruspy.core.blob_id import BlobId
from walruspy.core.decoding import ConsistencyCheck
from walruspy.core.quilt import QuiltPatchId, QuiltStoreBlob

__all__ = ["Client", "SyncQuiltClient"]

T = TypeVar("T")

#: How long close() waits for the async client to close and the loop thread to end. Closing
#: stops the encoder workers and the HTTP session, which takes well under a second; the bound
#: only keeps a wedged close from hanging a script's exit.
CLOSE_TIMEOUT_S = 30.0


class _LoopThread:
    """The event-loop thread and the task on it that holds the async client open."""

    def __init__(self, config: ClientConfig | ContextConfig, context: str | None) -> None:
        self._opened: concurrent.futures.Future[WalrusClient] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._owner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # operations running on the loop
        self._exit_error: BaseException | None = None
        self.closed = False
        self._thread = threading.Thread(
            target=self._run, args=(config, context), name="walruspy-client", daemon=True
        )
        self._thread.start()
        try:
            self.client = self._opened.result()
        except BaseException:
            # Opening failed (the error is re-raised here), or was interrupted (Ctrl-C): then
            # the opening is cancelled on the loop.
            self.closed = True
            if self._loop is not None and self._owner is not None:
                with contextlib.suppress(RuntimeError):  # the loop already ended
                    self._loop.call_soon_threadsafe(self._owner.cancel)
            self._thread.join(CLOSE_TIMEOUT_S)
            raise

    def _run(self, config: ClientConfig | ContextConfig, context: str | None) -> None:
        try:
            asyncio.run(self._own(config, context))
        except BaseException as exc:  # handed to the thread that opens or closes
            if not self._opened.done():
                self._opened.set_exception(exc)
            else:
                self._exit_error = exc

    async def _own(self, config: ClientConfig | ContextConfig, context: str | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        self._owner = asyncio.current_task()
        # Looked up now, not imported by name: tests (and callers) may swap the opener.
        async with walruspy.client.open_client(config, context=context) as client:
            self._opened.set_result(client)
            if not self.closed:  # an opening interrupted by Ctrl-C closes at once
                await self._closing.wait()
            # Operations still running (called from other threads) end before the client does.
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for its result (module doc)."""
        loop = self._loop
        if self.closed or loop is None:
            coro.close()
            raise ClientClosedError("this walruspy.Client is closed; open a new one")
        # The future exists before the coroutine is handed over, so a Ctrl-C at any moment of
        # the hand-off can cancel it (run_coroutine_threadsafe returns its future only after
        # scheduling, and an interrupt in between would leave the task running unseen).
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            try:
                loop.call_soon_threadsafe(self._start, coro, future)
            except RuntimeError:  # the loop has ended under us (closed from another thread)
                coro.close()
                raise ClientClosedError("this walruspy.Client is closed; open a new one") from None
            return future.result()
        except KeyboardInterrupt:
            future.cancel()  # the task is cancelled on the loop, or never starts
            raise
        except concurrent.futures.CancelledError:
            if self.closed:
                raise ClientClosedError(
                    "this walruspy.Client was closed while the operation ran"
                ) from None
            raise

    def _start(self, coro: Coroutine[Any, Any, T], future: concurrent.futures.Future[T]) -> None:
        """On the loop: run `coro` as a task whose outcome `future` gets, and which cancelling
        `future` cancels."""
        if future.cancelled() or self.closed:
            coro.close()
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(ClientClosedError("this walruspy.Client is closed"))
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        def settle(done: asyncio.Task[T]) -> None:
            with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled meanwhile
                if done.cancelled():
                    future.cancel()
                elif (error := done.exception()) is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result())

        def cancel(wanted: concurrent.futures.Future[T]) -> None:
            if wanted.cancelled():
                with contextlib.suppress(RuntimeError):  # the loop already ended
                    loop.call_soon_threadsafe(task.cancel)

        task.add_done_callback(settle)
        future.add_done_callback(cancel)

    def stop(self) -> None:
        """Close the async client, stop the loop and join the thread (idempotent)."""
        if self.closed:
            return
        self.closed = True
        loop, closing = self._loop, self._closing
        if loop is not None and closing is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(closing.set)
        if threading.current_thread() is not self._thread:
            self._thread.join(CLOSE_TIMEOUT_S)
            if self._thread.is_alive():
                raise TimeoutError(
                    f"the walruspy.Client's loop thread did not end within {CLOSE_TIMEOUT_S} s"
                )
        error, self._exit_error = self._exit_error, None
        if error is not None:
            raise error


class Client:
    """A synchronous Walrus client: `with walruspy.Client() as client: client.store(path, 5)`.

    `config` is the client configuration file (`str` or `os.PathLike`) or an already loaded
    `ClientConfig`/`ContextConfig`; without it, the first file in the CLI's default locations
    (`walruspy.client.config.default_config_dirs`). `context` picks one of its contexts (the
    default context without it). Opening connects to the chain, so it raises what
    `open_client` raises (`ConfigError`, `ChainUnavailableError`, ...). Each method is the
    `WalrusClient` method of the same name, waited for (module doc).
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | ClientConfig | ContextConfig | None = None,
        *,
        context: str | None = None,
    ) -> None:
        if not isinstance(config, ClientConfig | ContextConfig):
            config = load_config(config)
        self._runner = _LoopThread(config, context)
        self._finalizer = weakref.finalize(self, self._runner.stop)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<walruspy.Client {state}, address={self._runner.client.address}>"

    def close(self) -> None:
        """Close the async client and end the loop thread; later calls raise ClientClosedError.

        Operations still running (from other threads) are cancelled. Closing twice is harmless.
        """
        self._finalizer.detach()
        self._runner.stop()

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._runner.closed

    @property
    def _client(self) -> WalrusClient:
        if self._runner.closed:
            raise ClientClosedError("this walruspy.Client is closed; open a new one")
        return self._runner.client

    @property
    def async_client(self) -> WalrusClient:
        """The `WalrusClient` underneath; its coroutines run only on this client's loop."""
        return self._client

    @property
    def address(self) -> str | None:
        """The wallet's account address, or None for a read-only client."""
        return self._client.address

    @property
    def quilts(self) -> SyncQuiltClient:
        """Quilts: many small blobs stored as one (`WalrusClient.quilts`, waited for)."""
        return SyncQuiltClient(self._runner, self._client)

    def store(
        self,
        data: BlobData | FilePath,
        epochs: int,
        *,
        deletable: bool = True,
        force: bool = False,
        ignore_resources: bool = False,
        progress: ProgressCallback | None = None,
        on_registered: Callable[[BlobRecord], None] | None = None,
        share: bool = False,
    ) -> StoreResult:
        """`WalrusClient.store`: bytes, or the file a `str` or path names; deletable by default."""
        return self._runner.wait(
            self._client.store(
                data,
                epochs,
                deletable=deletable,
                force=force,
                ignore_resources=ignore_resources,
                progress=progress,
                on_registered=on_registered,
                share=share,
            )
        )

    @overload
    def read(
        self,
        blob_id: BlobId | str,
        out: None = None,
        *,
        consistency: ConsistencyCheck = ConsistencyCheck.DEFAULT,
        progress: ProgressCallback | None = None,
    ) -> bytes: ...

    @overload
    def read(
        self,
        blob_id: BlobId | str,
        out: FilePath,
        *,
        consistency: ConsistencyCheck = ConsistencyCheck.DEFAULT,
        progress: ProgressCallback | None = None,
    ) -> int: ...

    def read(
        self,
        blob_id: BlobId | str,
        out: FilePath | None = None,
        *,
        consistency: ConsistencyCheck = ConsistencyCheck.DEFAULT,
        progress: ProgressCallback | None = None,
    ) -> bytes | int:
        """`WalrusClient.read`: the blob's bytes, or with `out` its length, written there."""
        return self._runner.wait(
            self._client.read(blob_id, out, consistency=consistency, progress=progress)
        )

    def read_range(
        self, blob_id: BlobId | str, byte_range: ByteRange | tuple[int, int]
    ) -> RangeRead:
        """`WalrusClient.read_range`: part of a blob, `(start, length)` or a `ByteRange`."""
        return self._runner.wait(self._client.read_range(blob_id, byte_range))

    def blob_status(self, blob_id: BlobId | str) -> VerifiedStatus:
        """`WalrusClient.blob_status`: the status nodes of at least f+1 shards report."""
        return self._runner.wait(self._client.blob_status(blob_id))

    def blob_id_of(self, data: BlobData | FilePath) -> BlobId:
        """`WalrusClient.blob_id_of`: the blob ID of bytes or a file (encoded locally)."""
        return self._runner.wait(self._client.blob_id_of(data))

    def delete(
        self, *, blob_id: BlobId | str | None = None, object_id: bytes | str | None = None
    ) -> DeleteResult:
        """`WalrusClient.delete`: one deletable blob object, or this account's for `blob_id`."""
        return self._runner.wait(self._client.delete(blob_id=blob_id, object_id=object_id))

    def extend(self, object_id: bytes | str, epochs: int, *, shared: bool = False) -> ExtendResult:
        """`WalrusClient.extend`: keep a certified blob object (or, with `shared`, a shared
        blob, from its funds) `epochs` more epochs."""
        return self._runner.wait(self._client.extend(object_id, epochs, shared=shared))

    def share_blob(self, object_id: bytes | str, amount: int = 0) -> str:
        """`WalrusClient.share_blob`: give a blob object up as a shared blob; its ID."""
        return self._runner.wait(self._client.share_blob(object_id, amount))

    def fund_shared_blob(self, shared_blob_id: bytes | str, amount: int) -> int:
        """`WalrusClient.fund_shared_blob`: add FROST to a shared blob; its funds after."""
        return self._runner.wait(self._client.fund_shared_blob(shared_blob_id, amount))

    def shared_blob(self, shared_blob_id: bytes | str) -> SharedBlobRecord:
        """`WalrusClient.shared_blob`: the blob object it wraps and its funds."""
        return self._runner.wait(self._client.shared_blob(shared_blob_id))

    def transfer_blob(self, object_id: bytes | str, to: str) -> None:
        """`WalrusClient.transfer_blob`: give a blob object to the EVM address `to`."""
        return self._runner.wait(self._client.transfer_blob(object_id, to))

    def burn_blobs(self, object_ids: Sequence[bytes | str]) -> list[str]:
        """`WalrusClient.burn_blobs`: drop blob objects (no refund); their IDs as `0x` text."""
        return self._runner.wait(self._client.burn_blobs(object_ids))

    def get_blob_attribute(self, object_id: bytes | str) -> BlobAttribute | None:
        """`WalrusClient.get_blob_attribute`: a blob object's key-value pairs, or None."""
        return self._runner.wait(self._client.get_blob_attribute(object_id))

    def set_blob_attribute(
        self, object_id: bytes | str, pairs: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> None:
        """`WalrusClient.set_blob_attribute`: insert or update pairs (this account's object)."""
        self._runner.wait(self._client.set_blob_attribute(object_id, pairs))

    def remove_blob_attribute_fields(self, object_id: bytes | str, keys: Sequence[str]) -> None:
        """`WalrusClient.remove_blob_attribute_fields`: remove keys, each of which must be there."""
        self._runner.wait(self._client.remove_blob_attribute_fields(object_id, keys))

    def remove_blob_attribute(self, object_id: bytes | str) -> None:
        """`WalrusClient.remove_blob_attribute`: remove the whole attribute."""
        self._runner.wait(self._client.remove_blob_attribute(object_id))

    def list_blobs(self, include_expired: bool = False) -> list[BlobRecord]:
        """`WalrusClient.list_blobs`: this account's blob objects (`object_id_hex` is text)."""
        return self._runner.wait(self._client.list_blobs(include_expired))

    def system_info(self) -> NetworkInfo:
        """`WalrusClient.system_info`: the system's parameters, prices and committee."""
        return self._runner.wait(self._client.system_info())


class SyncQuiltClient:
    """`QuiltClient`'s operations, waited for; `Client.quilts` makes one."""

    def __init__(self, runner: _LoopThread, client: WalrusClient) -> None:
        self._runner = runner
        self._quilts = client.quilts

    def store(
        self,
        blobs: Sequence[QuiltStoreBlob],
        epochs: int,
        *,
        deletable: bool = True,
        force: bool = False,
        ignore_resources: bool = False,
        progress: ProgressCallback | None = None,
        on_registered: Callable[[BlobRecord], None] | None = None,
        share: bool = False,
    ) -> QuiltStoreResult:
        """`QuiltClient.store`: `blobs` as one quilt; deletable by default."""
        return self._runner.wait(
            self._quilts.store(
                blobs,
                epochs,
                deletable=deletable,
                force=force,
                ignore_resources=ignore_resources,
                progress=progress,
                on_registered=on_registered,
                share=share,
            )
        )

    def list_patches(self, quilt_id: BlobId | str) -> QuiltListing:
        """`QuiltClient.list_patches`: the quilt's metadata and index."""
        return self._runner.wait(self._quilts.list_patches(quilt_id))

    def read_by_identifiers(self, quilt_id: BlobId | str, identifiers: Iterable[str]) -> QuiltRead:
        """`QuiltClient.read_by_identifiers`: the patches of those identifiers."""
        return self._runner.wait(self._quilts.read_by_identifiers(quilt_id, identifiers))

    def read_by_tag(self, quilt_id: BlobId | str, key: str, value: str) -> QuiltRead:
        """`QuiltClient.read_by_tag`: the patches whose tag `key` is `value`."""
        return self._runner.wait(self._quilts.read_by_tag(quilt_id, key, value))

    def read_all(self, quilt_id: BlobId | str) -> QuiltRead:
        """`QuiltClient.read_all`: every patch of the quilt."""
        return self._runner.wait(self._quilts.read_all(quilt_id))

    def read_by_ids(self, patch_ids: Iterable[QuiltPatchId | str]) -> QuiltRead:
        """`QuiltClient.read_by_ids`: the patches named by global patch IDs."""
        return self._runner.wait(self._quilts.read_by_ids(patch_ids))
