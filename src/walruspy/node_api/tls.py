"""TLS bound to a node's on-chain network key: the node's certificate and the clients' pin.

Theory of operation (spec/walrus-system.md 3.9-3.10; Walrus `walrus-storage-node-client/src/
tls.rs` and the node's `tls` config). Every node has a network key pair, P-256 (Walrus's
`NetworkKeyPair` is secp256r1), registered on chain with the node as its SEC1-compressed public
key (33 bytes, `network_public_key`). The node serves its REST API over TLS with a certificate
for that key:

- **Self-signed** (the default): made at start from the key (`self_signed_certificate`), for the
  node's public host, valid from a day before now for ten years. No certificate authority is
  involved; what makes it trustworthy is the key, not the signature.
- **CA-signed** (`tls.certificate_path` in the node config): for nodes behind a public name;
  the certificate must still be for the node's network key, so pinned clients accept it too.

Clients and peers (`NodeClient` with a `network_public_key`) connect with a context that pins
the key on chain for that member (`pinned_context`): certificate-authority and host-name checks
are off, and the handshake itself (`SSLContext.sslobject_class`, which asyncio and uvloop both
use) compares the public key of the certificate the node presented with the pinned one, so a
node serving another key fails the connection before any request is written on it. NodeClient
reports that as `NodeIdentityError` (a `NodeConnectionError`: callers treat the node as
unreachable), naming the node. No trust on first use: the expected key always comes from the
chain. A member without a network key (a fixed committee from a file) is reached over plain
HTTP.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from walruspy.node_api.errors import NodeConnectionError

__all__ = [
    "NETWORK_KEY_FILE",
    "NETWORK_PUBLIC_KEY_BYTES",
    "NodeIdentityError",
    "PeerKeyMismatchError",
    "client_context",
    "generate_network_key",
    "load_network_key",
    "node_server_context",
    "pinned_context",
    "public_key_bytes",
    "self_signed_certificate",
    "server_context",
]

#: The network key's file in a node's key directory (PKCS#8 PEM, mode 0600).
NETWORK_KEY_FILE: Final = "network.key"
#: A SEC1-compressed P-256 public key.
NETWORK_PUBLIC_KEY_BYTES: Final = 33
_VALIDITY: Final = datetime.timedelta(days=3650)
_BACKDATE: Final = datetime.timedelta(days=1)


class NodeIdentityError(NodeConnectionError):
    """A node presented a TLS key other than the one registered on chain for it.

    A connection failure: whoever answered is not the node, so every caller treats it as the
    node being unreachable (skipped, retried, counted), never as the node's answer."""


def generate_network_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Create a P-256 network key at `path` (PKCS#8 PEM, mode 0600); `FileExistsError` if
    there is one."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite a key; 0600 from the first byte on.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    return key


def load_network_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 network key in `path`; a `ValueError` naming the file if it is not one."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path}: the network key must be a P-256 (secp256r1) key")
    return key


def public_key_bytes(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The SEC1-compressed public key (33 bytes): what the chain records."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )


def self_signed_certificate(key: ec.EllipticCurvePrivateKey, host: str) -> bytes:
    """A PEM certificate for `key`, for `host` (a DNS name or an IP address), signed by itself."""
    try:
        alt_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt_name = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64] or "walruspy-node")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def server_context(certificate_path: Path, key_path: Path) -> ssl.SSLContext:
    """The node's server TLS context: TLS 1.2 or newer, with this certificate and key.

    Refuses a certificate that is not for the key (a node would otherwise serve a key its
    clients refuse, with no clue why).
    """
    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    key = load_network_key(key_path)
    public = certificate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public_key_bytes(
        public
    ) != public_key_bytes(key):
        raise ValueError(
            f"the certificate {certificate_path} is not for the network key {key_path}"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate_path, key_path)
    return context


def node_server_context(
    key_path: Path, host: str, certificate_path: Path | None = None
) -> ssl.SSLContext:
    """A node's server context: `certificate_path` if given, else a self-signed certificate for
    `host` made now from the key at `key_path` (written to a private temporary file, which
    `ssl` needs, and removed once loaded)."""
    if certificate_path is not None:
        return server_context(certificate_path, key_path)
    key = load_network_key(key_path)
    with tempfile.TemporaryDirectory(prefix="walruspy-tls-") as directory:
        path = Path(directory) / "certificate.pem"
        path.write_bytes(self_signed_certificate(key, host))
        return server_context(path, key_path)


class PeerKeyMismatchError(ssl.SSLCertVerificationError):
    """The TLS handshake found a certificate for another key than the pinned one."""


class _PinnedSSLObject(ssl.SSLObject):
    """Completes the handshake, then refuses a peer whose certificate is not for the key its
    context pins: the connection fails before any request is written on it."""

    def do_handshake(self) -> None:
        super().do_handshake()
        expected = getattr(self.context, "pinned_key", None)
        if expected is None:
            return
        der = self.getpeercert(binary_form=True)
        if der is None:
            raise PeerKeyMismatchError("the peer presented no certificate")
        try:
            public = x509.load_der_x509_certificate(der).public_key()
        except ValueError as exc:
            raise PeerKeyMismatchError(f"the peer's certificate is unreadable: {exc}") from exc
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise PeerKeyMismatchError("the peer's certificate has no elliptic-curve key")
        presented = public_key_bytes(public)
        if presented != expected:
            raise PeerKeyMismatchError(
                f"presented TLS key {presented.hex()}, but its key on chain is {expected.hex()}"
            )


class _PinnedContext(ssl.SSLContext):
    pinned_key: bytes


def client_context(pinned_key: bytes | None = None) -> ssl.SSLContext:
    """A client context with no CA or host name check; with `pinned_key`, the handshake fails
    unless the server's certificate is for that key (`PeerKeyMismatchError`)."""
    context = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if pinned_key is not None:
        context.pinned_key = pinned_key
        context.sslobject_class = _PinnedSSLObject
    return context


@functools.lru_cache(maxsize=4096)
def pinned_context(pinned_key: bytes) -> ssl.SSLContext:
    """The one context pinning `pinned_key` (connections pool per context, so one per key)."""
    return client_context(pinned_key)
