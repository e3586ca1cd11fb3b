"""The Vyper contracts of walruspy's control plane, and a cached compiler for them.

Deployable contracts (spec/walrus-system.md section 2, porting notes 2.9):

- ``Wal``: the WAL token (ERC-20, 9 decimals, burnable).
- ``Committee``: a BLS storage committee (keys, weights, shards, addresses) that checks
  certificates with the EIP-2537 precompiles.
- ``System``: epochs, storage resources, blobs, certificates and the storage fund.
- ``Selection``: stateless committee selection (D'Hondt apportionment, shard transition, vote
  quorums; spec section 2.3) that staking calls; ported from Move and checked against
  :mod:`walruspy.core.apportionment`.
- ``Staking``: storage nodes, the active set, committee selection and the multi-stage epoch
  change (spec 2.2 to 2.6).
- ``Pools``: the staking pools and StakedWal objects Staking drives (split from it for the
  24 KiB code limit).
- ``Challenges``: storage challenges (ours; Walrus paper section 4.6): a seed per epoch from a
  future block's hash, quorum certificates that a node passed, which System's reward settlement
  consults (a separate contract: System is close to the code limit).
- ``Attributes``: blob attributes (Walrus's blob metadata: ordered key-value pairs that the
  owner of a blob object sets and removes), also a contract of its own for the code limit.
- ``SharedBlobs``: shared blobs (Walrus's ``shared_blob``): blob objects given up by their
  owners, kept alive from WAL funds that anyone adds.

The lower-case files are Vyper modules the others import. Two deployments exist:

- a fixed committee: deploy ``Wal(supply)`` and ``Committee()``, fill the committee with
  ``add_members`` (batches, each member with a proof of possession of its BLS key for the
  deployer's address) and ``seal(shard_owners)``, deploy the annexes ``Challenges()``,
  ``Attributes()`` and ``SharedBlobs()``, then ``System(wal, committee, ..., staking=0,
  challenges, attributes, shared_blobs)`` and ``attach(system)`` on each annex;
- staking: deploy ``Wal``, ``Selection``, ``Staking(wal, selection, n_shards, epoch_duration,
  epoch_zero_duration)``, ``Pools(wal, staking)``, the three annexes, ``System(wal, 0, ...,
  staking, challenges, attributes, shared_blobs)``, ``attach(system)`` on each annex and two
  empty ``Committee()`` handed
  over to Staking (``hand_over``), then ``Staking.attach(system, pools, committee_a,
  committee_b)``; nodes register and are staked, and Staking selects every committee, the
  first one included.

The chain must run the Prague fork (EIP-2537 BLS and EIP-152 BLAKE2F precompiles).

:func:`load_contract` is what the rest of walruspy calls. It returns the ABI and bytecode
shipped in ``compiled.json`` beside the sources (written by ``make contracts``, that is
``python -m walruspy.chain.contracts``) when that file was built from exactly these sources, so
an installed package needs neither the compiler nor a writable cache. When the sources differ
(a developer edited a contract) it falls back to :func:`compile_contract`, which compiles with
the ``vyper`` package (a development dependency; about half a second per contract) and caches
the result on disk, keyed by a digest of every ``.vy`` file here and of the compiler version, so
editing any module recompiles everything that may import it. A test compiles every contract
afresh and compares it with ``compiled.json``, so the shipped file cannot drift.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "COMPILED_FILE",
    "CONTRACTS_DIR",
    "DEPLOYABLE",
    "Abi",
    "ContractsError",
    "compile_contract",
    "load_contract",
    "source_files_digest",
    "sources_digest",
    "write_compiled",
]

#: The directory holding the ``.vy`` sources.
CONTRACTS_DIR = Path(__file__).resolve().parent
#: Names of the contracts that are deployed (the others are modules).
DEPLOYABLE = (
    "Wal", "Committee", "System", "Selection", "Staking", "Pools", "Challenges", "Attributes",
    "SharedBlobs",
)  # fmt: skip

#: A contract ABI as ``json.loads`` gives it.
Abi = list[dict[str, Any]]

#: The ABIs and bytecode shipped with the package (`write_compiled`).
COMPILED_FILE = CONTRACTS_DIR / "compiled.json"
_COMPILED_FORMAT = 1

_DEFAULT_CACHE_DIR = Path("~/.cache/walruspy")


class ContractsError(RuntimeError):
    """The contracts can be neither loaded from the package nor compiled here."""


_CACHE_SUBDIR = "contracts"


def _vyper_version() -> str:
    import vyper

    version = vyper.__version__
    assert isinstance(version, str)
    return version


def _digest_sources(prefix: bytes) -> str:
    digest = hashlib.sha256(prefix)
    for path in sorted(CONTRACTS_DIR.glob("*.vy")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def source_files_digest() -> str:
    """A SHA-256 hex digest of every contract source (names and bytes), without the compiler."""
    return _digest_sources(b"")


def sources_digest() -> str:
    """A SHA-256 hex digest of every contract source (names and bytes) and the compiler version."""
    return _digest_sources(_vyper_version().encode())


def _compile(name: str) -> tuple[Abi, bytes]:
    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    path = CONTRACTS_DIR / f"{name}.vy"
    output = vyper.compile_code(
        path.read_text(),
        contract_path=path.name,
        input_bundle=FilesystemInputBundle([CONTRACTS_DIR]),
        output_formats=["abi", "bytecode"],
    )
    abi = output["abi"]
    bytecode = output["bytecode"]
    assert isinstance(abi, list)
    assert isinstance(bytecode, str)
    return abi, bytes.fromhex(bytecode.removeprefix("0x"))


def _read_cache(path: Path) -> tuple[Abi, bytes] | None:
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict):
        return None
    abi, bytecode = cached.get("abi"), cached.get("bytecode")
    if not isinstance(abi, list) or not isinstance(bytecode, str):
        return None
    return abi, bytes.fromhex(bytecode)


def _write_cache(path: Path, abi: Abi, bytecode: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so concurrent compilers never read a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"abi": abi, "bytecode": bytecode.hex()}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile_contract(name: str, cache_dir: Path | str | None = None) -> tuple[Abi, bytes]:
    """Compile the deployable contract ``name`` and return its ABI and deployment bytecode.

    The result is cached under ``cache_dir`` (default ``~/.cache/walruspy``) in a file named by
    the contract and :func:`sources_digest`; a cache that cannot be read is recompiled over.
    Raises ``ValueError`` for a name that is not in :data:`DEPLOYABLE`.
    """
    if name not in DEPLOYABLE:
        raise ValueError(f"unknown contract {name!r}; deployable contracts: {DEPLOYABLE}")
    root = Path(cache_dir) if cache_dir is not None else _DEFAULT_CACHE_DIR.expanduser()
    path = root / _CACHE_SUBDIR / f"{name}-{sources_digest()[:32]}.json"
    cached = _read_cache(path)
    if cached is not None:
        return cached
    abi, bytecode = _compile(name)
    _write_cache(path, abi, bytecode)
    return abi, bytecode


@functools.cache
def _shipped() -> dict[str, tuple[Abi, bytes]] | None:
    """The contracts of ``compiled.json`` if it was built from the sources here, else None."""
    try:
        shipped = json.loads(COMPILED_FILE.read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(shipped, dict)
        or shipped.get("format") != _COMPILED_FORMAT
        or shipped.get("sources") != source_files_digest()
    ):
        return None
    contracts = shipped.get("contracts")
    if not isinstance(contracts, dict):
        return None
    loaded: dict[str, tuple[Abi, bytes]] = {}
    for name in DEPLOYABLE:
        entry = contracts.get(name)
        if not isinstance(entry, dict):
            return None
        abi, bytecode = entry.get("abi"), entry.get("bytecode")
        if not isinstance(abi, list) or not isinstance(bytecode, str):
            return None
        loaded[name] = (abi, bytes.fromhex(bytecode))
    return loaded


def load_contract(name: str) -> tuple[Abi, bytes]:
    """The ABI and deployment bytecode of ``name``: shipped if current, else compiled here."""
    if name not in DEPLOYABLE:
        raise ValueError(f"unknown contract {name!r}; deployable contracts: {DEPLOYABLE}")
    shipped = _shipped()
    if shipped is not None:
        return shipped[name]
    try:
        return compile_contract(name)
    except ImportError as exc:
        raise ContractsError(
            f"{COMPILED_FILE} does not match the contract sources beside it, and the Vyper "
            f"compiler is not installed to compile {name}: reinstall walruspy, or install its "
            f"development dependencies and run `make contracts` ({exc})"
        ) from exc


def write_compiled(path: Path = COMPILED_FILE) -> Path:
    """Compile every deployable contract afresh and write them to ``path`` (``compiled.json``)."""
    contracts = {}
    for name in DEPLOYABLE:
        abi, bytecode = _compile(name)
        contracts[name] = {"abi": abi, "bytecode": bytecode.hex()}
    document = {
        "format": _COMPILED_FORMAT,
        "compiler": f"vyper {_vyper_version()}",
        "sources": source_files_digest(),
        "contracts": contracts,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    _shipped.cache_clear()
    return path
