"""`quilt-id`: the blob ID and patch IDs of a quilt, computed locally (spec/walrus-system.md 4.5).

Theory of operation. The files are named as Walrus's `store-quilt` names them: `--blobs` takes
one JSON object per file, `{"path": ..., "identifier": ..., "tags": {...}}` (the identifier
defaults to the file name, the tags to none; other keys are ignored, as Walrus's serde does), and
`--paths` takes files or directories, read recursively, each file named by its file name. Both
options take several values after one flag (`--blobs A B`), as Walrus's clap arguments do, or a
flag per value. The quilt is laid out by `walruspy.core.quilt` and encoded on every core
(`walruspy.workers`) for its blob ID; nothing is sent anywhere.

Under `--json` the result is `{"blobId", "patches": [{"identifier", "quiltPatchId",
"startIndex", "endIndex", "tags"}]}`, the patches in quilt (identifier) order; the start and end
index are the secondary slivers `[startIndex, endIndex)` that hold the patch.

On a network (spec/walrus-system.md 4.1; Walrus `store_quilt`, `read_quilt` and
`list_patches_in_quilt` in `cli/runner.rs`), through `WalrusClient.quilts`:

- `store-quilt --paths ... | --blobs ...` with `store`'s options (`--epochs N|max`,
  `--deletable/--permanent`, `--force`, `--ignore-resources`) stores the quilt as one blob;
  `--json` prints Walrus's `QuiltStoreResult`, `{"blobStoreResult", "storedQuiltBlobs":
  [{"identifier", "quiltPatchId", "range": [start, end]}]}`.
- `read-quilt` selects patches as Walrus's `QuiltPatchQuery` does: `--quilt-patch-ids ID...`
  alone, or `--quilt-id ID` with `--identifiers NAME...`, with `--tag KEY VALUE` (one tag), or
  with neither (every patch). With `--out DIR` (created if missing) each patch is written to a
  file named by its identifier (path separators replaced by `_`, so no patch writes outside
  DIR; a repeated name gets `_2`, `_3` before its extension, as Walrus's `write_blobs_dedup`);
  without it the patches' bytes go to stdout one after the other. `--json` prints Walrus's
  `ReadQuiltOutput`, `{"out"?, "retrievedBlobs"?: [{"blob": [bytes as numbers], "identifier",
  "tags"}]}`, `blob` emptied when written to `--out`, `retrievedBlobs` left out when empty.
- `list-patches-in-quilt QUILT_ID` prints each patch's identifier, patch ID and tags; `--json`
  prints Walrus's `QuiltMetadata` (`{"V1": {"quilt_id", "metadata", "index"}}`).

Patch IDs are URL-safe base64 and may start with `-`: after `--quilt-patch-ids` every argument
is a patch ID up to the next option of the command, or `--`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from walruspy.cli.client_cmds import (
    _bars,
    _parse_blob_id,
    client_options,
    run_client,
)
from walruspy.cli.options import MultiValueCommand
from walruspy.cli.output import CommandInterrupted, emit, json_option
from walruspy.cli.store_cmd import (
    StoreFlags,
    _interruption,
    _store_lines,
    dry_run_entry,
    dry_run_lines,
    epochs_for,
    store_options,
)

if TYPE_CHECKING:
    # The core's quilt module pulls in numpy and the RS2 encoder, the client web3: only the
    # commands that use them pay.
    from walruspy.chain.api import BlobRecord
    from walruspy.client import WalrusClient
    from walruspy.client.lifetime import StoreLifetime
    from walruspy.client.quilts import (
        QuiltListing,
        QuiltPatchData,
        QuiltRead,
        QuiltStoreResult,
        StoredQuiltPatch,
    )
    from walruspy.core.blob_id import BlobId
    from walruspy.core.quilt import QuiltStoreBlob

__all__ = [
    "QUILT_COMMANDS",
    "list_patches_in_quilt_command",
    "quilt_id_command",
    "read_quilt_command",
    "store_quilt_command",
]

_BLOBS_FORM = '{"path": ..., "identifier": ..., "tags": {...}}'


def _file_identifier(path: Path, position: int) -> str:
    """Walrus's default identifier: the file name, or `unnamed-blob-<i>` if it is not UTF-8."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        return f"unnamed-blob-{position}"
    return path.name or f"unnamed-blob-{position}"


