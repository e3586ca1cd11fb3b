"""The node's key files: the BLS protocol key and the EVM wallet key (spec/walrus-system.md 3.10).

Theory of operation: `keygen` writes three files, created with mode 0600 and `O_EXCL`, so an
existing key is never overwritten (a node that lost its protocol key loses its identity in the
committee). The protocol key is a BLS12-381 min-pk scalar (Walrus's `ProtocolKeyPair`) and the
wallet key a secp256k1 account key, the EVM stand-in for Walrus's Sui wallet, each 32 bytes as 64
hex digits and a newline; the network key (`network.key`) is Walrus's TLS identity, a P-256 key
in PKCS#8 PEM (`walruspy.node_api.tls`), registered on chain so clients can pin it.

A committee member also hands the deployer a proof of possession of its protocol key: the key's
signature over the PROOF_OF_POSSESSION message for the deployer's EVM address and the first
epoch (`walruspy.chain.deploy.sign_deployment_pop`), which the Committee contract checks.
`keygen(..., deployer=ADDRESS)` and `proof_of_possession_hex` make it, as 96-byte compressed hex.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_utils.address import is_address

from walruspy.chain.deploy import sign_deployment_pop
from walruspy.core.crypto import BlsPrivateKey
from walruspy.node.errors import KeyFileError
from walruspy.node_api.tls import NETWORK_KEY_FILE, generate_network_key, public_key_bytes

PROTOCOL_KEY_FILE = "protocol.key"
WALLET_KEY_FILE = "wallet.key"
#: A key file is 64 hex digits and a newline; anything much longer is not one.
MAX_KEY_FILE_BYTES = 256
_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class GeneratedKeys:
    """Where `keygen` wrote the keys, and the public halves to register on chain."""

    protocol_key_path: Path
    wallet_key_path: Path
    protocol_public_key_hex: str
    wallet_address: str
    network_key_path: Path
    #: The network key's public half as registered on chain (SEC1-compressed P-256, hex).
    network_public_key_hex: str
    #: The protocol key's proof of possession for the deployer given to `keygen`, else None.
    proof_of_possession_hex: str | None = None


def _write_new(path: Path, secret: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def proof_of_possession_hex(protocol_key: BlsPrivateKey, deployer: str) -> str:
    """The protocol key's proof of possession for a deployment by `deployer`, for the committee
    file: the 96-byte compressed BLS signature as hex. ValueError if `deployer` is no address."""
    return sign_deployment_pop(protocol_key, deployer).to_bytes().hex()


def keygen(
    out_dir: Path,
    deployer: str | None = None,
    *,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> GeneratedKeys:
    """Create `protocol.key`, `wallet.key` and `network.key` in `out_dir` (mode 0600); refuse
    to overwrite.

    Given `deployer` (an EVM address), also make the protocol key's proof of possession for it.
    `random_bytes` draws the protocol and wallet keys (the simulator passes a seeded source so
    that a seed names the same committee; the TLS network key is always the system's).
    """
    if deployer is not None and not is_address(deployer):
        # A bad address fails here, before any key file exists.
        raise ValueError(f"not an EVM address: {deployer!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol_path = out_dir / PROTOCOL_KEY_FILE
    wallet_path = out_dir / WALLET_KEY_FILE
    network_path = out_dir / NETWORK_KEY_FILE
    for path in (protocol_path, wallet_path, network_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    protocol = BlsPrivateKey.generate(random_bytes)
    wallet = Account.from_key(random_bytes(32))
    _write_new(protocol_path, protocol.to_bytes())
    _write_new(wallet_path, bytes(wallet.key))
    try:
        network = generate_network_key(network_path)
    except FileExistsError:
        raise KeyFileError(f"{network_path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create {network_path}: {exc.strerror}") from exc
    return GeneratedKeys(
        protocol_key_path=protocol_path,
        wallet_key_path=wallet_path,
        protocol_public_key_hex=protocol.public_key().to_bytes().hex(),
        wallet_address=str(wallet.address),
        network_key_path=network_path,
        network_public_key_hex=public_key_bytes(network).hex(),
        proof_of_possession_hex=(
            None if deployer is None else proof_of_possession_hex(protocol, deployer)
        ),
    )


def _read_secret(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    text = raw.decode("ascii", "replace").strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(raw) > MAX_KEY_FILE_BYTES or len(secret) != _KEY_BYTES:
        raise KeyFileError(f"the {what} {path} must hold {_KEY_BYTES} bytes as 64 hex digits")
    return secret


def load_protocol_key(path: Path) -> BlsPrivateKey:
    """Read a BLS protocol key file."""
    secret = _read_secret(path, "protocol key")
    try:
        return BlsPrivateKey.from_bytes(secret)
    except ValueError as exc:
        raise KeyFileError(f"the protocol key {path} is not a BLS private key: {exc}") from exc


def load_wallet_key(path: Path) -> bytes:
    """Read an EVM wallet key file (the 32-byte secp256k1 secret)."""
    secret = _read_secret(path, "wallet key")
    try:
        Account.from_key(secret)
    except ValueError as exc:
        raise KeyFileError(f"the wallet key {path} is not a secp256k1 key: {exc}") from exc
    return secret
