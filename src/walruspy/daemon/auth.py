"""JWT authentication of the publisher's uploads, as Walrus's authenticated publisher.

Theory of operation (spec/walrus-system.md 4.3; Walrus `client/daemon/auth.rs`, `cache.rs`,
`client/config.rs` `AuthConfig`, the `--jwt-*` options of `PublisherArgs` in `client/cli/args.rs`
and `auth_layer` in `client/daemon.rs`; the operator guide `auth-publisher.mdx`). Without it,
whoever reaches the publisher stores blobs paid from its wallet. It is on when `JwtConfig` is
given: `--jwt-decode-secret`, `--jwt-expiring-sec` above 0 or `--jwt-verify-upload`, as Walrus.
Every `PUT /v1/blobs` and `PUT /v1/quilts` then carries `Authorization: Bearer <JWT>`, checked
in this order before the request takes a publisher slot or any of its body is read:

1. The header: missing or not `Bearer`: 401 MISSING_TOKEN (Walrus's extractor answers 400 in
   plain text; walruspy answers 401 with `WWW-Authenticate: Bearer`, in the JSON shape).
2. The token (RFC 7519/7515 compact form): base64url parts and JSON; its `alg` must be the
   configured algorithm (`none` and any other never pass); else 400 INVALID_TOKEN. With a
   decode secret the signature must verify: else 401 INVALID_SIGNATURE. Without one the
   signature is not checked (Walrus's mode for a gateway that already checked it; logged as a
   warning at start-up).
3. The claims: `exp` (integer) and `jti` (string) are required, `iat` too when
   `--jwt-expiring-sec` is above 0; wrong types 400 INVALID_TOKEN. `exp` more than
   `LEEWAY_S` (60 s, jsonwebtoken's default) in the past: 504 EXPIRED_SIGNATURE (Walrus's
   DEADLINE_EXCEEDED). A timestamp out of range: 400 INVALID_TIMESTAMP.
4. Replay: the `jti` is entered in a bounded cache until its `exp`; one already there is 429
   TOKEN_ALREADY_USED. A full cache, after dropping expired entries, refuses with 500 (Walrus
   fails internally too) rather than forget a token that may be replayed.
5. Always: with `--jwt-expiring-sec` N > 0, `exp - iat` must be exactly N; both `size` and
   `max_size`, or both `epochs` and `max_epochs`: 400 INVALID_EXPIRATION, INCONSISTENT_TOKEN.
6. With `--jwt-verify-upload`: `epochs` equals, or `max_epochs` bounds, the query's epochs
   (400 INVALID_EPOCHS); a `send_object_to` claim must be the query's (400
   INVALID_SEND_OBJECT_TO; addresses compared without regard to case); `max_size` bounds and
   `size` equals the body's length: its `Content-Length` at once, then the bytes as they are
   read (`SizeClaim`, a `BodyCheck`), 400 INVALID_SIZE. Walrus checks only the body's size
   hint; walruspy also checks what arrives.

A failure of 5 or 6 takes the `jti` out of the cache again (Walrus does the same): the client
may retry a corrected request with it. Errors are in Walrus's domain `auth.publisher.walrus.space`
with its reasons and statuses (FAILED_PRECONDITION 400, UNAUTHENTICATED 401, RESOURCE_EXHAUSTED
429, DEADLINE_EXCEEDED 504).

Algorithms: HS256 (default), HS384, HS512 with the secret's bytes; EdDSA (Ed25519), ES256,
ES384, RS256/384/512 and PS256/384/512 with a public key given as 0x-hex, in jsonwebtoken's
forms: Ed25519 raw 32 bytes, EC an uncompressed SEC1 point, RSA a DER RSAPublicKey or
SubjectPublicKeyInfo. A secret starting with `0x` is hex (an odd count of digits is an error),
any other its UTF-8 bytes, as Walrus's `secret_to_bytes`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from walruspy.daemon.errors import DaemonApiError
from walruspy.daemon.publisher import PublisherQuery
from walruspy.logs import get_logger

__all__ = [
    "JWT_ALGORITHMS",
    "PUBLISHER_AUTH_DOMAIN",
    "Claim",
    "JwtConfig",
    "JwtVerifier",
    "ReplayCache",
    "SizeClaim",
    "parse_secret",
]

log = get_logger("walruspy.daemon.auth")

#: Walrus's error domain of the publisher's authentication.
PUBLISHER_AUTH_DOMAIN: Final = "auth.publisher.walrus.space"
#: Seconds an `exp` may lie in the past (jsonwebtoken's default `Validation::leeway`).
LEEWAY_S: Final = 60
#: `jti`s remembered at once (Walrus `--jwt-cache-size` default): 10,000 short strings is a few
#: MB; a publisher with more tokens live at once raises it.
DEFAULT_CACHE_SIZE: Final = 10_000
#: Seconds between sweeps of expired `jti`s (Walrus `--jwt-cache-refresh-interval` 5s).
DEFAULT_CACHE_REFRESH_INTERVAL_S: Final = 5.0
#: Longest token looked at: a claim set is a few hundred bytes; this bounds the JSON parsed.
MAX_TOKEN_CHARS: Final = 8192
#: Largest `exp`/`iat` accepted (chrono's `DateTime::from_timestamp` range, about year 262143).
_MAX_TIMESTAMP: Final = 8_210_298_412_799
_U32_MAX: Final = (1 << 32) - 1
#: RFC 7515's base64url without padding (the decoder alone would skip other characters).
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_U64_MAX: Final = (1 << 64) - 1

_HMAC: Final = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_HASHES: Final[Mapping[str, Callable[[], hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_EC_CURVES: Final[Mapping[str, tuple[ec.EllipticCurve, int]]] = {
    "ES256": (ec.SECP256R1(), 32),
    "ES384": (ec.SECP384R1(), 48),
}
#: Every algorithm Walrus's `--jwt-algorithm` accepts; all are supported.
JWT_ALGORITHMS: Final = (
    *_HMAC,
    "ES256",
    "ES384",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)


def _auth_error(http_status: int, reason: str, message: str, **kw: Any) -> DaemonApiError:
    status = {400: "FAILED_PRECONDITION"}.get(http_status)
    return DaemonApiError(
        http_status, reason, message, domain=PUBLISHER_AUTH_DOMAIN, status=status, **kw
    )


def _invalid_token(what: str) -> DaemonApiError:
    return _auth_error(400, "INVALID_TOKEN", f"the JWT token is invalid: {what}")


def parse_secret(text: str) -> bytes:
    """`--jwt-decode-secret`: 0x-hex, or else the text's UTF-8 bytes; ValueError if bad hex."""
    if not text.startswith("0x"):
        return text.encode()
    digits = text[2:]
    if len(digits) % 2 or not all(c in string.hexdigits for c in digits):
        raise ValueError("the JWT decode secret starts with 0x but is not hex of whole bytes")
    return bytes.fromhex(digits)


