"""Deploying the control plane to any EVM chain, and the deployment file the other commands read.

Theory of operation (spec/walrus-system.md 2.1, 2.2, 2.9). Walrus's `init::initialize_walrus`
creates the System and Staking objects and the first epoch change selects the committee. Our
fixed-committee port does the same in these steps from one deployer account, over standard
JSON-RPC only (so the devchain, anvil and a public testnet all work):

1. `Wal(supply)`: the WAL token, whole supply minted to the deployer;
2. `Committee()`, then `add_members` in batches of `MEMBER_BATCH` members in committee order
   (strictly increasing node ID, the order of Walrus's committee map), each with its proof of
   possession, then `seal` with the shard assignment (byte i = committee index of the holder of
   shard i);
3. System's annexes: `Challenges()`, the storage challenges (ours, not Walrus's:
   Challenges.vy), `Attributes()`, the blob attributes (Attributes.vy), and `SharedBlobs()`,
   the shared blobs (SharedBlobs.vy);
4. `System(wal, committee, epoch duration, max epochs ahead, capacity, prices, no staking,
   challenges, attributes, shared_blobs)`, whose constructor starts epoch 1 and emits
   EpochChangeStart/EpochChangeDone: the block of this transaction is where the event stream
   of the deployment starts;
5. `attach(system)` on each annex: System knows its annexes from
   its constructor (immutable, so settling rewards reads Challenges for free, and a client that
   knows System finds both), and each annex learns System once, from the deployer only, and
   checks that System names it. The deployment is complete after these transactions.

Proofs of possession (spec 2.9; Move `staking_pool::new`): certificates are checked against sums
of member keys, so a member with a rogue key (g1^x minus the others' keys) could forge them
alone. Every member therefore comes with its key's signature over the PROOF_OF_POSSESSION message
for the deployer's address and `FIRST_EPOCH` (`sign_deployment_pop`; `walruspy node keygen
--deployer ADDRESS` prints it), and Committee.vy checks each one in `add_members`. `deploy` checks
them in Python first, naming the member whose proof is wrong, before it sends any transaction.
Every transaction has an explicit gas limit measured on the devchain and on anvil (see the
constants); nothing is estimated.

`Deployment` records the chain ID, the contracts' addresses, the deployer, the start block and a
digest of the contracts' ABIs, as a JSON file; loading checks every field and names what is
wrong, and the chain client refuses a deployment whose ABI digest differs from the ABIs it was
built with.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.address import is_address, to_canonical_address, to_checksum_address
from web3 import AsyncWeb3

from walruspy.chain.api import DeploymentError
from walruspy.chain.contracts import DEPLOYABLE, Abi, load_contract
from walruspy.chain.evm_rpc import (
    DEFAULT_RECEIPT_TIMEOUT_S,
    ConnectorFactory,
    ContractHandle,
    TransactionSender,
    open_web3,
    rpc_errors,
)
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.crypto import BlsPrivateKey, BlsPublicKey, BlsSignature
from walruspy.core.errors import WalrusError
from walruspy.core.messages import (
    ProofOfPossessionMessage,
    sign_proof_of_possession_evm,
    verify_proof_of_possession,
)

__all__ = [
    "ANNEX_ATTACH_GAS",
    "ANNEX_CONTRACTS",
    "ATTRIBUTES_DEPLOY_GAS",
    "CHALLENGES_DEPLOY_GAS",
    "DEPLOYMENT_FORMAT",
    "FIRST_EPOCH",
    "MAX_COMMITTEE_MEMBERS",
    "MAX_EPOCHS_AHEAD",
    "MAX_SHARDS",
    "MEMBER_BATCH",
    "SHARED_BLOBS_DEPLOY_GAS",
    "U64",
    "Annexes",
    "DeployParams",
    "Deployment",
    "ShardAssignment",
    "abi_digest",
    "assign_shards",
    "attach_annexes",
    "check_deployment_pop",
    "check_range",
    "constructor_data",
    "create_annexes",
    "create_contract",
    "deploy",
    "load_committee_file",
    "sign_deployment_pop",
]

#: The format tag of deployment files; bump it when a field changes meaning.
DEPLOYMENT_FORMAT: Final = "walruspy-deployment/3"
#: The epoch the deployed committee serves (System.vy's FIRST_EPOCH).
FIRST_EPOCH: Final = 1
#: Members per `add_members` transaction. Each member costs about 346k gas (the key's subgroup
#: check, 12k; its proof of possession, 171k: a hash to G2 and a two-pair pairing; seven
#: fresh storage slots), so 25 members take 8.8M gas and their gas limit (12.5M) stays under
#: EIP-7825's 16.8M cap on one transaction (Osaka), well inside the 30M block gas limit of the
#: devchain, anvil and mainnet; their 16 KiB of calldata is far inside the 128 KiB cap on a
#: transaction's size. 150 members take six transactions.
MEMBER_BATCH: Final = 25

# Gas limits: about 1.4x what the devchain measured (anvil charges the same; bench/chain.py
# prints both). Measured: Wal 490,714; Committee 3,519,909; System 5,146,470; Challenges
# 1,273,926 (creation costs 200 gas per byte of runtime code); Challenges.attach 48,862;
# add_members 183k + 346.1k per member in the first batch (100k + 346.1k in the next ones:
# 8,751,902 for 25 members); seal 113k + 22.4k per member + 1,004 per shard (4,478,118 for 150
# members and 1000 shards).
_WAL_DEPLOY_GAS: Final = 700_000
_COMMITTEE_DEPLOY_GAS: Final = 4_900_000
_SYSTEM_DEPLOY_GAS: Final = 7_200_000
#: Creating Challenges.vy and Attributes.vy and attaching each to System (shared with
#: deploy_staking).
CHALLENGES_DEPLOY_GAS: Final = 1_800_000
ATTRIBUTES_DEPLOY_GAS: Final = 1_800_000
SHARED_BLOBS_DEPLOY_GAS: Final = 1_200_000
#: SharedBlobs.attach also approves System for its WAL (a fresh allowance slot).
ANNEX_ATTACH_GAS: Final = 120_000
_ADD_MEMBERS_BASE_GAS: Final = 220_000
_ADD_MEMBERS_PER_MEMBER_GAS: Final = 490_000
_SEAL_BASE_GAS: Final = 160_000
_SEAL_PER_MEMBER_GAS: Final = 32_000
_SEAL_PER_SHARD_GAS: Final = 1_500

# System's staking contract for a fixed committee: none.
_NO_STAKING: Final = "0x" + "00" * 20

_U32: Final = (1 << 32) - 1
#: Bounds the contracts enforce, checked before any transaction (shared with deploy_staking).
U64: Final = (1 << 64) - 1
MAX_COMMITTEE_MEMBERS: Final = 150  # Committee.vy MAX_MEMBERS (Move's active-set limit)
MAX_SHARDS: Final = 1000  # Committee.vy and Staking.vy MAX_SHARDS
MAX_EPOCHS_AHEAD: Final = 1000  # storage_accounting.vy MAX_MAX_EPOCHS_AHEAD

ShardAssignment = Literal["contiguous", "round-robin"]


def assign_shards(
    n_members: int, n_shards: int, mode: ShardAssignment = "contiguous"
) -> list[tuple[int, ...]]:
    """Deal `n_shards` shards to `n_members` members for a devnet, as evenly as possible.

    "contiguous" gives member i the range [i*n/m, (i+1)*n/m); "round-robin" gives it shards
    i, i+m, i+2m, ... Every member gets at least one shard, so n_shards >= n_members.
    """
    if n_members < 1 or n_shards < n_members:
        raise ValueError(f"cannot deal {n_shards} shards to {n_members} members, one at least each")
    if mode == "contiguous":
        bounds = [i * n_shards // n_members for i in range(n_members + 1)]
        return [tuple(range(bounds[i], bounds[i + 1])) for i in range(n_members)]
    if mode == "round-robin":
        return [tuple(range(i, n_shards, n_members)) for i in range(n_members)]
    raise ValueError(f"unknown shard assignment {mode!r}: contiguous or round-robin")


def _evm_address(address: str) -> bytes:
    if not isinstance(address, str) or not is_address(address):
        raise ValueError(f"not an EVM address: {address!r}")
    return to_canonical_address(address)


def sign_deployment_pop(private_key: BlsPrivateKey, deployer: str) -> BlsSignature:
    """A member's proof of possession for a deployment by `deployer` (an EVM address).

    The key's signature over its PROOF_OF_POSSESSION message for `deployer` and `FIRST_EPOCH`:
    what Committee.vy's `add_members` checks when `deployer` installs the committee.
    """
    return sign_proof_of_possession_evm(private_key, FIRST_EPOCH, _evm_address(deployer))


def check_deployment_pop(public_key: BlsPublicKey, pop: BlsSignature, deployer: str) -> bool:
    """Whether `pop` proves possession of `public_key` for a deployment by `deployer`."""
    message = ProofOfPossessionMessage.for_evm_address(
        FIRST_EPOCH, _evm_address(deployer), public_key
    )
    return verify_proof_of_possession(message, pop)


@dataclass(frozen=True, slots=True)
class DeployParams:
    """What a deployment needs: the first committee and the system's parameters.

    `members` may come in any order; they are deployed in committee order (by node ID).
    `proofs_of_possession[i]` is the proof of `members[i]`'s key for the deployer's address
    (`sign_deployment_pop`); it is kept with its member. Prices are in FROST (10^-9 WAL) per
    1 MiB unit of encoded size (per epoch for storage).
    """

    members: tuple[CommitteeMember, ...]
    proofs_of_possession: tuple[BlsSignature, ...]
    n_shards: int
    epoch_duration_s: int
    max_epochs_ahead: int
    total_capacity_size: int
    storage_price_per_unit_size: int
    write_price_per_unit_size: int
    wal_supply: int = 10**9 * 10**9  # one billion WAL, Walrus's total supply

    def __post_init__(self) -> None:
        if len(self.proofs_of_possession) != len(self.members):
            raise ValueError(
                f"{len(self.members)} members but {len(self.proofs_of_possession)} proofs of "
                f"possession: one per member"
            )
        for pop in self.proofs_of_possession:
            if not isinstance(pop, BlsSignature):
                raise TypeError(f"a proof of possession must be a BlsSignature, got {pop!r}")
        pairs = sorted(
            zip(self.members, self.proofs_of_possession, strict=True), key=lambda p: p[0].node_id
        )
        members = tuple(member for member, _ in pairs)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "proofs_of_possession", tuple(pop for _, pop in pairs))
        if not 1 <= len(members) <= MAX_COMMITTEE_MEMBERS:
            raise ValueError(f"a committee has 1 to {MAX_COMMITTEE_MEMBERS} members")
        if not 1 <= self.n_shards <= MAX_SHARDS:
            raise ValueError(f"n_shards must be in [1, {MAX_SHARDS}], got {self.n_shards}")
        self.committee()  # checks node IDs unique, shards disjoint and covering
        check_range("epoch_duration_s", self.epoch_duration_s, 1, U64)
        check_range("max_epochs_ahead", self.max_epochs_ahead, 1, MAX_EPOCHS_AHEAD)
        check_range("total_capacity_size", self.total_capacity_size, 0, U64)
        check_range("storage_price_per_unit_size", self.storage_price_per_unit_size, 0, U64)
        check_range("write_price_per_unit_size", self.write_price_per_unit_size, 0, U64)
        check_range("wal_supply", self.wal_supply, 0, (1 << 256) - 1)

    def committee(self) -> Committee:
        """The committee the deployment creates, as the chain client will read it back."""
        return Committee(FIRST_EPOCH, self.n_shards, self.members)

    def shard_owners(self) -> bytes:
        """`seal`'s argument: byte i is the committee index of the member holding shard i."""
        committee = self.committee()
        return bytes(committee.shard_owner(shard) for shard in range(self.n_shards))

    def check_proofs_of_possession(self, deployer: str) -> None:
        """Raise `DeploymentError` naming the first member whose proof fails for `deployer`.

        What Committee.vy checks, so that a wrong proof fails here and not as a revert.
        """
        for member, pop in zip(self.members, self.proofs_of_possession, strict=True):
            if not check_deployment_pop(member.public_key, pop, deployer):
                raise DeploymentError(
                    f"member {member.node_id.hex()} ({member.network_address}): its proof of "
                    f"possession does not verify for deployer {to_checksum_address(deployer)} "
                    f"and epoch {FIRST_EPOCH}"
                )


