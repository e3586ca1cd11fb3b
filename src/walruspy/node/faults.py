"""Fault injection for tests and devnets: a storage node that keeps less than it promised.

Theory of operation (storage challenges, node/challenges.py). To show that challenges catch a node
that acknowledges slivers and then throws them away, a node can be told to misbehave through a
small JSON file, `{"mode": "discard"}`, named by the node configuration's `fault_file` (the devnet
sets one per node; `walruspy devnet fault` writes it). The node reads the file again whenever its
modification time changes, so a fault is switched on and off without a restart:

* `none`: honest (also when the file is missing).
* `discard`: every second the node deletes its slivers of every certified blob (it keeps the
  metadata, so it still answers for the blob and can verify others), and never recovers them:
  blob sync skips every blob.
* `fetch-at-challenge`: the same, but when a storage challenge starts the node tries to recover
  the blobs of its own sample from its peers, as a node that hopes to fetch what it dropped in
  time would; honest peers withhold those symbols during the challenge. Whatever it gets back
  it drops again once that challenge's epoch is over.

Nothing here runs unless a `fault_file` is configured.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from walruspy.logs import get_logger
from walruspy.node.storage import NodeStorage
from walruspy.node.view import NodeState

log = get_logger("walruspy.node.faults")

#: How often a faulty node drops the slivers it received since the last pass.
DISCARD_INTERVAL_S: Final = 1.0
#: A fault file larger than this is not one.
MAX_FAULT_FILE_BYTES: Final = 4096


class FaultMode(enum.Enum):
    """How the node misbehaves (module docstring)."""

    NONE = "none"
    DISCARD = "discard"
    FETCH_AT_CHALLENGE = "fetch-at-challenge"


def write_fault(path: Path, mode: FaultMode) -> None:
    """Set the fault of the node whose `fault_file` is `path` (atomically: write, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"mode": mode.value}) + "\n")
    os.replace(tmp, path)


def read_fault(path: Path) -> FaultMode:
    """The fault a file sets; a missing file is `NONE`; a malformed one is a ValueError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return FaultMode.NONE
    if len(raw) > MAX_FAULT_FILE_BYTES:
        raise ValueError(f"fault file {path} is larger than {MAX_FAULT_FILE_BYTES} bytes")
    try:
        data = json.loads(raw)
        return FaultMode(data["mode"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f'fault file {path}: expected {{"mode": ...}}: {exc}') from exc


class Faults:
    """The node's current fault, read from its fault file when that changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mode = FaultMode.NONE
        self._seen: tuple[int, int] | None = None
        #: Blobs a `fetch-at-challenge` node may recover (its challenge sample), and the epoch
        #: of that challenge: afterwards it drops them again, as before.
        self.allowed: frozenset[bytes] = frozenset()
        self.allowed_epoch: int | None = None

    @property
    def mode(self) -> FaultMode:
        """The fault now (the file is read again only after it changed)."""
        if self.path is None:
            return FaultMode.NONE
        try:
            stat = self.path.stat()
            seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            seen = None
        if seen != self._seen:
            self._seen = seen
            try:
                mode = read_fault(self.path)
            except (OSError, ValueError) as exc:
                log.error("unreadable fault file; keeping the fault as it was", error=str(exc))
                return self._mode
            if mode is not self._mode:
                log.warning("fault injection", mode=mode.value)
            self._mode = mode
        return self._mode

    def blocks_sync(self, blob_id: bytes) -> bool:
        """Whether blob sync must leave `blob_id` alone (the node never recovers its data)."""
        mode = self.mode
        if mode is FaultMode.DISCARD:
            return True
        return mode is FaultMode.FETCH_AT_CHALLENGE and (
            blob_id not in self.allowed or self.allowed_epoch is None
        )

    async def challenge_started(
        self, storage: NodeStorage, state: NodeState, own_sample: Iterable[bytes]
    ) -> list[bytes]:
        """A challenge began: a faulty node first drops whatever it holds (a sync of an earlier
        challenge may have brought some back), then a `fetch-at-challenge` node returns the
        blobs it now tries to recover."""
        if self.mode is FaultMode.NONE:
            return []
        self.allowed, self.allowed_epoch = frozenset(), None
        await self.discard(storage, state)
        if self.mode is not FaultMode.FETCH_AT_CHALLENGE:
            return []
        self.allowed, self.allowed_epoch = frozenset(own_sample), state.view.epoch
        return sorted(self.allowed)

    async def discard(self, storage: NodeStorage, state: NodeState) -> int:
        """Drop this node's slivers of every certified blob it may not keep; how many."""
        epoch = state.view.epoch
        if self.allowed_epoch != epoch:  # the challenge that allowed them is over
            self.allowed, self.allowed_epoch = frozenset(), None
        dropped = 0
        for blob_id in await storage.certified_blob_ids(epoch):
            if blob_id not in self.allowed:
                dropped += await asyncio.to_thread(storage.store.delete_slivers, blob_id)
        if dropped:
            log.warning("fault injection: slivers discarded", slivers=dropped)
        return dropped

    async def run(self, storage: NodeStorage, state: NodeState) -> None:
        """Drop the slivers of certified blobs while a fault says so (until cancelled)."""
        if self.path is None:
            return
        while True:
            if self.mode is not FaultMode.NONE:
                await self.discard(storage, state)
            await asyncio.sleep(DISCARD_INTERVAL_S)