def parse_blob_spec(text: str) -> tuple[Path, str | None, dict[str, str]]:
    """One `--blobs` value: (path, identifier or None, tags); `click.BadParameter` if malformed."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"{text[:80]!r} is not JSON ({exc}); expected {_BLOBS_FORM}"
        ) from None
    if not isinstance(spec, dict):
        raise click.BadParameter(f"{text[:80]!r} is not a JSON object; expected {_BLOBS_FORM}")
    path = spec.get("path")
    if not isinstance(path, str) or not path:
        raise click.BadParameter(f'{text[:80]!r} needs a "path" string; expected {_BLOBS_FORM}')
    identifier = spec.get("identifier")
    if identifier is not None and not isinstance(identifier, str):
        raise click.BadParameter(f'"identifier" must be a string in {text[:80]!r}')
    tags = spec.get("tags", {})
    if not isinstance(tags, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in tags.items()
    ):
        raise click.BadParameter(f'"tags" must map strings to strings in {text[:80]!r}')
    return Path(path).expanduser(), identifier, tags


def blobs_from_specs(specs: tuple[str, ...]) -> list[QuiltStoreBlob]:
    """The quilt's blobs from `--blobs` values, each file read whole."""
    from walruspy.core.quilt import QuiltStoreBlob

    blobs = []
    for position, text in enumerate(specs):
        path, identifier, tags = parse_blob_spec(text)
        if not path.is_file():
            state = "is not a file" if path.exists() else "does not exist"
            raise click.BadParameter(f"path {str(path)!r} {state}", param_hint="'--blobs'")
        name = identifier if identifier is not None else _file_identifier(path, position)
        blobs.append(QuiltStoreBlob(name, path.read_bytes(), tags))
    return blobs


def blobs_from_paths(paths: tuple[Path, ...]) -> list[QuiltStoreBlob]:
    """The quilt's blobs from `--paths`: every file, directories recursively, named by file name."""
    from walruspy.core.quilt import QuiltStoreBlob

    files: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files.update(entry for entry in path.rglob("*") if entry.is_file())
        else:
            files.add(path)
    if not files:
        raise click.BadParameter("no files found in the given paths", param_hint="'--paths'")
    ordered = sorted(files)
    return [
        QuiltStoreBlob(_file_identifier(path, i), path.read_bytes())
        for i, path in enumerate(ordered)
    ]


def _tags_text(tags: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())


@click.command("quilt-id", cls=MultiValueCommand)
@click.option("--n-shards", type=int, required=True, help="Number of shards of the committee.")
@click.option(
    "--blobs",
    "blob_specs",
    multiple=True,
    metavar="JSON...",
    help=f"Blobs of the quilt, one JSON object each: {_BLOBS_FORM} "
    "(identifier: the file name if omitted).",
)
@click.option(
    "--paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    metavar="PATH...",
    help="Files or directories (read recursively); each file is named by its file name.",
)
@json_option
def quilt_id_command(
    n_shards: int, blob_specs: tuple[str, ...], paths: tuple[Path, ...], as_json: bool
) -> None:
    """Compute a quilt's blob ID and patch IDs locally by encoding it (nothing is sent)."""
    if bool(blob_specs) == bool(paths):
        raise click.UsageError("give exactly one of --blobs and --paths")
    blobs = blobs_from_specs(blob_specs) if blob_specs else blobs_from_paths(paths)
    local = local_quilt(blobs, n_shards)
    lines = [f"Quilt blob ID: {local.blob_id}", *local.lines]
    emit({"blobId": str(local.blob_id), "patches": local.patches}, as_json=as_json, lines=lines)


@dataclass(frozen=True, slots=True)
class LocalQuilt:
    """A quilt constructed and encoded here: its blob ID, byte length, patches as JSON (as
    `quilt-id` prints them) and as text lines."""

    blob_id: BlobId
    length: int
    patches: list[dict[str, Any]]
    lines: list[str]


def local_quilt(blobs: Sequence[QuiltStoreBlob], n_shards: int) -> LocalQuilt:
    """Construct and encode the quilt of `blobs` for `n_shards` (nothing is sent)."""
    from walruspy.core.quilt import construct_quilt
    from walruspy.workers import encode

    quilt = construct_quilt(blobs, n_shards)
    blob_id = encode(quilt.data, n_shards).metadata.blob_id
    patches: list[dict[str, Any]] = [
        {
            "identifier": patch.identifier,
            "quiltPatchId": str(patch.patch_id(blob_id)),
            "startIndex": patch.start_index,
            "endIndex": patch.end_index,
            "tags": dict(patch.tags),
        }
        for patch in quilt.index.patches
    ]
    lines = [f"Patches ({len(patches)}):"]
    for entry in patches:
        tags = f"  tags: {_tags_text(entry['tags'])}" if entry["tags"] else ""
        lines.append(
            f"  {entry['identifier']}: {entry['quiltPatchId']} "
            f"(slivers {entry['startIndex']}..{entry['endIndex']}){tags}"
        )
    return LocalQuilt(blob_id, len(quilt.data), patches, lines)


