"""Fixtures for the contract tests: native precompiles, the contracts, and a committee that signs.

The contracts run in titanoboa's in-process py-evm (Prague fork: EIP-2537 BLS12-381 and EIP-152
BLAKE2F precompiles). py-evm's own BLS precompiles are pure Python (1-2 s per pairing), so the
native arkworks ones are installed once, at import, before any environment runs a call.

The default committee is the 4-member, 10-shard committee of ``tests/vectors/messages.json``
(epoch 1, the deployed System's first epoch), so the golden message signatures verify on chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boa
import pytest

from tests.chain.backends import ChainProcess, running
from walruspy.chain.contracts import CONTRACTS_DIR
from walruspy.chain.precompiles import install_native_precompiles
from walruspy.core.crypto import BlsPrivateKey, aggregate_signatures
from walruspy.core.messages import (
    BlobPersistence,
    ConfirmationMessage,
    InvalidBlobIdMessage,
    sign_proof_of_possession_evm,
)

install_native_precompiles()

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGE_VECTORS = REPO_ROOT / "tests" / "vectors" / "messages.json"
RS2_VECTORS = REPO_ROOT / "tests" / "vectors" / "walrus-rs2-vectors.json"

MIB = 1 << 20
RS2 = 1
FIRST_EPOCH = 1
EPOCH_DURATION_S = 3600
MAX_EPOCHS_AHEAD = 10
TOTAL_CAPACITY = 1 << 30
STORAGE_PRICE = 1_000  # FROST per MiB unit per epoch
WRITE_PRICE = 2_000  # FROST per MiB unit
WAL_SUPPLY = 10**9 * 10**9  # one billion WAL of 10^9 FROST
USER_FUNDS = 10**6 * 10**9
ZERO_ADDRESS = "0x" + "00" * 20


def encoded_blob_length(size: int, n_shards: int) -> int:
    """spec/encoding.md section 2: the RS2 encoded length (None-free: callers keep size legal)."""
    f = (n_shards - 1) // 3
    primary, secondary = n_shards - 2 * f, n_shards - f
    symbol_size = (max(size, 1) - 1) // (primary * secondary) + 1
    symbol_size += symbol_size % 2
    assert symbol_size <= 65534
    return n_shards * (n_shards * 64 + 32) + n_shards * (primary + secondary) * symbol_size


def storage_units(size: int) -> int:
    """1 MiB units, rounded up (Move `storage_units_from_size`)."""
    return -(-size // MIB)


def blob_id_of(root_hash: bytes, size: int, encoding_type: int = RS2) -> bytes:
    """spec/encoding.md section 6: BLAKE2b-256(type u8 || size u64 LE || root hash)."""
    preimage = bytes([encoding_type]) + size.to_bytes(8, "little") + root_hash
    return hashlib.blake2b(preimage, digest_size=32).digest()


@dataclass(frozen=True)
class BlobSpec:
    """What a client registers: a blob ID that BLAKE2b-derives from the other three."""

    blob_id: bytes
    root_hash: bytes
    size: int
    encoding_type: int = RS2

    @classmethod
    def random(cls, size: int = 1000) -> BlobSpec:
        root_hash = secrets.token_bytes(32)
        return cls(blob_id_of(root_hash, size), root_hash, size)

    def register_args(self, deletable: bool) -> tuple[bytes, bytes, int, int, bool]:
        return self.blob_id, self.root_hash, self.size, self.encoding_type, deletable


@dataclass(frozen=True)
class Member:
    """A committee member with its signing key."""

    private_key: BlsPrivateKey
    node_id: bytes
    network_address: str
    shards: tuple[int, ...]

    @property
    def public_key_eip2537(self) -> bytes:
        return self.private_key.public_key().to_eip2537()

    def proof_of_possession(self, installer: str | None = None, epoch: int = FIRST_EPOCH) -> bytes:
        """The key's PoP (EIP-2537 G2) for `installer` (default: boa's sender) and `epoch`."""
        return pop_for(self.private_key, installer, epoch)


@dataclass(frozen=True)
class Committee:
    """A signing committee in committee order (strictly increasing node IDs)."""

    members: tuple[Member, ...]
    n_shards: int

    @property
    def weights(self) -> list[int]:
        return [len(m.shards) for m in self.members]

    def shard_owners(self) -> bytes:
        owners = bytearray(self.n_shards)
        for index, member in enumerate(self.members):
            for shard in member.shards:
                owners[shard] = index
        return bytes(owners)

    def member_args(
        self, start: int = 0, stop: int | None = None, installer: str | None = None
    ) -> tuple[list[bytes], list[bytes], list[str], list[bytes]]:
        """`add_members` arguments for members[start:stop], PoPs for `installer`."""
        members = self.members[start:stop]
        return (
            [m.node_id for m in members],
            [m.public_key_eip2537 for m in members],
            [m.network_address for m in members],
            [m.proof_of_possession(installer) for m in members],
        )

    def quorum_signers(self) -> list[int]:
        """The first members whose weight reaches a quorum (3w >= 2n + 1)."""
        signers, weight = [], 0
        for index, member in enumerate(self.members):
            if 3 * weight >= 2 * self.n_shards + 1:
                break
            signers.append(index)
            weight += len(member.shards)
        return signers

    def sign(self, message: bytes, signers: Iterable[int]) -> tuple[bytes, bytes]:
        """An aggregate signature (EIP-2537 G2) of `signers` over `message`, and its bitmap."""
        signers = sorted(set(signers))
        signature = aggregate_signatures(self.members[i].private_key.sign(message) for i in signers)
        return signature.to_eip2537(), bitmap(signers, len(self.members))


def pop_for(private_key: BlsPrivateKey, installer: str | None, epoch: int = FIRST_EPOCH) -> bytes:
    """`private_key`'s proof of possession for `installer` (default: boa's sender), EIP-2537."""
    address = str(boa.env.eoa if installer is None else installer)
    pop = sign_proof_of_possession_evm(private_key, epoch, bytes.fromhex(address[2:]))
    return pop.to_eip2537()


def bitmap(signers: Iterable[int], n_members: int) -> bytes:
    """spec 2.7: bit i of byte i // 8, least significant bit first, marks member i."""
    out = bytearray((n_members + 7) // 8)
    for index in signers:
        out[index // 8] |= 1 << (index % 8)
    return bytes(out)


def make_committee(n_members: int, n_shards: int, seed: bytes = b"walruspy test") -> Committee:
    """A committee of fresh keys with the shards dealt round-robin."""
    members = []
    for index in range(n_members):
        key_seed = hashlib.sha256(seed + index.to_bytes(4, "big")).digest()
        members.append(
            Member(
                private_key=BlsPrivateKey.from_seed(key_seed),
                node_id=(index + 1).to_bytes(32, "big"),
                network_address=f"127.0.0.1:{9000 + index}",
                shards=tuple(range(index, n_shards, n_members)),
            )
        )
    return Committee(tuple(members), n_shards)


def vector_committee() -> Committee:
    """The committee of tests/vectors/messages.json."""
    data = json.loads(MESSAGE_VECTORS.read_text())["committee"]
    members = tuple(
        Member(
            private_key=BlsPrivateKey.from_bytes(bytes.fromhex(m["private_key"])),
            node_id=bytes.fromhex(m["node_id"]),
            network_address=f"node{m['index']}.walrus.test:9185",
            shards=tuple(m["shards"]),
        )
        for m in data["members"]
    )
    return Committee(members, data["n_shards"])


def confirmation(epoch: int, blob_id: bytes, object_id: bytes | None = None) -> bytes:
    """The BLOB_CERT message bytes (deletable when `object_id` is given)."""
    persistence = BlobPersistence() if object_id is None else BlobPersistence.deletable(object_id)
    return ConfirmationMessage(epoch, blob_id, persistence).to_bcs()


def invalid_blob_id_message(epoch: int, blob_id: bytes) -> bytes:
    """The INVALID_BLOB_ID message bytes."""
    return InvalidBlobIdMessage(epoch, blob_id).to_bcs()


def events(contract: Any, name: str | None = None) -> list[Any]:
    """Decoded logs of the contract's last call (views count), optionally those named `name`."""
    logs = contract.get_logs()
    return [log for log in logs if name is None or type(log).__name__ == name]


@dataclass
class Deployment:
    """A deployed WAL + Committee + System (+ Challenges) with a funded, approving user."""

    wal: Any
    committee_contract: Any
    system: Any
    committee: Committee
    owner: Any
    user: Any
    challenges: Any = None
    attributes: Any = None
    shared_blobs: Any = None

    def fund(self, account: Any, amount: int = USER_FUNDS) -> None:
        with boa.env.prank(self.owner):
            self.wal.transfer(account, amount)
        with boa.env.prank(account):
            self.wal.approve(self.system.address, 2**256 - 1)

    def reserve_and_register(
        self, spec: BlobSpec, deletable: bool = False, epochs_ahead: int = 3
    ) -> bytes:
        with boa.env.prank(self.user):
            return bytes(
                self.system.reserve_and_register(epochs_ahead, *spec.register_args(deletable))
            )

    def certify(
        self,
        object_id: bytes,
        spec: BlobSpec,
        signers: Sequence[int] | None = None,
        epoch: int | None = None,
    ) -> None:
        record = self.system.blob(object_id)
        message = confirmation(
            self.system.epoch() if epoch is None else epoch,
            spec.blob_id,
            object_id if record.deletable else None,
        )
        signers = self.committee.quorum_signers() if signers is None else signers
        signature, signers_bitmap = self.committee.sign(message, signers)
        self.system.certify_blob(object_id, signature, signers_bitmap, message)

    def next_epoch(self) -> None:
        boa.env.time_travel(seconds=self.system.epoch_duration_s())
        self.system.advance_epoch()


@pytest.fixture(autouse=True)
def fresh_storage_traces() -> None:
    """Forget the storage writes titanoboa recorded in earlier tests.

    titanoboa keeps, per address, every storage slot ever written in the session, and decodes
    them with the layout of the contract now at that address to print it when a call reverts.
    Tests deploy different contracts at the same addresses (the deployer's nonces restart at
    each test), and a slot of another layout can crash that decoding instead of raising the
    revert being tested.
    """
    boa.env.sstore_trace = {}
    boa.env.sha3_trace = {}


@pytest.fixture(scope="session")
def wal_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS_DIR / "Wal.vy"))


