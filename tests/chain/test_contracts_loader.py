"""walruspy.chain.contracts.compile_contract: cache, sizes, and deployable output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boa
import pytest
from eth_abi import encode

from tests.chain.conftest import ZERO_ADDRESS as ZERO
from walruspy.chain import contracts
from walruspy.chain.contracts import (
    COMPILED_FILE,
    DEPLOYABLE,
    ContractsError,
    compile_contract,
    load_contract,
    source_files_digest,
    sources_digest,
)

EIP170_MAX_RUNTIME_BYTES = 24_576
EIP3860_MAX_INITCODE_BYTES = 49_152


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compiler cache for the module: each contract is compiled once."""
    return tmp_path_factory.mktemp("walruspy-cache")


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_compile_contract_is_cached(cache_dir: Path, name: str) -> None:
    abi, bytecode = compile_contract(name, cache_dir)
    cached = list((cache_dir / "contracts").glob(f"{name}-*.json"))
    assert len(cached) == 1
    assert sources_digest()[:32] in cached[0].name
    assert compile_contract(name, cache_dir) == (abi, bytecode)
    assert any(item.get("type") == "function" for item in abi)


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_contracts_fit_the_size_limits(
    cache_dir: Path, name: str, wal: Any, committee_contract: Any
) -> None:
    _, bytecode = compile_contract(name, cache_dir)
    assert len(bytecode) < EIP3860_MAX_INITCODE_BYTES
    constructor_args = {
        "Wal": encode(["uint256"], [10**9]),
        "Committee": b"",
        "Selection": b"",
        "Staking": encode(
            ["address", "address", "uint16", "uint64", "uint64"],
            [str(wal.address), str(committee_contract.address), 1000, 60, 0],
        ),
        "Pools": encode(["address", "address"], [str(wal.address), str(wal.address)]),
        "System": encode(
            [
                *("address", "address", "uint64", "uint32", "uint64", "uint64", "uint64"),
                *("address", "address", "address", "address"),
            ],  # staking and the annexes: challenges, attributes, shared blobs
            [
                *(str(wal.address), str(committee_contract.address), 60, 10, 1 << 30, 1, 1),
                *(ZERO, ZERO, ZERO, ZERO),
            ],
        ),
        "Challenges": b"",
        "Attributes": b"",
        "SharedBlobs": b"",
    }[name]
    address, computation = boa.env.deploy(bytecode=bytecode + constructor_args, gas=30_000_000)
    assert not computation.is_error
    assert 0 < len(boa.env.get_code(address)) <= EIP170_MAX_RUNTIME_BYTES


def test_a_corrupt_cache_is_recompiled(tmp_path: Path) -> None:
    abi, bytecode = compile_contract("Wal", tmp_path)  # Wal compiles in a fraction of a second
    [cached] = (tmp_path / "contracts").glob("Wal-*.json")
    cached.write_text("{not json")
    assert compile_contract("Wal", tmp_path) == (abi, bytecode)
    assert json.loads(cached.read_text())["bytecode"] == bytecode.hex()


def test_compiled_token_works(cache_dir: Path) -> None:
    abi, bytecode = compile_contract("Wal", cache_dir)
    factory: Any = boa.loads_abi(json.dumps(abi), name="Wal")
    address, _ = boa.env.deploy(bytecode=bytecode + (1234).to_bytes(32, "big"))
    token = factory.at(address)
    assert token.totalSupply() == 1234
    assert token.decimals() == 9


def test_compile_contract_rejects_modules() -> None:
    with pytest.raises(ValueError, match="unknown contract"):
        compile_contract("blake2b")


def test_the_shipped_contracts_match_a_fresh_compile(cache_dir: Path) -> None:
    shipped = json.loads(COMPILED_FILE.read_text())
    assert shipped["sources"] == source_files_digest(), (
        "compiled.json was built from other contract sources: run `make contracts`"
    )
    for name in DEPLOYABLE:
        abi, bytecode = compile_contract(name, cache_dir)
        entry = shipped["contracts"][name]
        assert entry["abi"] == abi, f"{name}: run `make contracts`"
        assert bytes.fromhex(entry["bytecode"]) == bytecode, f"{name}: run `make contracts`"
        assert load_contract(name) == (abi, bytecode)


def test_stale_shipped_contracts_are_compiled_or_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = json.loads(COMPILED_FILE.read_text())
    stale["sources"] = "0" * 64
    (tmp_path / "compiled.json").write_text(json.dumps(stale))
    monkeypatch.setattr(contracts, "COMPILED_FILE", tmp_path / "compiled.json")
    contracts._shipped.cache_clear()
    compiled: list[str] = []

    def compile_here(name: str) -> tuple[list[dict[str, Any]], bytes]:
        compiled.append(name)
        return [], b"\x00"

    monkeypatch.setattr(contracts, "compile_contract", compile_here)
    try:
        assert load_contract("Wal") == ([], b"\x00") and compiled == ["Wal"]

        def no_compiler(name: str) -> tuple[list[dict[str, Any]], bytes]:
            raise ImportError("No module named 'vyper'")

        monkeypatch.setattr(contracts, "compile_contract", no_compiler)
        with pytest.raises(ContractsError, match=r"compiled\.json does not match.*make contracts"):
            load_contract("System")
    finally:
        contracts._shipped.cache_clear()
