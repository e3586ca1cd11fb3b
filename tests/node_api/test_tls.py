"""TLS bound to the network key (walruspy.node_api.tls) over real sockets: the node's server
context, and NodeClient's pin to the key on chain."""

from __future__ import annotations

import datetime
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.node.errors import KeyFileError
from walruspy.node.keys import keygen
from walruspy.node_api.client import NodeClient, node_url
from walruspy.node_api.errors import NodeConnectionError
from walruspy.node_api.tls import (
    NodeIdentityError,
    generate_network_key,
    load_network_key,
    node_server_context,
    public_key_bytes,
    self_signed_certificate,
    server_context,
)

HEALTH = {"success": {"code": 200, "data": {"uptime": {"secs": 1, "nanos": 0}}}}


@asynccontextmanager
async def serving(key_path: Path | None, certificate: Path | None = None) -> AsyncIterator[int]:
    """A tiny server on 127.0.0.1 (TLS for `key_path`, else plain HTTP); yields its port."""

    async def answer(request: web.Request) -> web.Response:
        del request
        return web.Response(text="hello", status=200)

    app = web.Application()
    app.router.add_get("/hello", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = None if key_path is None else node_server_context(key_path, "127.0.0.1", certificate)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def hello(client: NodeClient) -> bytes:
    _, body = await client.request("GET", "/hello", max_response_bytes=100)
    return body


def member_with(network_key: bytes, port: int) -> CommitteeMember:
    key = BlsPrivateKey.from_bytes(bytes(31) + b"\x07").public_key()
    return CommitteeMember(b"\x01" * 32, key, f"127.0.0.1:{port}", (0,), network_key)


def test_keygen_writes_a_private_p256_network_key_once(tmp_path: Path) -> None:
    keys = keygen(tmp_path / "keys")
    assert keys.network_key_path.name == "network.key"
    assert stat.S_IMODE(keys.network_key_path.stat().st_mode) == 0o600
    key = load_network_key(keys.network_key_path)
    assert public_key_bytes(key).hex() == keys.network_public_key_hex
    assert len(public_key_bytes(key)) == 33
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "network.key").write_text("existing")
    with pytest.raises(KeyFileError, match=r"network\.key already exists"):
        keygen(tmp_path / "other")


def test_a_non_p256_key_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "network.key"
    other = ec.generate_private_key(ec.SECP384R1())
    path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match=r"network\.key: the network key must be a P-256"):
        load_network_key(path)
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(ValueError, match=r"junk\.key: not a PEM private key"):
        load_network_key(tmp_path / "junk.key")


def test_the_self_signed_certificate_carries_the_key_and_the_host(tmp_path: Path) -> None:
    key = generate_network_key(tmp_path / "network.key")
    for host, kind in (("127.0.0.1", x509.IPAddress), ("node1.example.org", x509.DNSName)):
        certificate = x509.load_pem_x509_certificate(self_signed_certificate(key, host))
        public = certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public_key_bytes(public) == public_key_bytes(key)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert [str(n.value) for n in names.value if isinstance(n, kind)] == [host]


def test_a_certificate_for_another_key_is_refused_at_start(tmp_path: Path) -> None:
    key_path = tmp_path / "network.key"
    generate_network_key(key_path)
    stranger = generate_network_key(tmp_path / "stranger.key")
    certificate = tmp_path / "certificate.pem"
    certificate.write_bytes(self_signed_certificate(stranger, "127.0.0.1"))
    with pytest.raises(ValueError, match=r"certificate\.pem is not for the network key"):
        server_context(certificate, key_path)


async def test_a_pinned_client_talks_to_the_node_with_its_key(tmp_path: Path) -> None:
    key_path = tmp_path / "network.key"
    expected = public_key_bytes(generate_network_key(key_path))
    async with serving(key_path) as port:
        member = member_with(expected, port)
        assert node_url(member.network_address, expected) == f"https://127.0.0.1:{port}"
        async with NodeClient.for_member(member, timeout_s=10) as client:
            assert await hello(client) == b"hello"
            assert await hello(client) == b"hello"  # a kept-alive connection is checked too


async def test_a_node_serving_another_key_is_refused_with_its_name(tmp_path: Path) -> None:
    key_path = tmp_path / "network.key"
    generate_network_key(key_path)
    on_chain = public_key_bytes(generate_network_key(tmp_path / "registered.key"))
    async with serving(key_path) as port:
        client = NodeClient.for_member(member_with(on_chain, port), timeout_s=10)
        async with client:
            refused = rf"node https://127.0.0.1:{port} presented TLS key"
            with pytest.raises(NodeIdentityError, match=refused):
                await hello(client)
    # Every caller treats it as an unreachable node, never as the node's answer.
    assert issubclass(NodeIdentityError, NodeConnectionError)


async def test_a_ca_signed_certificate_for_the_key_is_served_and_accepted(tmp_path: Path) -> None:
    # A certificate authority signs a certificate for the node's network key.
    authority = ec.generate_private_key(ec.SECP256R1())
    key_path = tmp_path / "network.key"
    key = generate_network_key(key_path)
    now = datetime.datetime.now(datetime.UTC)
    name: Callable[[str], x509.Name] = lambda cn: x509.Name(  # noqa: E731
        [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("node1.example.org"))
        .issuer_name(name("Example CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(authority, hashes.SHA256())
    )
    path = tmp_path / "certificate.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    async with serving(key_path, path) as port:
        member = member_with(public_key_bytes(key), port)
        async with NodeClient.for_member(member, timeout_s=10) as client:
            assert await hello(client) == b"hello"


async def test_a_plain_http_node_with_a_key_on_chain_is_not_reached(tmp_path: Path) -> None:
    expected = public_key_bytes(generate_network_key(tmp_path / "network.key"))
    async with serving(None) as port:
        async with NodeClient.for_member(member_with(expected, port), timeout_s=10) as client:
            with pytest.raises(NodeConnectionError):
                await hello(client)
        # A member without a network key is reached over plain HTTP, unpinned.
        async with NodeClient.for_member(member_with(b"", port), timeout_s=10) as client:
            assert client.base_url.startswith("http://")
            assert await hello(client) == b"hello"