# --- signatures ---------------------------------------------------------------------------------

Verify = Callable[[bytes, bytes], bool]


def _hmac_verifier(algorithm: str, key: bytes) -> Verify:
    digest = _HMAC[algorithm]

    def verify(message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(hmac.new(key, message, digest).digest(), signature)

    return verify


def _public_verifier(algorithm: str, key: bytes) -> Verify:
    """The verifier of an asymmetric algorithm; ValueError if `key` is not its public key."""
    if algorithm == "EdDSA":
        ed_key = ed25519.Ed25519PublicKey.from_public_bytes(key)
        return _catching(lambda m, s: ed_key.verify(s, m))
    if algorithm in _EC_CURVES:
        curve, width = _EC_CURVES[algorithm]
        ec_key = ec.EllipticCurvePublicKey.from_encoded_point(curve, key)
        hash_ = _HASHES[algorithm[2:]]

        def ec_verify(message: bytes, signature: bytes) -> None:
            if len(signature) != 2 * width:  # JWS: r || s, fixed width (RFC 7518 3.4)
                raise InvalidSignature
            r, s = int.from_bytes(signature[:width]), int.from_bytes(signature[width:])
            ec_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hash_()))

        return _catching(ec_verify)
    try:
        rsa_key = serialization.load_der_public_key(key)
    except (ValueError, UnsupportedAlgorithm):
        rsa_key = serialization.load_der_public_key(_spki_of_pkcs1(key))
    if not isinstance(rsa_key, rsa.RSAPublicKey):
        raise ValueError(f"the key of {algorithm} must be an RSA public key")
    hash_ = _HASHES[algorithm[2:]]
    pad: Callable[[], padding.AsymmetricPadding] = (
        padding.PKCS1v15
        if algorithm.startswith("RS")
        else lambda: padding.PSS(padding.MGF1(hash_()), padding.PSS.DIGEST_LENGTH)
    )
    return _catching(lambda m, s: rsa_key.verify(s, m, pad(), hash_()))


