"""The native EIP-2537 precompiles against py-evm's own, byte for byte, and who gets them.

Each case runs py-evm's original pure-Python function (kept aside by the module) and the
native one on the same input and gas budget, and compares everything observable: output,
gas consumed, and the exception class and message. Inputs are seeded-random mixes of valid
points, points on the curve outside the subgroup, points off the curve, coordinates at or
above the field modulus, non-zero padding, infinity, odd scalars and wrong lengths.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from eth.exceptions import OutOfGas, VMError
from eth.precompiles.ecrecover import ecrecover
from eth.vm.forks.cancun.computation import CancunComputation
from eth.vm.forks.prague.computation import PragueComputation
from eth_keys.backends.coincurve import CoinCurveECCBackend
from eth_keys.backends.native.main import NativeECCBackend
from eth_keys.datatypes import PrivateKey
from py_arkworks_bls12381 import G1Point, G2Point, Scalar
from py_ecc.bls.hash_to_curve import map_to_curve_G1, map_to_curve_G2
from py_ecc.fields import optimized_bls12_381_FQ as FQ
from py_ecc.fields import optimized_bls12_381_FQ2 as FQ2
from py_ecc.optimized_bls12_381.optimized_curve import curve_order, normalize

from walruspy.chain.precompiles import (
    FIELD_MODULUS,
    NATIVE_PRECOMPILES,
    ecrecover_backend_name,
    install_native_precompiles,
    pure_python_precompiles,
)

pytestmark = pytest.mark.timeout(240)

G1ADD, G1MSM, G2ADD, G2MSM, PAIRING, MAP_FP, MAP_FP2 = 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11
PURE = {int.from_bytes(address, "big"): f for address, f in pure_python_precompiles().items()}
NATIVE = {int.from_bytes(address, "big"): f for address, f in NATIVE_PRECOMPILES.items()}


class Message:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.data_as_bytes = data


class Computation:
    """The part of a py-evm computation a precompile touches, with a gas budget."""

    def __init__(self, data: bytes, gas: int) -> None:
        self.msg = Message(data)
        self.gas = gas
        self.used = 0
        self.output = b""

    def consume_gas(self, amount: int, reason: str) -> None:
        if amount > self.gas - self.used:
            raise OutOfGas(f"{reason}: {amount}")
        self.used += amount


def outcome(function: Callable[[Any], object], data: bytes, gas: int) -> tuple[Any, ...]:
    computation = Computation(data, gas)
    try:
        function(computation)
    except VMError as error:
        return ("error", type(error).__name__, str(error), computation.used)
    return ("ok", computation.output, computation.used)


def assert_same(number: int, data: bytes, gas: int = 10**9) -> tuple[Any, ...]:
    expected = outcome(PURE[number], data, gas)
    assert outcome(NATIVE[number], data, gas) == expected, (hex(number), data.hex())
    return expected


# -- inputs ------------------------------------------------------------------------------


def fp(value: int) -> bytes:
    return value.to_bytes(64, "big")


def pad(xy: bytes) -> bytes:
    return b"".join(bytes(16) + xy[i : i + 48] for i in range(0, len(xy), 48))


def scalar(rng: random.Random) -> bytes:
    value = rng.choice(
        [0, 1, 2, curve_order - 1, curve_order, curve_order + 5, 2**256 - 1, rng.getrandbits(256)]
    )
    return value.to_bytes(32, "big")


def g1(rng: random.Random, kinds: tuple[str, ...] = ("subgroup",)) -> bytes:
    kind = rng.choice(kinds)
    if kind == "subgroup":
        return pad((G1Point() * Scalar(rng.randrange(curve_order))).to_xy_bytes_be())
    if kind == "curve":  # on the curve, outside the subgroup (no cofactor clearing)
        x, y = normalize(map_to_curve_G1(FQ(rng.randrange(FIELD_MODULUS))))
        return fp(int(x)) + fp(int(y))
    if kind == "infinity":
        return bytes(128)
    if kind == "off_curve":
        return fp(rng.randrange(FIELD_MODULUS)) + fp(rng.randrange(FIELD_MODULUS))
    valid = g1(rng)
    if kind == "overflow":  # a coordinate at or above the modulus
        return fp(FIELD_MODULUS + rng.randrange(2**10)) + valid[64:]
    assert kind == "padding"  # a non-zero byte in the 16 bytes of zero padding
    position = rng.choice([0, 15, 64, 79])
    return valid[:position] + b"\x01" + valid[position + 1 :]


def g2(rng: random.Random, kinds: tuple[str, ...] = ("subgroup",)) -> bytes:
    kind = rng.choice(kinds)
    if kind == "subgroup":
        return pad((G2Point() * Scalar(rng.randrange(curve_order))).to_xy_bytes_be())
    if kind == "curve":
        u = FQ2([rng.randrange(FIELD_MODULUS), rng.randrange(FIELD_MODULUS)])
        x, y = normalize(map_to_curve_G2(u))
        return b"".join(fp(int(c)) for c in (*x.coeffs, *y.coeffs))
    if kind == "infinity":
        return bytes(256)
    if kind == "off_curve":
        return b"".join(fp(rng.randrange(FIELD_MODULUS)) for _ in range(4))
    valid = g2(rng)
    if kind == "overflow":
        part = rng.randrange(4)
        return valid[: 64 * part] + fp(FIELD_MODULUS + 1) + valid[64 * (part + 1) :]
    assert kind == "padding"
    position = rng.choice([0, 64, 128, 192]) + rng.randrange(16)
    return valid[:position] + b"\x80" + valid[position + 1 :]


ALL_KINDS: tuple[str, ...] = ("subgroup", "subgroup", "subgroup", "curve", "infinity")
ALL_KINDS = (*ALL_KINDS, "off_curve", "overflow", "padding")
VALID_KINDS = ("subgroup", "subgroup", "subgroup", "infinity")


# -- equivalence -------------------------------------------------------------------------


def test_additions_match_py_evm() -> None:
    rng = random.Random(2537)
    outcomes = set()
    for _ in range(40):
        outcomes.add(assert_same(G1ADD, g1(rng, ALL_KINDS) + g1(rng, ALL_KINDS))[0])
        outcomes.add(assert_same(G2ADD, g2(rng, ALL_KINDS) + g2(rng, ALL_KINDS))[0])
    point = g1(rng)
    negated = pad((-G1Point.from_xy_bytes_be(point[16:64] + point[80:])).to_xy_bytes_be())
    assert assert_same(G1ADD, point + negated) == ("ok", bytes(128), 375)  # infinity: zeros
    assert assert_same(G1ADD, point + point)[0] == "ok"  # doubling
    for length in (0, 255, 257):
        assert_same(G1ADD, bytes(length))
    for length in (0, 511, 513):
        assert_same(G2ADD, bytes(length))
    assert_same(G1ADD, g1(rng) * 2, gas=374)
    assert_same(G2ADD, g2(rng) * 2, gas=599)
    assert outcomes == {"ok", "error"}


def test_msms_match_py_evm() -> None:
    rng = random.Random(12)
    outcomes = set()
    for kinds in (ALL_KINDS, VALID_KINDS):
        for _ in range(10):
            data = b"".join(g1(rng, kinds) + scalar(rng) for _ in range(rng.randint(1, 3)))
            outcomes.add(assert_same(G1MSM, data)[0])
        for _ in range(6):
            data = b"".join(g2(rng, kinds) + scalar(rng) for _ in range(rng.randint(1, 2)))
            outcomes.add(assert_same(G2MSM, data)[0])
    assert outcomes == {"ok", "error"}
    for k in (1, 2, 128, 129, 200):  # the discount table and its cap, seen through the gas
        assert_same(G1MSM, (g1(rng) + scalar(rng)) * k, gas=0)
        assert_same(G2MSM, (g2(rng) + scalar(rng)) * k, gas=0)
    for length in (0, 159, 161):
        assert_same(G1MSM, bytes(length))
    for length in (0, 287, 289):
        assert_same(G2MSM, bytes(length))
    zero_scalars = (g1(rng) + bytes(32)) * 2
    assert assert_same(G1MSM, zero_scalars)[1] == bytes(128)


def test_maps_match_py_evm() -> None:
    rng = random.Random(16)
    for _ in range(30):
        value = rng.choice([0, 1, FIELD_MODULUS - 1, rng.randrange(FIELD_MODULUS)])
        assert assert_same(MAP_FP, fp(value))[0] == "ok"
    for bad in (fp(FIELD_MODULUS), b"\x01" + bytes(63), bytes(63), bytes(65)):
        assert assert_same(MAP_FP, bad)[0] == "error"
    for _ in range(8):
        pair = [rng.choice([0, rng.randrange(FIELD_MODULUS)]) for _ in range(2)]
        assert assert_same(MAP_FP2, fp(pair[0]) + fp(pair[1]))[0] == "ok"
    for bad in (fp(FIELD_MODULUS) + fp(0), fp(0) + fp(FIELD_MODULUS + 2), bytes(127)):
        assert assert_same(MAP_FP2, bad)[0] == "error"
    assert_same(MAP_FP, fp(5), gas=5499)
    assert_same(MAP_FP2, fp(5) * 2, gas=23799)


def test_pairing_checks_match_py_evm() -> None:
    rng = random.Random(381)
    a, b = rng.randrange(1, curve_order), rng.randrange(1, curve_order)
    p, q = G1Point() * Scalar(a), G2Point() * Scalar(b)
    p_bytes, q_bytes = pad(p.to_xy_bytes_be()), pad(q.to_xy_bytes_be())
    minus_p = pad((-p).to_xy_bytes_be())
    one, zero = (1).to_bytes(32, "big"), bytes(32)
    assert assert_same(PAIRING, p_bytes + q_bytes + minus_p + q_bytes)[1] == one
    assert assert_same(PAIRING, p_bytes + q_bytes)[1] == zero
    assert assert_same(PAIRING, bytes(384))[1] == one  # e(inf, inf)
    assert assert_same(PAIRING, bytes(128) + q_bytes)[1] == one
    invalid_g1 = (("curve", "off_curve", "overflow", "padding"), ("subgroup",))
    invalid_g2 = (("subgroup",), ("curve", "off_curve", "overflow", "padding"))
    for g1_kinds, g2_kinds in (*[invalid_g1] * 4, *[invalid_g2] * 4):
        data = p_bytes + q_bytes + g1(rng, g1_kinds) + g2(rng, g2_kinds)
        assert assert_same(PAIRING, data)[0] == "error"
    for length in (0, 383, 385):
        assert_same(PAIRING, bytes(length))
    assert_same(PAIRING, bytes(384 * 3), gas=32_600 * 3 + 37_700 - 1)


def test_native_pairing_is_much_faster() -> None:
    rng = random.Random(7)
    p, q = G1Point() * Scalar(rng.randrange(curve_order)), G2Point() * Scalar(5)
    data = pad(p.to_xy_bytes_be()) + pad(q.to_xy_bytes_be())
    data += pad((-p).to_xy_bytes_be()) + pad(q.to_xy_bytes_be())
    timings = {}
    for name, table in (("pure", PURE), ("native", NATIVE)):
        started = time.perf_counter()
        assert outcome(table[PAIRING], data, 10**6)[1] == (1).to_bytes(32, "big")
        timings[name] = time.perf_counter() - started
    assert timings["native"] * 20 < timings["pure"], timings


# -- installation ------------------------------------------------------------------------


def test_install_patches_prague_once() -> None:
    install_native_precompiles()
    assert install_native_precompiles() == 0  # idempotent
    table = PragueComputation.get_precompiles()
    for address, native in NATIVE_PRECOMPILES.items():
        assert table[address] is native
    assert not set(NATIVE_PRECOMPILES) & set(CancunComputation.get_precompiles())


def test_titanoboa_gets_the_native_precompiles() -> None:
    import boa

    install_native_precompiles()
    computation_class = boa.env.evm.vm.state.computation_class
    assert issubclass(computation_class, PragueComputation)
    for address, native in NATIVE_PRECOMPILES.items():
        assert computation_class._precompiles[address] is native
    contract = boa.loads(
        """