def check_range(name: str, value: int, low: int, high: int) -> None:
    """ValueError naming `name` unless `value` is an integer (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def abi_digest(abis: Sequence[Abi]) -> str:
    """A SHA-256 hex digest of the deployable contracts' ABIs (in `DEPLOYABLE` order).

    Equal digests mean a client built from these contracts can talk to the deployment.
    """
    canonical = json.dumps(list(abis), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the control plane lives on one chain; saved as a JSON deployment file."""

    chain_id: int
    system: str
    wal: str
    committee: str
    deployer: str
    start_block: int
    abi_digest: str
    #: Challenges.vy, the storage challenges System's reward settlement consults.
    challenges: str
    #: Attributes.vy, the blob attributes.
    attributes: str
    #: SharedBlobs.vy, the shared blobs.
    shared_blobs: str
    #: Staking.vy and Pools.vy for an elected committee (`deploy_staking`); None for a
    #: fixed one, where `committee` is the only committee.
    staking: str | None = None
    pools: str | None = None

    def __post_init__(self) -> None:
        if (self.staking is None) != (self.pools is None):
            raise DeploymentError("a staking deployment names both staking and pools")

    def to_json(self) -> dict[str, Any]:
        """The JSON object of a deployment file."""
        contracts = {
            "system": self.system,
            "wal": self.wal,
            "committee": self.committee,
            "challenges": self.challenges,
            "attributes": self.attributes,
            "shared_blobs": self.shared_blobs,
        }
        if self.staking is not None and self.pools is not None:
            contracts |= {"staking": self.staking, "pools": self.pools}
        return {
            "format": DEPLOYMENT_FORMAT,
            "chain_id": self.chain_id,
            "contracts": contracts,
            "deployer": self.deployer,
            "start_block": self.start_block,
            "abi_digest": self.abi_digest,
        }

    @classmethod
    def from_json(cls, data: object, source: str = "deployment") -> Deployment:
        """Parse a deployment file's object; `DeploymentError` names the first bad field."""
        if not isinstance(data, dict):
            raise DeploymentError(f"{source}: expected a JSON object")
        if data.get("format") != DEPLOYMENT_FORMAT:
            raise DeploymentError(
                f"{source}: format is {data.get('format')!r}, expected {DEPLOYMENT_FORMAT!r}"
            )
        contracts = data.get("contracts")
        if not isinstance(contracts, dict):
            raise DeploymentError(f"{source}: 'contracts' must be an object")

        def address(container: dict[str, Any], key: str) -> str:
            value = container.get(key)
            if not isinstance(value, str) or not is_address(value):
                raise DeploymentError(f"{source}: {key!r} must be a hex address, got {value!r}")
            return to_checksum_address(value)

        def natural(key: str) -> int:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DeploymentError(f"{source}: {key!r} must be a natural number, got {value!r}")
            return value

        digest = data.get("abi_digest")
        if not isinstance(digest, str) or len(digest) != 64:
            raise DeploymentError(f"{source}: 'abi_digest' must be 64 hex digits")
        staking = address(contracts, "staking") if "staking" in contracts else None
        pools = address(contracts, "pools") if "pools" in contracts else None
        return cls(
            chain_id=natural("chain_id"),
            system=address(contracts, "system"),
            wal=address(contracts, "wal"),
            committee=address(contracts, "committee"),
            deployer=address(data, "deployer"),
            start_block=natural("start_block"),
            abi_digest=digest,
            challenges=address(contracts, "challenges"),
            attributes=address(contracts, "attributes"),
            shared_blobs=address(contracts, "shared_blobs"),
            staking=staking,
            pools=pools,
        )

    def save(self, path: Path | str) -> None:
        """Write the deployment file (atomically: a reader never sees half of it)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path | str) -> Deployment:
        """Read a deployment file; `DeploymentError` says what is wrong with it."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise DeploymentError(
                f"{path}: cannot read the deployment file: {exc.strerror}"
            ) from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DeploymentError(f"{path}: not a JSON deployment file: {exc}") from exc
        return cls.from_json(data, str(path))