@pytest.fixture(scope="session")
def committee_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS_DIR / "Committee.vy"))


@pytest.fixture(scope="session")
def system_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS_DIR / "System.vy"))


@pytest.fixture(scope="session")
def challenges_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS_DIR / "Challenges.vy"))


@pytest.fixture(scope="session")
def attributes_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS_DIR / "Attributes.vy"))


@pytest.fixture(scope="session")
def shared_blobs_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS_DIR / "SharedBlobs.vy"))


@pytest.fixture(scope="session")
def committee() -> Committee:
    return vector_committee()


@pytest.fixture
def owner() -> Any:
    return boa.env.eoa


@pytest.fixture
def wal(wal_deployer: Any, owner: Any) -> Any:
    with boa.env.prank(owner):
        return wal_deployer.deploy(WAL_SUPPLY)


def deploy_committee(committee_deployer: Any, committee: Committee, batch: int = 50) -> Any:
    """Deploy a Committee.vy, add the members in batches and seal it."""
    contract = committee_deployer.deploy()
    for start in range(0, len(committee.members), batch):
        contract.add_members(*committee.member_args(start, start + batch))
    contract.seal(committee.shard_owners())
    return contract


@pytest.fixture
def committee_contract(committee_deployer: Any, committee: Committee) -> Any:
    return deploy_committee(committee_deployer, committee)