def _spki_of_pkcs1(key: bytes) -> bytes:
    """A DER RSAPublicKey (PKCS #1, jsonwebtoken's `from_rsa_der`) wrapped as an SPKI."""
    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")  # rsaEncryption, NULL
    bit_string = _der(0x03, b"\x00" + key)
    return _der(0x30, algorithm + bit_string)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    length = n.to_bytes((n.bit_length() + 7) // 8)
    return bytes([tag, 0x80 | len(length)]) + length + body


def _catching(verify: Callable[[bytes, bytes], None]) -> Verify:
    def checked(message: bytes, signature: bytes) -> bool:
        try:
            verify(message, signature)
        except (InvalidSignature, ValueError):
            return False
        return True

    return checked


def _verifier(algorithm: str, key: bytes) -> Verify:
    if algorithm not in JWT_ALGORITHMS:
        raise ValueError(
            f"unsupported JWT algorithm {algorithm!r}: one of {', '.join(JWT_ALGORITHMS)}"
        )
    if algorithm in _HMAC:
        return _hmac_verifier(algorithm, key)
    try:
        return _public_verifier(algorithm, key)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(
            f"the JWT decode secret is not a public key for {algorithm} (give it as 0x-hex): {exc}"
        ) from None


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JwtConfig:
    """Walrus's `AuthConfig` with its replay cache; the constructor refuses a bad key."""

    #: `--jwt-decode-secret`, as bytes (`parse_secret`); None: signatures are not checked.
    key: bytes | None = field(default=None, repr=False)
    #: `--jwt-algorithm` (Walrus's default HS256).
    algorithm: str = "HS256"
    #: `--jwt-expiring-sec`: above 0, every token needs `iat` and `exp - iat` equal to it.
    expiring_sec: int = 0
    #: `--jwt-verify-upload`: the claims limit the upload (module doc, step 6).
    verify_upload: bool = False
    #: `--jwt-cache-size`: `jti`s remembered at once.
    cache_size: int = DEFAULT_CACHE_SIZE
    #: `--jwt-cache-refresh-interval`, seconds between sweeps of expired `jti`s.
    cache_refresh_interval_s: float = DEFAULT_CACHE_REFRESH_INTERVAL_S

    def __post_init__(self) -> None:
        if self.key is not None:
            _verifier(self.algorithm, self.key)
        elif self.algorithm not in JWT_ALGORITHMS:
            _verifier(self.algorithm, b"")
        if self.expiring_sec < 0:
            raise ValueError(f"jwt expiring_sec cannot be negative, got {self.expiring_sec}")
        if self.cache_size < 1:
            raise ValueError(f"the JWT cache size must be at least 1, got {self.cache_size}")
        if not self.cache_refresh_interval_s > 0:
            raise ValueError("the JWT cache refresh interval must be positive")


# --- claims -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """Walrus's `Claim`: RFC 7519's `exp`, `iat`, `jti` and the storage limits."""

    exp: int
    jti: str
    iat: int | None = None
    send_object_to: str | None = None
    epochs: int | None = None
    max_epochs: int | None = None
    size: int | None = None
    max_size: int | None = None

    @classmethod
    def from_json(cls, claims: object) -> Claim:
        """The claims of a payload; `DaemonApiError` 400 INVALID_TOKEN names the bad one."""
        if not isinstance(claims, dict):
            raise _invalid_token("the claims are not a JSON object")
        jti = claims.get("jti")
        if not isinstance(jti, str):
            raise _invalid_token("missing required claim jti (a string)")
        send_to = claims.get("send_object_to")
        if send_to is not None and not isinstance(send_to, str):
            raise _invalid_token("send_object_to must be a string")
        exp = _integer(claims, "exp", -_MAX_TIMESTAMP - 1, _U64_MAX)
        if exp is None:
            raise _invalid_token("missing required claim exp")
        return cls(
            exp=exp,
            jti=jti,
            iat=_integer(claims, "iat", -_MAX_TIMESTAMP - 1, _U64_MAX),
            send_object_to=send_to,
            epochs=_integer(claims, "epochs", 0, _U32_MAX),
            max_epochs=_integer(claims, "max_epochs", 0, _U32_MAX),
            size=_integer(claims, "size", 0, _U64_MAX),
            max_size=_integer(claims, "max_size", 0, _U64_MAX),
        )


def _integer(claims: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid_token(f"claim {name} must be an integer from {low} to {high}")
    return value


def _b64decode(part: str, what: str) -> bytes:
    if not _BASE64URL.fullmatch(part) or len(part) % 4 == 1:
        raise _invalid_token(f"the {what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise _invalid_token(f"the {what} is not base64url") from None


def _json(data: bytes, what: str) -> object:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _invalid_token(f"the {what} is not JSON") from None


# --- replay suppression -------------------------------------------------------------------------


class ReplayCache:
    """The `jti`s seen, each until its `exp`: at most `max_size`, swept every interval."""

    def __init__(self, max_size: int, refresh_interval_s: float) -> None:
        self.max_size = max_size
        self.refresh_interval_s = refresh_interval_s
        self._expiry: dict[str, float] = {}
        self._swept_at = float("-inf")

    def __len__(self) -> int:
        return len(self._expiry)

    def insert(self, jti: str, expires_at: float, now: float) -> bool:
        """Enter `jti`; False if it is already there. `DaemonApiError` 500 if full."""
        if now - self._swept_at >= self.refresh_interval_s or len(self._expiry) >= self.max_size:
            self._sweep(now)
        if jti in self._expiry:
            return False
        if len(self._expiry) >= self.max_size:
            log.warning("JWT replay cache full", size=len(self._expiry))
            raise DaemonApiError(
                500,
                "REPLAY_CACHE_FULL",
                "the publisher's JWT replay cache is full; retry later",
                domain=PUBLISHER_AUTH_DOMAIN,
            )
        self._expiry[jti] = expires_at
        return True

    def remove(self, jti: str) -> None:
        """Forget `jti` (its request was refused before it stored anything)."""
        self._expiry.pop(jti, None)

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        self._expiry = {jti: at for jti, at in self._expiry.items() if at > now}


# --- the verifier -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SizeClaim:
    """A token's `size` / `max_size` checked against the body (a `BodyCheck`)."""

    size: int | None
    max_size: int | None

    def declared(self, size: int) -> None:
        """`Content-Length` against both claims."""
        self._check(size, exact=True)

    def reading(self, size: int) -> None:
        """The bytes read so far: never more than either claim."""
        self._check(size, exact=False)

    def finished(self, size: int) -> None:
        """The whole body against both claims."""
        self._check(size, exact=True)

    def _check(self, size: int, *, exact: bool) -> None:
        limit = min(x for x in (self.size, self.max_size, _U64_MAX) if x is not None)
        if size > limit or (exact and self.size is not None and size != self.size):
            claim = f"size {self.size}" if self.size is not None else f"max_size {self.max_size}"
            raise _auth_error(
                400,
                "INVALID_SIZE",
                f"the size of the request ({'at least ' if not exact else ''}{size} bytes) "
                f"does not match the size specified in the token ({claim})",
            )


class JwtVerifier:
    """Checks the bearer token of each upload (module doc); owns the replay cache."""

    def __init__(self, config: JwtConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._verify = _verifier(config.algorithm, config.key) if config.key is not None else None
        self.replays = ReplayCache(config.cache_size, config.cache_refresh_interval_s)
        if self._verify is None:
            log.warning("JWT signatures are not checked: no --jwt-decode-secret")

    def check(
        self, authorization: str | None, query: PublisherQuery, declared: int | None
    ) -> SizeClaim | None:
        """Admit an upload or raise `DaemonApiError`; the size claims to check on its body."""
        claim = self.decode(_bearer(authorization))
        now = self._clock()
        if not self.replays.insert(claim.jti, float(claim.exp), now):
            raise _auth_error(429, "TOKEN_ALREADY_USED", "the JWT token was already used")
        try:
            return self._check_upload(claim, query, declared)
        except DaemonApiError:
            self.replays.remove(claim.jti)
            raise

    def decode(self, token: str) -> Claim:
        """The token's claims, after its algorithm, signature, required claims and `exp`."""
        if len(token) > MAX_TOKEN_CHARS:
            raise _invalid_token(f"longer than {MAX_TOKEN_CHARS} characters")
        parts = token.split(".")
        if len(parts) != 3:
            raise _invalid_token("not three dot-separated parts (JWS compact form)")
        header = _json(_b64decode(parts[0], "header"), "header")
        if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
            raise _invalid_token("the header has no alg")
        if header["alg"] != self.config.algorithm:
            raise _invalid_token(
                f"algorithm {header['alg'][:20]!r} is not this publisher's {self.config.algorithm}"
            )
        signature = _b64decode(parts[2], "signature")
        signed = f"{parts[0]}.{parts[1]}".encode()
        if self._verify is not None and not self._verify(signed, signature):
            raise _auth_error(401, "INVALID_SIGNATURE", "the signature on the token is invalid")
        claim = Claim.from_json(_json(_b64decode(parts[1], "payload"), "payload"))
        if self.config.expiring_sec > 0 and claim.iat is None:
            raise _invalid_token("missing required claim iat")
        for stamp in (claim.exp, claim.iat):
            if stamp is not None and abs(stamp) > _MAX_TIMESTAMP:
                raise _auth_error(
                    400, "INVALID_TIMESTAMP", "one of the timestamps in the JWT token is invalid"
                )
        if claim.exp < self._clock() - LEEWAY_S:
            raise _auth_error(
                504,
                "EXPIRED_SIGNATURE",
                f"the signature on the token has expired (exp {claim.exp})",
            )
        return claim

    def _check_upload(
        self, claim: Claim, query: PublisherQuery, declared: int | None
    ) -> SizeClaim | None:
        expiring = self.config.expiring_sec
        if expiring > 0 and claim.exp - (claim.iat or 0) != expiring:
            raise _auth_error(
                400,
                "INVALID_EXPIRATION",
                f"the token's exp - iat is not this publisher's expiry of {expiring} s",
            )
        if claim.size is not None and claim.max_size is not None:
            raise _inconsistent("size and max_size")
        if claim.epochs is not None and claim.max_epochs is not None:
            raise _inconsistent("epochs and max_epochs")
        if not self.config.verify_upload:
            return None
        if (claim.epochs is not None and query.epochs != claim.epochs) or (
            claim.max_epochs is not None and query.epochs > claim.max_epochs
        ):
            raise _auth_error(
                400,
                "INVALID_EPOCHS",
                f"the epochs field in the query ({query.epochs}) does not match the token",
            )
        wanted = claim.send_object_to
        given = query.send_object_to
        if wanted is not None and (given is None or given.lower() != wanted.lower()):
            raise _auth_error(
                400,
                "INVALID_SEND_OBJECT_TO",
                "the send_object_to field in the query does not match the token, or is missing",
            )
        if claim.size is None and claim.max_size is None:
            return None
        sizes = SizeClaim(claim.size, claim.max_size)
        if declared is not None:
            sizes.declared(declared)
        return sizes


def _inconsistent(what: str) -> DaemonApiError:
    return _auth_error(400, "INCONSISTENT_TOKEN", f"the token is inconsistent: both {what}")


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        what = "no" if authorization is None else "a malformed"
        raise _auth_error(
            401,
            "MISSING_TOKEN",
            f"this publisher needs a JWT in an 'Authorization: Bearer' header; {what} header "
            "was given",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()