def load_committee_file(
    path: Path | str,
    n_shards: int | None = None,
    assignment: ShardAssignment = "contiguous",
    deployer: str | None = None,
) -> tuple[tuple[CommitteeMember, ...], int, tuple[BlsSignature, ...]]:
    """Read a committee file: members, the shard count and the members' proofs of possession.

    The file is `{"n_shards": N, "members": [{"node_id": hex32, "public_key": hex48,
    "proof_of_possession": hex96, "network_address": "host:port", "shards": [...]}, ...]}`.
    `proof_of_possession` is the compressed BLS signature that `walruspy node keygen --deployer
    ADDRESS` prints; given `deployer`, each is checked for that address (`DeploymentError` names
    the member). Either every member lists its shards, or none does and `n_shards` (the
    argument, else the file's) shards are dealt with `assign_shards(assignment)` in the order
    the members appear.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DeploymentError(f"{path}: cannot read the committee file: {exc.strerror}") from exc
    except ValueError as exc:
        raise DeploymentError(f"{path}: not a JSON committee file: {exc}") from exc
    entries = data.get("members") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DeploymentError(f"{path}: 'members' must be a non-empty list")
    if n_shards is None:
        n_shards = data.get("n_shards")
    with_shards = sum(isinstance(e, dict) and "shards" in e for e in entries)
    if with_shards not in (0, len(entries)):
        raise DeploymentError(f"{path}: either every member lists its shards or none does")
    if with_shards == 0:
        if isinstance(n_shards, bool) or not isinstance(n_shards, int):
            raise DeploymentError(f"{path}: give 'n_shards' to deal the shards to the members")
        try:
            dealt: list[tuple[int, ...] | None] = list(
                assign_shards(len(entries), n_shards, assignment)
            )
        except ValueError as exc:
            raise DeploymentError(f"{path}: {exc}") from exc
    else:
        dealt = [None] * len(entries)
    parsed = [
        _committee_member(entry, shards, f"{path}: member {i}", deployer)
        for i, (entry, shards) in enumerate(zip(entries, dealt, strict=True))
    ]
    members = tuple(member for member, _ in parsed)
    pops = tuple(pop for _, pop in parsed)
    if n_shards is None:
        n_shards = sum(member.weight for member in members)
    if isinstance(n_shards, bool) or not isinstance(n_shards, int):
        raise DeploymentError(f"{path}: 'n_shards' must be an integer")
    return members, n_shards, pops


def _committee_member(
    entry: object, shards: tuple[int, ...] | None, where: str, deployer: str | None
) -> tuple[CommitteeMember, BlsSignature]:
    if not isinstance(entry, dict):
        raise DeploymentError(f"{where}: expected an object")
    try:
        node_id = bytes.fromhex(str(entry["node_id"]).removeprefix("0x"))
        public_key = BlsPublicKey.from_bytes(
            bytes.fromhex(str(entry["public_key"]).removeprefix("0x"))
        )
        try:
            pop = BlsSignature.from_bytes(
                bytes.fromhex(str(entry["proof_of_possession"]).removeprefix("0x"))
            )
        except (ValueError, WalrusError) as exc:
            raise DeploymentError(f"{where}: 'proof_of_possession': {exc}") from exc
        if deployer is not None and not check_deployment_pop(public_key, pop, deployer):
            raise DeploymentError(
                f"{where}: 'proof_of_possession' does not verify for its public key, deployer "
                f"{to_checksum_address(deployer)} and epoch {FIRST_EPOCH} (make it with "
                f"`walruspy node keygen --deployer {to_checksum_address(deployer)}` or "
                f"`walruspy node pop`)"
            )
        listed = entry.get("shards") if shards is None else shards
        if not isinstance(listed, list | tuple):
            raise DeploymentError(f"{where}: 'shards' must be a list of shard indices")
        member = CommitteeMember(node_id, public_key, entry["network_address"], tuple(listed))
        return member, pop
    except DeploymentError:
        raise
    except KeyError as exc:
        raise DeploymentError(f"{where}: missing {exc.args[0]!r}") from exc
    except (ValueError, TypeError, WalrusError) as exc:
        raise DeploymentError(f"{where}: {exc}") from exc


def constructor_data(abi: Abi, bytecode: bytes, *args: Any) -> bytes:
    """The creation transaction's data: the bytecode and its ABI-encoded constructor args."""
    constructor = next((e for e in abi if e["type"] == "constructor"), None)
    types = [i["type"] for i in constructor["inputs"]] if constructor else []
    return bytecode + abi_encode(types, list(args))


