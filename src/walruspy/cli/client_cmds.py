"""Client commands with Walrus's names: read, blob-status, delete, extend, list-blobs, info
(`store` has its own module, `walruspy.cli.store_cmd`).

Theory of operation (spec/walrus-system.md 4.1). Each command is a synchronous shell around one
async call of `walruspy.client`: it loads the client configuration (`--config FILE`, else the
default locations), opens a client for `--context NAME` (else the file's default context), runs
the operation with `asyncio.run`, and prints the result for people or, under `--json`, as one
JSON object in Walrus's camelCase shapes (`walruspy.client.results`). Errors reach the one
handler of `walruspy.cli.main` and print as one line.

`read` without `--out` writes the blob's bytes to stdout (under `--json`: `{"blobId", "blob":
<base64>}`, as Walrus). Progress bars for encoding, upload and download are drawn on stderr for
blobs of at least `PROGRESS_MIN_BYTES`, only when stderr is a terminal and never under `--json`.
Logs of the library go to stderr at warning level, so they never mix with the output.

`info` is a group that prints the overview itself; its subcommands (`info committee`, in
`walruspy.cli.staking_cmds`) take the same options, or inherit the group's. `client_options` and
`run_client` are shared with the staking commands.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from walruspy.backoff import Backoff
from walruspy.cli.options import MultiValueCommand
from walruspy.cli.output import (
    emit,
    epoch_time_text,
    json_option,
    quiet_library_logs,
    utc_text,
)
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import BlobIdError, InvalidInputError
from walruspy.node_api.paths import format_object_id, parse_object_id

if TYPE_CHECKING:
    from walruspy.chain.api import BlobRecord, SystemInfo
    from walruspy.client import ExtendResult, WalrusClient
    from walruspy.client.results import ProgressEvent, VerifiedStatus

__all__ = [
    "CLIENT_COMMANDS",
    "client_options",
    "epoch_time",
    "info_challenges_command",
    "info_command",
    "run_client",
]

T = TypeVar("T")
#: Blobs below this size finish before a bar could be read; no bars for them.
PROGRESS_MIN_BYTES = 1 << 20
_PHASE_LABELS = {"encode": "Encoding", "upload": "Uploading", "download": "Downloading"}


# --- shared options and plumbing ------------------------------------------------------------


def client_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--config`, `--context` and `--json`, which every client command takes."""
    command = json_option(command)
    command = click.option(
        "--context", "context", default=None, help="Context of the configuration to use."
    )(command)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Client configuration file (default: client_config.yaml in ., "
        "$XDG_CONFIG_HOME/walruspy, ~/.config/walruspy or ~/.walruspy).",
    )(command)


def run_client(
    config_path: Path | None, context: str | None, operation: Callable[[WalrusClient], Awaitable[T]]
) -> T:
    """Open a client for the configuration and run one async operation on it."""
    # The client pulls in web3 and numpy (over a second): only commands that need it pay.
    from walruspy.client import load_config, open_client

    quiet_library_logs()
    config = load_config(config_path)

    async def main() -> T:
        async with open_client(config, context=context) as client:
            return await operation(client)

    return asyncio.run(main())


def _parse_blob_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return BlobId.parse(value)
    except BlobIdError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_object_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_object_id(value)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_object_ids(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[bytes, ...]:
    return tuple(_parse_object_id(ctx, param, value) for value in values)


def _parse_epochs(_ctx: click.Context, _param: click.Parameter, value: str) -> int | None:
    """A positive number of epochs, or None for "max"."""
    if value == "max":
        return None
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"{value!r} is neither a positive number of epochs nor 'max'")
    return int(value)


class _Bars:
    """Rich progress bars on stderr, one per phase of at least `PROGRESS_MIN_BYTES`.

    A no-op when disabled.
    """

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description:<12}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __call__(self, event: ProgressEvent) -> None:
        if self._progress is None or event.total < PROGRESS_MIN_BYTES:
            return
        task = self._tasks.get(event.phase)
        if task is None:
            label = _PHASE_LABELS.get(event.phase, event.phase)
            task = self._tasks[event.phase] = self._progress.add_task(label, total=event.total)
        self._progress.update(task, completed=event.done, total=event.total)

    @contextmanager
    def shown(self) -> Iterator[_Bars]:
        if self._progress is None:
            yield self
            return
        with self._progress:
            yield self