@external
@view
def check(data: Bytes[768]) -> Bytes[32]:
    return raw_call(
        0x000000000000000000000000000000000000000F, data, max_outsize=32, is_static_call=True
    )
"""
    )
    p, q = G1Point() * Scalar(3), G2Point() * Scalar(11)
    data = pad(p.to_xy_bytes_be()) + pad(q.to_xy_bytes_be())
    data += pad((-p).to_xy_bytes_be()) + pad(q.to_xy_bytes_be())
    started = time.perf_counter()
    assert contract.check(data) == (1).to_bytes(32, "big")
    assert time.perf_counter() - started < 0.5  # py-evm's own takes seconds


def test_ecrecover_uses_coincurve() -> None:
    assert ecrecover_backend_name() == "CoinCurveECCBackend"
    key = PrivateKey(bytes(range(1, 33)))
    message_hash = bytes(range(32, 64))
    v, r, s = key.sign_msg_hash(message_hash).vrs
    data = message_hash + (v + 27).to_bytes(32, "big") + r.to_bytes(32, "big")
    data += s.to_bytes(32, "big")
    computation = Computation(data, 10**6)
    ecrecover(computation)  # type: ignore[arg-type]
    assert computation.output == bytes(12) + key.public_key.to_canonical_address()
    signature = key.sign_msg_hash(message_hash)
    timings = {}
    for backend in (CoinCurveECCBackend(), NativeECCBackend()):
        started = time.perf_counter()
        for _ in range(20):
            assert backend.ecdsa_recover(message_hash, signature) == key.public_key
        timings[type(backend).__name__] = time.perf_counter() - started
    assert timings["CoinCurveECCBackend"] * 3 < timings["NativeECCBackend"], timings