def deploy_system(
    system_deployer: Any,
    wal: Any,
    committee_contract: Any,
    *,
    epoch_duration_s: int = EPOCH_DURATION_S,
    max_epochs_ahead: int = MAX_EPOCHS_AHEAD,
    total_capacity: int = TOTAL_CAPACITY,
    storage_price: int = STORAGE_PRICE,
    write_price: int = WRITE_PRICE,
    challenges: Any = None,
    attributes: Any = None,
    shared_blobs: Any = None,
) -> Any:
    """Deploy System with a sealed committee contract and the given parameters.

    With annexes (a fresh Challenges.vy, Attributes.vy or SharedBlobs.vy), System is deployed
    naming them and each is attached to System, as `walruspy.chain.deploy` does.
    """
    system = system_deployer.deploy(
        wal.address,
        committee_contract.address,
        epoch_duration_s,
        max_epochs_ahead,
        total_capacity,
        storage_price,
        write_price,
        ZERO_ADDRESS,
        ZERO_ADDRESS if challenges is None else challenges.address,
        ZERO_ADDRESS if attributes is None else attributes.address,
        ZERO_ADDRESS if shared_blobs is None else shared_blobs.address,
    )
    for annex in (challenges, attributes, shared_blobs):
        if annex is not None:
            annex.attach(system.address)
    return system


@pytest.fixture
def deployment(
    system_deployer: Any,
    challenges_deployer: Any,
    attributes_deployer: Any,
    shared_blobs_deployer: Any,
    wal: Any,
    committee_contract: Any,
    committee: Committee,
    owner: Any,
) -> Deployment:
    challenges = challenges_deployer.deploy()
    attributes = attributes_deployer.deploy()
    shared_blobs = shared_blobs_deployer.deploy()
    system = deploy_system(
        system_deployer,
        wal,
        committee_contract,
        challenges=challenges,
        attributes=attributes,
        shared_blobs=shared_blobs,
    )
    user = boa.env.generate_address("user")
    d = Deployment(
        wal, committee_contract, system, committee, owner, user, challenges, attributes,
        shared_blobs,
    )  # fmt: skip
    d.fund(user)
    return d


@pytest.fixture
def system(deployment: Deployment) -> Any:
    return deployment.system


@pytest.fixture
def user(deployment: Deployment) -> Any:
    return deployment.user


@pytest.fixture(scope="module", params=["devchain", "anvil"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChainProcess]:
    """A real EVM node process per test module: the devchain, then anvil (skipped without npm)."""
    with running(request.param, tmp_path_factory.mktemp("devchain")) as started:
        if isinstance(started, str):
            if os.environ.get("CI"):  # .ci/run installs anvil: its absence there is a failure
                pytest.fail(f"anvil leg cannot run on CI: {started}")
            pytest.skip(f"anvil leg skipped: {started}")
        yield started