async def create_contract(
    sender: TransactionSender, name: str, data: bytes, gas: int
) -> tuple[str, int]:
    """Send a contract creation; the new contract's address and the receipt's block."""
    receipt = await sender.send(f"deploy {name}", to=None, data=data, gas=gas)
    address = receipt["contractAddress"]
    if address is None:
        raise AssertionError(f"deploying {name}: receipt without a contract address")
    return to_checksum_address(address), receipt["blockNumber"]


async def deploy(
    rpc_url: str,
    deployer_key: bytes,
    params: DeployParams,
    *,
    receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
    connector: ConnectorFactory | None = None,
) -> Deployment:
    """Deploy WAL, the committee, Challenges and System from `deployer_key`'s account (module doc).

    `connector`: the connectors of the JSON-RPC sessions (`open_web3`; the simulator's network).

    The deployer holds the whole WAL supply afterwards. Raises `DeploymentError` before any
    transaction if a member's proof of possession does not verify for the deployer's address,
    `ChainUnavailableError`, `ChainRejectedError` (e.g. no ether for gas) or `ChainRevertError`
    (a contract check).
    """
    params.check_proofs_of_possession(str(Account.from_key(deployer_key).address))
    compiled = dict(await asyncio.to_thread(lambda: [(n, load_contract(n)) for n in DEPLOYABLE]))
    wal_abi, wal_code = compiled["Wal"]
    committee_abi, committee_code = compiled["Committee"]
    system_abi, system_code = compiled["System"]
    w3 = open_web3(rpc_url, connector=connector)
    try:
        with rpc_errors(rpc_url, "read the chain id"):
            chain_id = await w3.eth.chain_id
        sender = TransactionSender(w3, rpc_url, deployer_key, chain_id, receipt_timeout_s)
        wal, _ = await create_contract(
            sender, "Wal", constructor_data(wal_abi, wal_code, params.wal_supply), _WAL_DEPLOY_GAS
        )
        committee_address, _ = await create_contract(
            sender, "Committee", constructor_data(committee_abi, committee_code),
            _COMMITTEE_DEPLOY_GAS,
        )  # fmt: skip
        committee = ContractHandle(w3, rpc_url, committee_address, committee_abi)
        await _fill_committee(sender, committee, params)
        annexes = await create_annexes(sender, compiled)
        system_data = constructor_data(
            system_abi, system_code, wal, committee_address, params.epoch_duration_s,
            params.max_epochs_ahead, params.total_capacity_size,
            params.storage_price_per_unit_size, params.write_price_per_unit_size, _NO_STAKING,
            *annexes.addresses(),
        )  # fmt: skip
        system, start_block = await create_contract(
            sender, "System", system_data, _SYSTEM_DEPLOY_GAS
        )
        await attach_annexes(
            sender, w3=w3, rpc_url=rpc_url, compiled=compiled, annexes=annexes, system=system
        )
    finally:
        await w3.provider.disconnect()
    return Deployment(
        chain_id=chain_id,
        system=system,
        wal=wal,
        committee=committee_address,
        deployer=sender.address,
        start_block=start_block,
        abi_digest=abi_digest([compiled[name][0] for name in DEPLOYABLE]),
        challenges=annexes.challenges,
        attributes=annexes.attributes,
        shared_blobs=annexes.shared_blobs,
    )