def _bars(as_json: bool) -> _Bars:
    """Bars when a person watches: never under --json, only when stderr is a terminal."""
    return _Bars(not as_json and sys.stderr.isatty())


def epoch_time(info: SystemInfo, epoch: int) -> tuple[str, str]:
    """When `epoch` starts (an end epoch: when the blob expires), estimated from the chain's
    epoch schedule: (RFC 3339 UTC for JSON, "<time>, in 2 d 3 h" for people, from this
    machine's clock)."""
    from walruspy.client.results import estimated_epoch_start_s

    at_s = estimated_epoch_start_s(info, epoch)
    return utc_text(at_s), epoch_time_text(at_s, int(time.time()))


# --- read -----------------------------------------------------------------------------------


def _parse_byte_range(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    """`START-END` (inclusive), `START-` or `-N`, as a `ByteRange`."""
    if value is None:
        return None
    from walruspy.client.read import ByteRange

    match = re.fullmatch(r"(\d{0,19})-(\d{0,19})", value.strip(), re.ASCII)
    if match is None or match.group(1) == match.group(2) == "":
        raise click.BadParameter(f"{value!r} is not START-END, START- or -N (bytes)")
    first, last = match.groups()
    if not first:
        return ByteRange(suffix=int(last))
    if not last:
        return ByteRange(int(first))
    if int(last) < int(first):
        raise click.BadParameter(f"{value!r} ends before it starts")
    return ByteRange(int(first), int(last) - int(first) + 1)


def _read_range(
    blob_id: BlobId,
    *,
    byte_range: Any,
    out: Path | None,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """`read --range`: the bytes to stdout or --out, or under --json with where they lie."""

    async def operation(client: WalrusClient) -> Any:
        return await client.read_range(blob_id, byte_range)

    result = run_client(config_path, context, operation)
    where = f"bytes {result.start}-{result.end - 1} of {result.blob_size}"
    if out is not None:
        out.write_bytes(result.data)
        emit(
            {**result.to_json(), "out": str(out)},
            as_json=as_json,
            lines=[f"Blob {blob_id}, {where}, written to {out}."],
        )
    elif as_json:
        blob = base64.b64encode(result.data).decode()
        emit({**result.to_json(), "blob": blob}, as_json=True, lines=[])
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(result.data)
        sys.stdout.buffer.flush()


@click.command("read")
@click.argument("blob_id", callback=_parse_blob_id)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the blob to this file (default: stdout).",
)
@click.option(
    "--strict-consistency-check",
    "strict",
    is_flag=True,
    help="Re-encode the blob and compare blob IDs (slower; catches every inconsistency).",
)
@click.option(
    "--skip-consistency-check",
    "skip",
    is_flag=True,
    help="Only verify each sliver (faster; for blobs whose writer you trust).",
)
@click.option(
    "--range",
    "byte_range",
    callback=_parse_byte_range,
    default=None,
    metavar="START-END",
    help="Read only bytes START to END (inclusive; START- to the end, -N the last N), fetching "
    "only the slivers that hold them; each is verified, the range is not checked as a whole.",
)
@client_options
def read_command(
    *,
    blob_id: BlobId,
    out: Path | None,
    strict: bool,
    skip: bool,
    byte_range: Any,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Read BLOB_ID from the network, to --out FILE or to stdout."""
    from walruspy.core.decoding import ConsistencyCheck

    if strict and skip:
        raise click.UsageError("--strict-consistency-check and --skip-consistency-check conflict")
    if byte_range is not None:
        if strict:
            raise click.UsageError(
                "--strict-consistency-check re-encodes the whole blob: it cannot check a --range"
            )
        _read_range(
            blob_id,
            byte_range=byte_range,
            out=out,
            config_path=config_path,
            context=context,
            as_json=as_json,
        )
        return
    check = (
        ConsistencyCheck.STRICT
        if strict
        else ConsistencyCheck.SKIP
        if skip
        else ConsistencyCheck.DEFAULT
    )

    async def operation(client: WalrusClient) -> bytes | int:
        bars = _bars(as_json)
        with bars.shown():
            if out is not None:
                return await client.read(blob_id, out, consistency=check, progress=bars)
            return await client.read(blob_id, consistency=check, progress=bars)

    data = run_client(config_path, context, operation)
    if isinstance(data, int):
        emit(
            {"blobId": str(blob_id), "out": str(out)},
            as_json=as_json,
            lines=[f"Blob {blob_id} ({data} bytes) written to {out}."],
        )
    elif as_json:
        emit(
            {"blobId": str(blob_id), "blob": base64.b64encode(data).decode()},
            as_json=True,
            lines=[],
        )
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


# --- blob-status ----------------------------------------------------------------------------


@click.command("blob-status")
@click.option("--blob-id", "blob_id", callback=_parse_blob_id, help="The blob's ID.")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file whose blob ID is computed locally (by encoding it).",
)
@client_options
def blob_status_command(
    *,
    blob_id: BlobId | None,
    file: Path | None,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """The verified status of a blob: what nodes holding at least f+1 shards report."""
    if (blob_id is None) == (file is None):
        raise click.UsageError("give exactly one of --blob-id and --file")

    async def operation(client: WalrusClient) -> tuple[dict[str, Any], str, str | None]:
        if blob_id is not None:
            wanted = blob_id
        else:
            assert file is not None
            wanted = await client.blob_id_of(file)
        verified = await client.blob_status(wanted)
        result: dict[str, Any] = verified.to_json()
        if file is not None:
            result["file"] = str(file)
        expiry = None
        if verified.end_epoch is not None:
            info = (await client.system_info()).system
            iso, expiry = epoch_time(info, verified.end_epoch)
            # Two names for one time: Walrus's, and the one every command uses beside an epoch.
            result["estimatedExpiryTimestamp"] = result["endEpochTime"] = iso
        return result, verified.describe(), expiry

    result, describe, expiry = run_client(config_path, context, operation)
    lines = [f"Blob ID: {result['blobId']}", f"Status: {describe}"]
    if expiry is not None:
        lines.append(f"Estimated expiry: {expiry}")
    emit(result, as_json=as_json, lines=lines)


# --- delete, extend, list-blobs ---------------------------------------------------------------


@click.command("delete")
@click.option("--blob-id", "blob_id", callback=_parse_blob_id, help="Delete every owned object.")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Delete every owned object of this file's blob (its blob ID computed locally).",
)
@click.option("--object-id", "object_id", callback=_parse_object_id, help="Delete this object.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@click.option("--no-status-check", is_flag=True, help="Do not report the blob's status afterwards.")
@client_options
def delete_command(
    *,
    blob_id: BlobId | None,
    file: Path | None,
    object_id: bytes | None,
    yes: bool,
    no_status_check: bool,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Delete deletable blob objects of this account (their storage comes back to it)."""
    if sum(given is not None for given in (blob_id, file, object_id)) != 1:
        raise click.UsageError("give exactly one of --blob-id, --file and --object-id")
    if blob_id is not None:
        target = str(blob_id)
    elif file is not None:
        target = str(file)
    else:
        assert object_id is not None
        target = format_object_id(object_id)
    if not yes and not as_json and sys.stdin.isatty():
        click.confirm(f"Delete the deletable blob objects of {target}?", abort=True)

    async def operation(client: WalrusClient) -> tuple[dict[str, Any], str | None]:
        wanted = blob_id if file is None else await client.blob_id_of(file)
        before = None
        if not no_status_check:
            before = await _status_before_deletion(client, wanted, object_id)
        deleted = await client.delete(blob_id=wanted, object_id=object_id)
        result = deleted.to_json()
        if file is not None:
            result["blobIdentity"]["file"] = str(file)
        described = None
        if not no_status_check and deleted.deleted:
            verified = await _status_after_change(client, deleted.deleted[0].blob_id, before)
            result["postDeletionStatus"] = verified.to_json()["status"]
            described = verified.describe()
        return result, described

    result, described = run_client(config_path, context, operation)
    if result["noBlobFound"]:
        lines = [f"No deletable blob object of this account found for {target}."]
    else:
        lines = [
            f"Deleted blob object {blob['id']} (blob ID {blob['blobId']})"
            for blob in result["deletedBlobs"]
        ]
    if described is not None:
        lines.append(f"Status of the blob afterwards: {described}")
    emit(result, as_json=as_json, lines=lines)


@click.command("burn-blobs", cls=MultiValueCommand)
@click.option(
    "--object-ids",
    "object_ids",
    multiple=True,
    callback=_parse_object_ids,
    help="The blob objects to burn (one or more IDs after the flag).",
)
@click.option("--all", "burn_all", is_flag=True, help="Burn every blob object of this account.")
@click.option("--all-expired", is_flag=True, help="Burn every expired blob object of this account.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@client_options
def burn_blobs_command(
    *,
    object_ids: tuple[bytes, ...],
    burn_all: bool,
    all_expired: bool,
    yes: bool,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Burn blob objects of this account: no refund; the data stays until the end epoch.

    A burnt object can no longer be extended or deleted. Useful to clear expired objects from
    the account's list.
    """
    if sum((bool(object_ids), burn_all, all_expired)) != 1:
        raise click.UsageError("give exactly one of --object-ids, --all and --all-expired")
    ask = not yes and not as_json and sys.stdin.isatty()

    async def operation(client: WalrusClient) -> tuple[list[str], bool]:
        targets: list[bytes] = list(object_ids)
        if not targets:
            owned = await client.list_blobs(include_expired=True)
            epoch = (await client.system_info()).system.epoch
            targets = [r.object_id for r in owned if burn_all or r.end_epoch <= epoch]
        if not targets:
            return [], False
        if ask:
            names = "\n".join(format_object_id(object_id) for object_id in targets)
            question = f"Burn these {len(targets)} blob object(s)?\n{names}\n"
            if not await asyncio.to_thread(click.confirm, question):
                return [], True
        return await client.burn_blobs(targets), False

    burned, aborted = run_client(config_path, context, operation)
    if aborted:
        lines = ["Aborted: no blob object was burnt."]
    elif not burned:
        kind = "expired " if all_expired else ""
        lines = [f"This account owns no {kind}blob object."]
    else:
        lines = [f"Burnt blob object {object_id}" for object_id in burned]
    emit({"burnedBlobs": burned, "aborted": aborted}, as_json=as_json, lines=lines)


@click.command("extend")
@click.option(
    "--blob-obj-id", "object_id", required=True, callback=_parse_object_id, help="Blob object."
)
@click.option("--epochs-extended", type=click.IntRange(1), required=True, help="Epochs to add.")
@click.option(
    "--shared",
    is_flag=True,
    help="--blob-obj-id is a shared blob's: extend it from its funds (anyone may).",
)
@client_options
def extend_command(
    *,
    object_id: bytes,
    epochs_extended: int,
    shared: bool,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Keep a certified blob object of this account (or a shared blob) for more epochs."""

    async def operation(client: WalrusClient) -> tuple[ExtendResult, SystemInfo]:
        extended = await client.extend(object_id, epochs_extended, shared=shared)
        return extended, (await client.system_info()).system

    result, info = run_client(config_path, context, operation)
    iso, expiry = epoch_time(info, result.end_epoch)
    kind = "Shared blob" if shared else "Blob object"
    emit(
        {**result.to_json(), "endEpochTime": iso},
        as_json=as_json,
        lines=[
            f"{kind} {format_object_id(object_id)} extended by {epochs_extended} epochs; "
            f"it now expires at epoch {result.end_epoch} (exclusive): {expiry}.",
            f"Cost (excluding gas): {result.cost} FROST"
            + (" (from the shared blob's funds)" if shared else ""),
        ],
    )


@click.command("share")
@click.option(
    "--blob-obj-id", "object_id", required=True, callback=_parse_object_id, help="Blob object."
)
@click.option(
    "--amount", type=click.IntRange(0), default=None, help="FROST to fund it with at once."
)
@client_options
def share_command(
    *,
    object_id: bytes,
    amount: int | None,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Share a blob object of this account: anyone may then fund it and extend it from its
    funds; nobody (you neither) can delete, burn or transfer it any more."""

    async def operation(client: WalrusClient) -> str:
        return await client.share_blob(object_id, amount or 0)

    shared = run_client(config_path, context, operation)
    funded = f", funded with {amount} FROST" if amount else ""
    emit(
        {"sharedBlobObjectId": shared, "amount": amount},
        as_json=as_json,
        lines=[f"Success: the blob has been shared, object ID: {shared}{funded}."],
    )


@click.command("fund-shared-blob")
@click.option(
    "--shared-blob-obj-id",
    "shared_blob_id",
    required=True,
    callback=_parse_object_id,
    help="The shared blob.",
)
@click.option("--amount", type=click.IntRange(1), required=True, help="FROST to add.")
@client_options
def fund_shared_blob_command(
    *,
    shared_blob_id: bytes,
    amount: int,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Add WAL of this wallet's to a shared blob's funds, which pay its extensions."""

    async def operation(client: WalrusClient) -> int:
        return await client.fund_shared_blob(shared_blob_id, amount)

    funds = run_client(config_path, context, operation)
    emit(
        {"amount": amount, "funds": funds},
        as_json=as_json,
        lines=[f"Success: the blob has been funded with {amount} FROST; its funds: {funds} FROST."],
    )


@click.command("list-blobs")
@click.option("--include-expired", is_flag=True, help="Also list expired blob objects.")
@client_options
def list_blobs_command(
    *, include_expired: bool, config_path: Path | None, context: str | None, as_json: bool
) -> None:
    """The blob objects this account owns."""
    from walruspy.client.results import blob_record_to_json

    blobs: list[BlobRecord] = run_client(
        config_path, context, lambda client: client.list_blobs(include_expired)
    )
    lines = [
        f"{'Blob ID':<44} {'Object ID':<66} {'Size':>12} {'Certified':<9} {'Deletable':<9} Expiry"
    ]
    for blob in blobs:
        lines.append(
            f"{blob.blob_id!s:<44} {format_object_id(blob.object_id):<66} {blob.size:>12} "
            f"{'yes' if blob.certified_epoch is not None else 'no':<9} "
            f"{'yes' if blob.deletable else 'no':<9} {blob.end_epoch}"
        )
    if not blobs:
        lines = [
            "This account owns no blob objects" + ("." if include_expired else " (unexpired).")
        ]
    emit({"blobs": [blob_record_to_json(b) for b in blobs]}, as_json=as_json, lines=lines)


# --- info -----------------------------------------------------------------------------------


@click.group("info", invoke_without_command=True)
@client_options
@click.pass_context
def info_command(
    ctx: click.Context, *, config_path: Path | None, context: str | None, as_json: bool
) -> None:
    """The system's epoch, shards and nodes, sizes, prices and fault thresholds.

    Subcommands print one part in more detail (`info committee`, `info challenges`).
    """
    if ctx.invoked_subcommand is not None:
        return  # the subcommand reads this group's options from ctx.parent
    info = run_client(config_path, context, lambda client: client.system_info())
    data = info.to_json()
    epoch, size, price, bft = (
        data["epochInfo"],
        data["sizeInfo"],
        data["priceInfo"],
        data["bftInfo"],
    )
    system = info.system
    started = epoch_time(system, system.epoch)
    following = epoch_time(system, system.epoch + 1)
    horizon = epoch_time(system, system.epoch + system.max_epochs_ahead)
    epoch["startOfCurrentEpochTime"] = started[0]
    epoch["nextEpochTime"] = following[0]
    epoch["maxEpochsAheadEndTime"] = horizon[0]
    lines = [
        f"Epoch: {epoch['currentEpoch']} (started {started[1]}; lasts "
        f"{epoch['epochDurationS']} s, the next starts {following[1]})",
        f"Storage can be bought up to {epoch['maxEpochsAhead']} epochs ahead (until {horizon[1]})",
        f"Storage nodes: {data['storageInfo']['nNodes']} holding "
        f"{data['storageInfo']['nShards']} shards",
        f"Maximum blob size: {size['maxBlobSize']} bytes; storage unit: "
        f"{size['storageUnitSize']} bytes",
        f"Price per unit: {price['storagePricePerUnitSize']} FROST per epoch, "
        f"{price['writePricePerUnitSize']} FROST to write",
        f"Fault tolerance: f = {bft['f']} shards; a quorum is {bft['quorumThreshold']} shards, "
        f"validity {bft['validityThreshold']}",
    ]
    lines += [
        f"  {node['networkAddress']}: {node['nShards']} shards ({node['nodeId']})"
        for node in data["committeeInfo"]["storageNodes"]
    ]
    emit(data, as_json=as_json, lines=lines)


@click.command("challenges")
@client_options
@click.option(
    "--epoch",
    type=click.IntRange(min=0, max=(1 << 32) - 1),
    default=None,
    help="The epoch to show (default: the current one and the one before).",
)
@click.pass_context
def info_challenges_command(
    ctx: click.Context,
    *,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
    epoch: int | None,
) -> None:
    """Storage challenges: which nodes proved they hold their data, per epoch.

    A node of the epoch's committee that did not pass a challenge that started gets no reward
    for that epoch. Nodes of epochs older than the previous one are listed only if they passed.
    """
    parent = ctx.parent.params if ctx.parent is not None else {}
    config_path = config_path or parent.get("config_path")
    context = context or parent.get("context")
    as_json = as_json or bool(parent.get("as_json"))

    async def operation(client: WalrusClient) -> dict[str, Any]:
        chain = client.env.chain
        committees = await chain.epoch_committees()
        known = {committees.current.epoch: committees.current}
        if committees.previous is not None:
            known[committees.previous.epoch] = committees.previous
        now = committees.current.epoch
        epochs = [epoch] if epoch is not None else [e for e in (now, now - 1) if e >= 0]
        shown = []
        for number in epochs:
            state = await chain.challenge_state(number)
            members = known.get(number)
            node_ids = [m.node_id for m in members.members] if members else sorted(state.passed)
            nodes = [
                {
                    "nodeId": "0x" + node_id.hex(),
                    "passed": node_id in state.passed,
                    "blobsChecked": state.passed.get(node_id, 0),
                }
                for node_id in node_ids
            ]
            shown.append({"epoch": number, "started": state.started, "nodes": nodes})
        return {"epochs": shown}

    result = run_client(config_path, context, operation)
    lines = []
    for entry in result["epochs"]:
        state = "started" if entry["started"] else "not started"
        lines.append(f"Epoch {entry['epoch']}: challenge {state}")
        lines += [
            f"  {node['nodeId']}: "
            + (f"passed ({node['blobsChecked']} blobs)" if node["passed"] else "not passed")
            for node in entry["nodes"]
        ]
    emit(result, as_json=as_json, lines=lines)


#: The commands `walruspy.cli.main` registers.
CLIENT_COMMANDS = (
    read_command,
    blob_status_command,
    delete_command,
    burn_blobs_command,
    extend_command,
    share_command,
    fund_shared_blob_command,
    list_blobs_command,
    info_command,
)


#: After a deletion, how long `delete` waits for the nodes' status to show it: they apply the
#: chain's event within a poll or two.
STATUS_SETTLE_S = 10.0
#: Looking again while the status has not changed yet: 0.1 s, doubling up to 1 s.
STATUS_POLL = Backoff(0.1, 1.0)


async def _status_before_deletion(
    client: WalrusClient, blob_id: BlobId | None, object_id: bytes | None
) -> VerifiedStatus | None:
    """The blob's status before the deletion (None when the object is unknown or none verifies)."""
    from walruspy.client.errors import NoValidStatusError

    if blob_id is None:
        assert object_id is not None
        record = await client.env.chain.get_blob(object_id)
        if record is None:
            return None
        blob_id = record.blob_id
    try:
        return await client.blob_status(blob_id)
    except NoValidStatusError:
        return None


async def _status_after_change(
    client: WalrusClient, blob_id: BlobId, before: VerifiedStatus | None
) -> VerifiedStatus:
    """The blob's status once the nodes show a change from `before` (or after a bounded wait:
    the deletion is on chain either way)."""
    deadline = time.monotonic() + STATUS_SETTLE_S
    polls = 0
    while True:
        status = await client.blob_status(blob_id)
        if before is None or status.status != before.status or time.monotonic() >= deadline:
            return status
        await asyncio.sleep(STATUS_POLL.delay_s(polls))
        polls += 1
