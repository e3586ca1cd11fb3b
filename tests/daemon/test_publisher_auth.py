"""The publisher's access control: JWT authentication as Walrus's, and per-client quotas.

The verifier on its own, with tokens built here (HMAC by hand, the other algorithms with
`cryptography`): signatures, algorithms (`none` never passes), `exp` and its leeway,
`--jwt-expiring-sec`, required claims, the replay cache, the upload claims. Then the routes over
HTTP: a valid token stores a blob and a quilt on the in-process network, and each refusal has
Walrus's status and reason, before the store is tried (a stand-in client that answers 504 shows
which requests got through). Quotas answer 429 with `Retry-After` and recover on an injected
clock. The CLI refuses a bad secret or algorithm before serving.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.daemon.test_daemon_app import SlowClient, error_reason, network_daemon, serving
from tests.daemon.test_quilt_routes import form
from tests.node.cluster import blob_data
from walruspy.cli.daemon_cmd import DAEMON_COMMANDS
from walruspy.daemon import DaemonLimits, DaemonMode
from walruspy.daemon import quotas as quotas_module
from walruspy.daemon.auth import (
    PUBLISHER_AUTH_DOMAIN,
    JwtConfig,
    JwtVerifier,
    ReplayCache,
    SizeClaim,
    parse_secret,
)
from walruspy.daemon.errors import DaemonApiError
from walruspy.daemon.publisher import PublisherQuery
from walruspy.daemon.quotas import ClientQuotas, QuotaLimits
from walruspy.node_api.connection_guard import ConnectionLimits

pytestmark = pytest.mark.timeout(120)

SECRET = b"publisher-test-secret"
NOW = 1_800_000_000.0
ADDRESS = "0x" + "ab" * 20


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(
    claims: dict[str, Any],
    key: bytes = SECRET,
    alg: str = "HS256",
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    """A compact JWS: HMAC with `key` unless `sign` is given."""
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    signed = f"{header}.{b64(json.dumps(claims).encode())}"
    if sign is not None:
        signature = sign(signed.encode())
    elif alg == "none":
        signature = b""
    else:
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        signature = hmac.new(key, signed.encode(), digest).digest()
    return f"{signed}.{b64(signature)}"


_jti = iter(range(1_000_000))


def claims(**extra: Any) -> dict[str, Any]:
    """Valid claims with a fresh `jti`, expiring in an hour."""
    return {"exp": int(NOW) + 3600, "jti": f"token-{next(_jti)}", **extra}


def verifier(clock: Clock | None = None, **config: Any) -> JwtVerifier:
    config.setdefault("key", SECRET)
    return JwtVerifier(JwtConfig(**config), clock or Clock())


def refusal(call: Callable[..., object], *args: Any) -> tuple[int, str]:
    with pytest.raises(DaemonApiError) as info:
        call(*args)
    return info.value.http_status, info.value.reason


QUERY = PublisherQuery()


# --- the verifier -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_tokens_verify_and_a_forged_signature_does_not(alg: str) -> None:
    check = verifier(algorithm=alg)
    assert check.check(f"Bearer {token(claims(), alg=alg)}", QUERY, None) is None
    forged = token(claims(), key=b"another secret", alg=alg)
    assert refusal(lambda: check.check(f"Bearer {forged}", QUERY, None)) == (
        401,
        "INVALID_SIGNATURE",
    )
    head, _payload, signature = token(claims(), alg=alg).split(".")
    other = b64(json.dumps(claims(epochs=99)).encode())  # claims changed after signing
    assert refusal(lambda: check.decode(f"{head}.{other}.{signature}"))[0] == 401


def test_the_algorithm_must_be_the_configured_one_and_never_none() -> None:
    for check in (verifier(), verifier(key=None, verify_upload=True)):
        for alg in ("none", "HS512", "EdDSA"):
            bad = token(claims(), alg=alg) if alg != "EdDSA" else token(claims(), sign=bytes)
            bad = bad if alg != "EdDSA" else bad.replace(bad.split(".")[0], b64(b'{"alg":"x"}'))
            status, reason = refusal(check.decode, bad)
            assert (status, reason) == (400, "INVALID_TOKEN")
    with pytest.raises(DaemonApiError, match="'none' is not this publisher's HS256"):
        verifier().decode(token(claims(), alg="none"))


def test_without_a_secret_signatures_are_not_checked_but_expiry_is() -> None:
    check = verifier(key=None, verify_upload=True)
    assert check.decode(token(claims(), key=b"anything")).exp == int(NOW) + 3600
    expired = token(claims(exp=int(NOW) - 3600))
    assert refusal(lambda: check.decode(expired)) == (504, "EXPIRED_SIGNATURE")


def test_expiry_with_leeway_and_expiring_sec() -> None:
    clock = Clock()
    check = verifier(clock)
    assert check.decode(token(claims(exp=int(NOW) - 59))).jti  # jsonwebtoken's 60 s leeway
    late = token(claims(exp=int(NOW) - 61))
    assert refusal(lambda: check.decode(late)) == (504, "EXPIRED_SIGNATURE")
    with pytest.raises(DaemonApiError) as info:
        check.decode(late)
    error = info.value.to_body()["error"]
    assert error["status"] == "DEADLINE_EXCEEDED"  # type: ignore[index]
    assert error["details"][0]["domain"] == PUBLISHER_AUTH_DOMAIN  # type: ignore[index]
    timed = verifier(clock, expiring_sec=600)
    iat = int(NOW) - 10
    assert timed.check(f"Bearer {token(claims(iat=iat, exp=iat + 600))}", QUERY, None) is None
    assert refusal(
        lambda: timed.check(f"Bearer {token(claims(iat=iat, exp=iat + 601))}", QUERY, None)
    ) == (400, "INVALID_EXPIRATION")
    no_iat = token(claims(exp=iat + 600))
    assert refusal(lambda: timed.check(f"Bearer {no_iat}", QUERY, None)) == (400, "INVALID_TOKEN")


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        ({"jti": "a"}, "missing required claim exp"),
        ({"exp": int(NOW) + 10}, "missing required claim jti"),
        ({"exp": True, "jti": "a"}, "claim exp must be an integer"),
        ({"exp": "soon", "jti": "a"}, "claim exp must be an integer"),
        ({"exp": int(NOW) + 10, "jti": "a", "epochs": -1}, "claim epochs"),
        ({"exp": int(NOW) + 10, "jti": "a", "max_size": 1.5}, "claim max_size"),
        ({"exp": int(NOW) + 10, "jti": 7}, "missing required claim jti"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_claims_of_the_wrong_shape_are_invalid_tokens(payload: Any, what: str) -> None:
    bad = token(payload)
    with pytest.raises(DaemonApiError, match=what) as info:
        verifier().decode(bad)
    assert (info.value.http_status, info.value.reason) == (400, "INVALID_TOKEN")


def test_malformed_tokens_and_headers() -> None:
    check = verifier()
    good = token(claims())
    for bad in ("a.b", "a.b.c.d", good + "=", "!" + good, "x" * 9000):
        assert refusal(check.decode, bad)[1] == "INVALID_TOKEN"
    for header in (None, "", "Basic abc", "Bearer", "Bearer   ", good):
        with pytest.raises(DaemonApiError) as info:
            check.check(header, QUERY, None)
        assert (info.value.http_status, info.value.reason) == (401, "MISSING_TOKEN")
        assert info.value.headers == {"WWW-Authenticate": "Bearer"}
    assert check.check(f"bearer  {good} ", QUERY, None) is None


def test_replayed_jti_is_429_and_a_refused_upload_gives_it_back() -> None:
    check = verifier(verify_upload=True)
    once = token(claims())
    assert check.check(f"Bearer {once}", QUERY, None) is None
    assert refusal(lambda: check.check(f"Bearer {once}", QUERY, None)) == (
        429,
        "TOKEN_ALREADY_USED",
    )
    two_epochs = token(claims(epochs=2))
    assert refusal(lambda: check.check(f"Bearer {two_epochs}", QUERY, None))[1] == "INVALID_EPOCHS"
    assert check.check(f"Bearer {two_epochs}", PublisherQuery(epochs=2), None) is None


def test_replay_cache_is_bounded_and_forgets_expired_tokens() -> None:
    cache = ReplayCache(max_size=2, refresh_interval_s=5)
    assert cache.insert("a", NOW + 10, NOW) and cache.insert("b", NOW + 100, NOW)
    assert not cache.insert("a", NOW + 10, NOW)
    assert refusal(lambda: cache.insert("c", NOW + 10, NOW)) == (500, "REPLAY_CACHE_FULL")
    assert cache.insert("c", NOW + 10, NOW + 11)  # "a" expired and was dropped
    assert len(cache) == 2 and cache.insert("a", NOW + 50, NOW + 11)  # a new "a" is another token
    swept = ReplayCache(max_size=10, refresh_interval_s=5)
    swept.insert("x", NOW + 1, NOW)
    swept.insert("y", NOW + 1, NOW + 2)  # not swept yet: the interval has not passed
    assert len(swept) == 2
    swept.insert("z", NOW + 100, NOW + 6)
    assert len(swept) == 1


def test_upload_claims_limit_epochs_size_and_recipient() -> None:
    check = verifier(verify_upload=True)

    def outcome(query: PublisherQuery, declared: int | None = None, **extra: Any) -> object:
        try:
            return check.check(f"Bearer {token(claims(**extra))}", query, declared)
        except DaemonApiError as error:
            return error.reason

    q3 = PublisherQuery(epochs=3)
    assert outcome(q3, epochs=3) is None
    assert outcome(q3, epochs=2) == "INVALID_EPOCHS"
    assert outcome(q3, max_epochs=3) is None
    assert outcome(q3, max_epochs=2) == "INVALID_EPOCHS"
    assert outcome(q3, epochs=3, max_epochs=5) == "INCONSISTENT_TOKEN"
    assert outcome(q3, size=5, max_size=5) == "INCONSISTENT_TOKEN"
    assert outcome(QUERY, 100, max_size=99) == "INVALID_SIZE"
    assert outcome(QUERY, 100, size=99) == "INVALID_SIZE"
    assert outcome(QUERY, 100, size=100) == SizeClaim(100, None)
    assert outcome(QUERY, None, max_size=10) == SizeClaim(None, 10)
    assert outcome(QUERY, send_object_to=ADDRESS) == "INVALID_SEND_OBJECT_TO"
    other = PublisherQuery(send_object_to="0x" + "cd" * 20)
    assert outcome(other, send_object_to=ADDRESS) == "INVALID_SEND_OBJECT_TO"
    mine = PublisherQuery(send_object_to=ADDRESS.upper().replace("0X", "0x"))
    assert outcome(mine, send_object_to=ADDRESS) is None
    lax = verifier()  # --jwt-verify-upload off: only the always-checked claims
    assert lax.check(f"Bearer {token(claims(epochs=9, max_size=1))}", QUERY, 100) is None
    assert refusal(lambda: lax.check(f"Bearer {token(claims(size=1, max_size=1))}", QUERY, 1)) == (
        400,
        "INCONSISTENT_TOKEN",
    )


def test_size_claims_check_the_bytes_as_they_arrive() -> None:
    exact = SizeClaim(10, None)
    exact.reading(10)
    exact.finished(10)
    assert refusal(lambda: exact.reading(11))[1] == "INVALID_SIZE"
    assert refusal(lambda: exact.finished(9))[1] == "INVALID_SIZE"
    bounded = SizeClaim(None, 10)
    bounded.finished(0)
    assert refusal(lambda: bounded.reading(11))[1] == "INVALID_SIZE"


def _ec_sign(key: ec.EllipticCurvePrivateKey, width: int, hash_: Any) -> Callable[[bytes], bytes]:
    def sign(message: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hash_)))
        return r.to_bytes(width) + s.to_bytes(width)

    return sign


def test_public_key_algorithms() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_public = ed.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    p256 = ec.generate_private_key(ec.SECP256R1())
    p256_public = p256.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    cases: list[tuple[str, bytes, Callable[[bytes], bytes]]] = [
        ("EdDSA", ed_public, ed.sign),
        ("ES256", p256_public, _ec_sign(p256, 32, hashes.SHA256())),
        ("RS256", pkcs1, lambda m: rsa_key.sign(m, padding.PKCS1v15(), hashes.SHA256())),
        ("PS256", pkcs1, lambda m: rsa_key.sign(m, pss, hashes.SHA256())),
    ]
    other = ed25519.Ed25519PrivateKey.generate()
    for alg, public, sign in cases:
        check = verifier(key=parse_secret("0x" + public.hex()), algorithm=alg)
        assert check.decode(token(claims(), alg=alg, sign=sign)).jti, alg
        zeros = bytes(len(sign(b"x")))
        forged = token(claims(), alg=alg, sign=lambda _m, zeros=zeros: zeros)  # type: ignore[misc]
        assert refusal(check.decode, forged)[0] == 401, alg
        assert refusal(check.decode, token(claims(), alg=alg, sign=other.sign))[0] == 401
    with pytest.raises(ValueError, match="not a public key for EdDSA"):
        JwtConfig(key=b"\x01" * 31, algorithm="EdDSA")
    with pytest.raises(ValueError, match="not a public key for RS256"):
        JwtConfig(key=ed_public, algorithm="RS256")


def test_secret_parsing_and_configuration_errors() -> None:
    assert parse_secret("0xff00") == b"\xff\x00"
    assert parse_secret("plain text") == b"plain text"
    for bad in ("0xf", "0xfg", "0x 0"):
        with pytest.raises(ValueError, match="not hex"):
            parse_secret(bad)
    with pytest.raises(ValueError, match="unsupported JWT algorithm 'none'"):
        JwtConfig(key=SECRET, algorithm="none")
    with pytest.raises(ValueError, match="unsupported JWT algorithm"):
        JwtConfig(algorithm="hs256")
    with pytest.raises(ValueError, match="negative"):
        JwtConfig(key=SECRET, expiring_sec=-1)
    assert "publisher-test-secret" not in repr(JwtConfig(key=SECRET))


# --- quotas -------------------------------------------------------------------------------------


def test_request_quota_refills_over_the_minute() -> None:
    clock = Clock()
    quotas = ClientQuotas(QuotaLimits(requests_per_minute=2), clock)
    assert quotas.admit("10.0.0.1") is None
    quotas.admit("10.0.0.1")
    with pytest.raises(DaemonApiError) as info:
        quotas.admit("10.0.0.1")
    assert (info.value.http_status, info.value.reason) == (429, "QUOTA_EXCEEDED")
    assert info.value.headers == {"Retry-After": "30"}
    assert info.value.to_body()["error"]["status"] == "RESOURCE_EXHAUSTED"  # type: ignore[index]
    quotas.admit("10.0.0.2")  # another client has its own
    quotas.admit(None)  # exempt (loopback)
    clock.now += 29
    assert refusal(lambda: quotas.admit("10.0.0.1"))[0] == 429
    clock.now += 1
    quotas.admit("10.0.0.1")
    clock.now -= 1000  # a clock stepped back refills nothing and breaks nothing
    assert refusal(lambda: quotas.admit("10.0.0.1"))[0] == 429


def test_byte_quota_declared_streamed_and_debt() -> None:
    clock = Clock()
    quotas = ClientQuotas(QuotaLimits(bytes_per_minute=600), clock)
    budget = quotas.admit("a")
    assert budget is not None
    with pytest.raises(DaemonApiError) as info:
        budget.declared(601)  # more than a minute's bytes: the whole minute
    assert info.value.headers == {"Retry-After": "60"}
    budget.declared(600)
    budget.reading(400)
    budget.finished(500)
    second = quotas.admit("a")
    assert second is not None
    assert refusal(lambda: second.declared(101))[0] == 429  # 100 left, 101 is 1 s away
    second.reading(100)
    assert refusal(lambda: second.reading(150))[0] == 429  # a chunked body cut off
    assert refusal(lambda: quotas.admit("a"))[0] == 429  # in debt
    clock.now += 60  # a minute's bytes, less the 50 of debt
    refilled = quotas.admit("a")
    assert refilled is not None
    assert refusal(refilled.declared, 551)[0] == 429
    refilled.declared(550)


def test_quota_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quotas_module, "MAX_CLIENTS", 3)
    clock = Clock()
    quotas = ClientQuotas(QuotaLimits(requests_per_minute=1), clock)
    for key in ("a", "b", "c", "d"):
        quotas.admit(key)
    assert len(quotas) == 3
    clock.now += 60  # all idle: all dropped for the next one
    quotas.admit("e")
    assert len(quotas) == 1
    with pytest.raises(ValueError, match="at least 1"):
        QuotaLimits(bytes_per_minute=0)


# --- over HTTP ----------------------------------------------------------------------------------


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


async def test_valid_tokens_store_blobs_and_quilts(tmp_path: Path) -> None:
    jwt = JwtConfig(key=SECRET, verify_upload=True)
    clock = Clock()
    async with network_daemon(tmp_path, jwt=jwt, clock=clock) as (_network, _client, url, session):
        data = blob_data(3, 3000)
        first = token(claims(epochs=2, size=3000))
        async with session.put(
            f"{url}/v1/blobs?epochs=2", data=data, headers=bearer(first)
        ) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["newlyCreated"]["blobObject"]["size"] == 3000
        async with session.put(
            f"{url}/v1/blobs?epochs=2", data=data, headers=bearer(first)
        ) as response:
            assert response.status == 429
            assert error_reason(await response.json()) == "TOKEN_ALREADY_USED"
        async with session.put(f"{url}/v1/blobs", data=data) as response:
            assert response.status == 401
        quilt = token(claims(max_epochs=3, max_size=20_000))
        async with session.put(
            f"{url}/v1/quilts?epochs=3", data=form({"a.txt": b"hello"}), headers=bearer(quilt)
        ) as response:
            assert response.status == 200, await response.text()
            assert "blobStoreResult" in await response.json()
        async with session.put(f"{url}/v1/quilts", data=form({"a.txt": b"x"})) as response:
            assert response.status == 401


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_refusals_answer_walrus_statuses_before_the_store() -> None:
    clock = Clock()
    client = SlowClient(released=True)  # a store that gets through answers 504
    jwt = JwtConfig(key=SECRET, verify_upload=True)
    async with serving(client, DaemonMode.PUBLISHER, jwt=jwt, clock=clock) as (url, session):

        async def put(
            headers: dict[str, str], query: str = "", data: Any = b"x" * 100
        ) -> tuple[int, dict[str, Any]]:
            async with session.put(f"{url}/v1/blobs?{query}", data=data, headers=headers) as resp:
                body = await resp.json()
                if resp.status == 401:
                    assert resp.headers.get("WWW-Authenticate") == "Bearer" or (
                        error_reason(body) == "INVALID_SIGNATURE"
                    )
                return resp.status, body

        cases: list[tuple[dict[str, str], str, int, str]] = [
            ({}, "", 401, "MISSING_TOKEN"),
            ({"Authorization": token(claims())}, "", 401, "MISSING_TOKEN"),
            (bearer(token(claims(), key=b"forged")), "", 401, "INVALID_SIGNATURE"),
            (bearer(token(claims(), alg="none")), "", 400, "INVALID_TOKEN"),
            (bearer(token(claims(), alg="HS512")), "", 400, "INVALID_TOKEN"),
            (bearer(token(claims(exp=int(NOW) - 120))), "", 504, "EXPIRED_SIGNATURE"),
            (bearer(token(claims(epochs=1))), "epochs=5", 400, "INVALID_EPOCHS"),
            (bearer(token(claims(max_epochs=4))), "epochs=5", 400, "INVALID_EPOCHS"),
            (bearer(token(claims(max_size=99))), "", 400, "INVALID_SIZE"),
            (bearer(token(claims(size=101))), "", 400, "INVALID_SIZE"),
            (
                bearer(token(claims(send_object_to=ADDRESS))),
                "send_object_to=0x" + "cd" * 20,
                400,
                "INVALID_SEND_OBJECT_TO",
            ),
            (bearer(token(claims(send_object_to=ADDRESS))), "", 400, "INVALID_SEND_OBJECT_TO"),
            (bearer(token(claims(epochs=5, max_size=100))), "epochs=5", 504, ""),
        ]
        for headers, query, status, reason in cases:
            got, body = await put(headers, query)
            assert got == status, (headers, query, body)
            if reason:
                assert error_reason(body) == reason
                assert body["error"]["details"][0]["domain"] == PUBLISHER_AUTH_DOMAIN
        assert client.started == 1  # only the last request reached the store

        streamed = token(claims(max_size=2500))  # no Content-Length: cut while reading
        status, body = await put(bearer(streamed), data=_chunks(b"y" * 5000))
        assert (status, error_reason(body)) == (400, "INVALID_SIZE")
        assert client.started == 1
        within = token(claims(max_size=2500))
        assert (await put(bearer(within), data=_chunks(b"y" * 2500)))[0] == 504
        clock.now += 7200  # every token above has expired
        assert (await put(bearer(token(claims(exp=int(NOW) + 60)))))[0] == 504
        later = token({"exp": int(clock.now) + 60, "jti": "late"})
        assert (await put(bearer(later)))[0] == 504


async def test_quotas_answer_429_with_retry_after_and_recover() -> None:
    clock = Clock()
    limits = DaemonLimits(
        quotas=QuotaLimits(requests_per_minute=2, bytes_per_minute=1000),
        connections=ConnectionLimits(max_connections_per_address=64, limit_loopback=True),
    )
    async with serving(SlowClient(released=True), DaemonMode.DAEMON, limits, clock=clock) as (
        url,
        session,
    ):
        for _ in range(2):
            async with session.put(f"{url}/v1/blobs", data=b"z" * 10) as response:
                assert response.status == 504  # admitted: the stand-in store fails
        async with session.put(f"{url}/v1/blobs", data=b"z" * 10) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "30"
            body = await response.json()
            assert error_reason(body) == "QUOTA_EXCEEDED"
            assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        async with session.get(f"{url}/v1/blobs/{'A' * 43}") as response:
            assert response.status != 429  # the aggregator has no quota
        clock.now += 30
        async with session.put(f"{url}/v1/quilts", data=b"z" * 1001) as response:
            assert response.status == 429  # a body beyond a minute's bytes
            assert response.headers["Retry-After"] == "60"
        clock.now += 60
        async with session.put(f"{url}/v1/blobs", data=b"z" * 900) as response:
            assert response.status == 504
        async with session.put(f"{url}/v1/blobs", data=b"z" * 200) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
    async with (
        serving(
            SlowClient(released=True), DaemonMode.DAEMON, DaemonLimits(quotas=limits.quotas)
        ) as (url, session),
    ):
        for _ in range(4):  # loopback is exempt unless --limit-loopback
            async with session.put(f"{url}/v1/blobs", data=b"z") as response:
                assert response.status == 504


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jwt-decode-secret", "0xf"], "not hex of whole bytes"),
        (["--jwt-decode-secret", "0xzz"], "not hex of whole bytes"),
        (["--jwt-decode-secret", "s", "--jwt-algorithm", "none"], "unsupported algorithm"),
        (["--jwt-decode-secret", "0x0102", "--jwt-algorithm", "EdDSA"], "not a public key"),
        (["--jwt-verify-upload", "--jwt-cache-refresh-interval", "soon"], "positive duration"),
    ],
)
def test_cli_refuses_bad_jwt_settings_before_serving(args: list[str], message: str) -> None:
    for command in DAEMON_COMMANDS:
        if command.name in ("aggregator", "explorer"):  # no publisher, no JWT options
            continue
        result = CliRunner().invoke(command, [*args, "--bind-address", "127.0.0.1:0"])
        assert result.exit_code == 2, result.output
        assert message in result.output