@dataclass(frozen=True, slots=True)
class Annexes:
    """The contracts System names in its constructor and that learn System afterwards
    (`attach`): Challenges.vy, Attributes.vy and SharedBlobs.vy, split from System for the
    code limit. Their order is System's constructor arguments' (`ANNEX_CONTRACTS`)."""

    challenges: str
    attributes: str
    shared_blobs: str

    def addresses(self) -> tuple[str, str, str]:
        """The addresses in `ANNEX_CONTRACTS` order."""
        return (self.challenges, self.attributes, self.shared_blobs)


#: The annexes' contract names and creation gas, in System's constructor order.
ANNEX_CONTRACTS: Final = (
    ("Challenges", CHALLENGES_DEPLOY_GAS),
    ("Attributes", ATTRIBUTES_DEPLOY_GAS),
    ("SharedBlobs", SHARED_BLOBS_DEPLOY_GAS),
)


async def create_annexes(
    sender: TransactionSender, compiled: dict[str, tuple[Abi, bytes]]
) -> Annexes:
    """Deploy the annexes (before System, whose constructor names them)."""
    addresses = []
    for name, gas in ANNEX_CONTRACTS:
        abi, code = compiled[name]
        address, _ = await create_contract(sender, name, constructor_data(abi, code), gas)
        addresses.append(address)
    return Annexes(*addresses)