def _blobs_from_options(
    blob_specs: tuple[str, ...], paths: tuple[Path, ...]
) -> list[QuiltStoreBlob]:
    if bool(blob_specs) == bool(paths):
        raise click.UsageError("give exactly one of --blobs and --paths")
    return blobs_from_specs(blob_specs) if blob_specs else blobs_from_paths(paths)


def _patch_lines(patches: Sequence[StoredQuiltPatch]) -> list[str]:
    """One line per patch: identifier, patch ID, its secondary slivers and tags."""
    lines = []
    for patch in patches:
        tags = f"  tags: {_tags_text(dict(patch.tags))}" if patch.tags else ""
        columns = patch.sliver_indices
        lines.append(
            f"  {patch.identifier}: {patch.patch_id} "
            f"(slivers {columns.start}..{columns.stop}){tags}"
        )
    return lines


@click.command("store-quilt", cls=MultiValueCommand)
@click.option(
    "--blobs",
    "blob_specs",
    multiple=True,
    metavar="JSON...",
    help=f"Blobs of the quilt, one JSON object each: {_BLOBS_FORM}.",
)
@click.option(
    "--paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    metavar="PATH...",
    help="Files or directories (read recursively); each file is named by its file name.",
)
@store_options("quilt")
def store_quilt_command(
    *,
    blob_specs: tuple[str, ...],
    paths: tuple[Path, ...],
    lifetime: StoreLifetime,
    dry_run: bool,
    flags: StoreFlags,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Store files as one quilt: many small blobs in one blob, each read back on its own."""
    blobs = _blobs_from_options(blob_specs, paths)
    if dry_run:
        _dry_run_quilt(blobs, lifetime, config_path, context, as_json)
        return
    registered: list[BlobRecord] = []
    state: dict[str, Any] = {}

    async def operation(client: WalrusClient) -> QuiltStoreResult:
        info = state["info"] = (await client.system_info()).system
        wanted = await epochs_for(client, lifetime, info)
        try:
            with _bars(as_json).shown() as bars:
                return await client.quilts.store(
                    blobs,
                    wanted,
                    progress=bars,
                    on_registered=registered.append,
                    **flags.options(),
                )
        except asyncio.CancelledError:
            state["interruption"] = await _interruption(client, Path("<quilt>"), registered, info)
            raise

    try:
        result = run_client(config_path, context, operation)
    except KeyboardInterrupt:
        line, details = state.get("interruption", ("Interrupted.", {}))
        raise CommandInterrupted(line, details) from None
    body = result.to_json()
    lines = _store_lines(Path("<quilt>"), result.blob_store_result, state.get("info"))
    lines = [line for line in lines if not line.startswith("Path: ")]
    lines += [f"Patches ({len(result.patches)}):", *_patch_lines(result.patches)]
    emit(body, as_json=as_json, lines=lines)


def _dry_run_quilt(
    blobs: Sequence[QuiltStoreBlob],
    lifetime: StoreLifetime,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """`store-quilt --dry-run`: the quilt's blob ID, sizes, cost and patches; no transaction.

    JSON: Walrus's `quiltBlobOutput` (a `DryRunOutput` with path "n/a"), and the patches as
    `quilt-id` gives them (where Walrus gives its `quiltIndex`)."""

    async def operation(client: WalrusClient) -> tuple[dict[str, Any], LocalQuilt, int]:
        info = await client.system_info()
        epochs = await epochs_for(client, lifetime, info.system)
        local = await asyncio.to_thread(local_quilt, blobs, info.committee.n_shards)
        entry = dry_run_entry(Path("n/a"), local.blob_id, local.length, info, epochs)
        return entry, local, epochs

    entry, local, epochs = run_client(config_path, context, operation)
    body = {"quiltBlobOutput": entry, "patches": local.patches}
    emit(body, as_json=as_json, lines=[*dry_run_lines(entry, epochs), *local.lines])


def _selector(
    quilt_id: BlobId | None,
    identifiers: tuple[str, ...],
    tags: tuple[tuple[str, str], ...],
    patch_ids: tuple[str, ...],
) -> Callable[[WalrusClient], Awaitable[QuiltRead]]:
    """The read Walrus's `QuiltPatchQuery::into_selector` picks; `UsageError` otherwise."""
    if len(tags) > 1:
        raise click.UsageError("only one --tag KEY VALUE is supported")
    if patch_ids:
        if quilt_id is not None or identifiers or tags:
            raise click.UsageError("--quilt-patch-ids is used alone, without --quilt-id")
        return lambda client: client.quilts.read_by_ids(patch_ids)
    if quilt_id is None:
        raise click.UsageError(
            "give --quilt-patch-ids, or --quilt-id (with --identifiers or --tag)"
        )
    if identifiers and tags:
        raise click.UsageError("--identifiers and --tag cannot be used together")
    if identifiers:
        return lambda client: client.quilts.read_by_identifiers(quilt_id, identifiers)
    if tags:
        key, value = tags[0]
        return lambda client: client.quilts.read_by_tag(quilt_id, key, value)
    return lambda client: client.quilts.read_all(quilt_id)


def _file_name(identifier: str) -> str:
    """A file name for a patch that stays inside the output directory (module doc)."""
    name = identifier.replace("/", "_").replace("\\", "_").replace("\0", "_")
    return f"_{name}" if name in (".", "..") else name


def write_patches(patches: Sequence[QuiltPatchData], out: Path) -> list[Path]:
    """Write each patch to `out`/<identifier>, repeated names as Walrus's `write_blobs_dedup`."""
    out.mkdir(parents=True, exist_ok=True)
    counters: dict[str, int] = {}
    written = []
    for patch in patches:
        name = _file_name(patch.identifier)
        counters[name] = counters.get(name, 0) + 1
        count = counters[name]
        if count > 1:
            stem, dot, extension = name.rpartition(".")
            name = f"{stem}_{count}.{extension}" if dot and stem else f"{name}_{count}"
        path = out / name
        path.write_bytes(patch.data)
        written.append(path)
    return written


@click.command("read-quilt", cls=MultiValueCommand)
@click.option("--quilt-id", callback=_parse_blob_id, help="The quilt's blob ID.")
@click.option(
    "--identifiers",
    "--identifier",
    "identifiers",
    multiple=True,
    metavar="NAME...",
    help="Identifiers of the patches to read (with --quilt-id).",
)
@click.option(
    "--tag",
    "tags",
    nargs=2,
    multiple=True,
    metavar="KEY VALUE",
    help="Read the patches with this tag (with --quilt-id).",
)
@click.option(
    "--quilt-patch-ids",
    "--quilt-patch-id",
    "--patch-ids",
    "patch_ids",
    multiple=True,
    metavar="ID...",
    help="Patch IDs to read (alone).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write the patches to, one file each (default: their bytes to stdout).",
)
@client_options
def read_quilt_command(
    *,
    quilt_id: BlobId | None,
    identifiers: tuple[str, ...],
    tags: tuple[tuple[str, str], ...],
    patch_ids: tuple[str, ...],
    out: Path | None,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Read patches of quilts: by patch ID, by identifier, by tag, or all of one quilt."""
    read = _selector(quilt_id, identifiers, tags, patch_ids)
    result = run_client(config_path, context, read)
    patches = list(result.patches)
    body: dict[str, Any] = {}
    if out is not None:
        write_patches(patches, out)
        body["out"] = str(out)
    if patches:
        body["retrievedBlobs"] = [p.to_json(with_data=out is None) for p in patches]
    if as_json:
        emit(body, as_json=True, lines=[])
    elif out is not None:
        lines = [f"Retrieved {len(patches)} blob{'' if len(patches) == 1 else 's'} and saved "
                 f"to directory: {out}"]  # fmt: skip
        for position, patch in enumerate(patches, 1):
            lines.append(f"{position}. Identifier: {patch.identifier}")
            tags_text = _tags_text(dict(patch.tags)) if patch.tags else "(none)"
            lines.append(f"   Tags: {tags_text}")
        emit(body, as_json=False, lines=lines)
    else:
        for patch in patches:
            sys.stdout.buffer.write(patch.data)
        sys.stdout.buffer.flush()


@click.command("list-patches-in-quilt")
@click.argument("quilt_id", callback=_parse_blob_id)
@client_options
def list_patches_in_quilt_command(
    *, quilt_id: BlobId, config_path: Path | None, context: str | None, as_json: bool
) -> None:
    """List a quilt's patches: identifier, patch ID and tags (reads only its index)."""
    listing: QuiltListing = run_client(
        config_path, context, lambda client: client.quilts.list_patches(quilt_id)
    )
    patches = listing.patches()
    lines = [f"Quilt Metadata V1: {listing.quilt_id}", f"Patches ({len(patches)}):"]
    emit(listing.to_json(), as_json=as_json, lines=lines + _patch_lines(patches))


#: The commands `walruspy.cli.main` registers.
QUILT_COMMANDS = (
    quilt_id_command,
    store_quilt_command,
    read_quilt_command,
    list_patches_in_quilt_command,
)