async def attach_annexes(
    sender: TransactionSender,
    *,
    w3: AsyncWeb3[Any],
    rpc_url: str,
    compiled: dict[str, tuple[Abi, bytes]],
    annexes: Annexes,
    system: str,
) -> None:
    """Tell each annex its System (once, from the deployer that created it)."""
    for (name, _), address in zip(ANNEX_CONTRACTS, annexes.addresses(), strict=True):
        handle = ContractHandle(w3, rpc_url, address, compiled[name][0])
        data = handle.calldata("attach", system)
        await sender.send(f"attach {name}", to=address, data=data, gas=ANNEX_ATTACH_GAS)


async def _fill_committee(
    sender: TransactionSender, committee: ContractHandle, params: DeployParams
) -> None:
    members = params.members
    for start in range(0, len(members), MEMBER_BATCH):
        batch = members[start : start + MEMBER_BATCH]
        data = committee.calldata(
            "add_members",
            [m.node_id for m in batch],
            [m.public_key.to_eip2537() for m in batch],
            [m.network_address for m in batch],
            [pop.to_eip2537() for pop in params.proofs_of_possession[start : start + MEMBER_BATCH]],
        )
        gas = _ADD_MEMBERS_BASE_GAS + _ADD_MEMBERS_PER_MEMBER_GAS * len(batch)
        await sender.send("add committee members", to=committee.address, data=data, gas=gas)
    seal_gas = (
        _SEAL_BASE_GAS + _SEAL_PER_MEMBER_GAS * len(members) + _SEAL_PER_SHARD_GAS * params.n_shards
    )
    data = committee.calldata("seal", params.shard_owners())
    await sender.send("seal the committee", to=committee.address, data=data, gas=seal_gas)
