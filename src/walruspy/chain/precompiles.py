"""Native BLS12-381 precompiles (EIP-2537) for py-evm, on py-arkworks-bls12381.

Theory of operation
-------------------
py-evm implements the seven EIP-2537 precompiles of the Prague fork in pure Python on
py_ecc: a pairing check of two pairs takes one to two seconds, so every certificate check
on the embedded chain would cost seconds. :func:`install_native_precompiles` swaps them,
in the precompile tables py-evm's computation classes read, for the functions below,
which compute the same results with arkworks (a few milliseconds).

The replacements are drop-in: they consume exactly the gas py-evm consumes, at the same
moment (before decoding, as py-evm does), and raise the same ``VMError`` with the same
message for the same first invalid input, checked in the same order:

* every field element is a 64-byte big-endian integer that must be below the field
  modulus p (this also rejects non-zero bytes in its 16-byte zero padding, since
  p < 2**381);
* a point must lie on its curve; (0, 0) is the point at infinity and encodes as zeros;
* MSM and pairing inputs must also lie in the prime-order subgroup (EIP-2537 requires it
  there, and not for addition or the maps);
* MSM scalars are arbitrary 32-byte integers (reduced modulo the group order, which
  changes nothing for points of the subgroup).

Who is reached: py-evm builds the table of a fork once, as a class attribute
``_precompiles`` of its computation class (``PragueComputation`` here). eth-tester's
``PyEVMBackend`` runs ``PragueVM``; titanoboa builds its chain from
``eth.tools.builder.chain.latest_mainnet_at`` (also ``PragueVM``) and derives a class from
``PragueComputation`` whose instances copy ``_precompiles`` when they are created. So
patching the tables in place, once, reaches both, including environments created before
the patch. The original functions are kept, see :func:`pure_python_precompiles`.

ecrecover (0x01) needs no replacement: py-evm calls eth-keys, which uses coincurve
(libsecp256k1) whenever coincurve is importable and ``ECC_BACKEND_CLASS`` does not say
otherwise; :func:`ecrecover_backend_name` reports which one is in use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from eth._utils.address import force_bytes_to_address
from eth.abc import ComputationAPI
from eth.exceptions import VMError
from eth.precompiles.bls12_381 import bls12_381_g1 as _pure_g1
from eth.precompiles.bls12_381 import bls12_381_g2 as _pure_g2
from eth.precompiles.bls12_381 import bls12_381_pairing as _pure_pairing
from eth.precompiles.bls12_381.constants import (
    BLS12_G1_ADD_GAS,
    BLS12_G1_MSM_GAS,
    BLS12_G2_ADD_GAS,
    BLS12_G2_MSM_GAS,
    BLS12_MAP_FP2_G2_GAS,
    BLS12_MAP_FP_G1_GAS,
    G1_MSM_DISCOUNTS,
    G1_MSM_MAX_DISCOUNT,
    G2_MSM_DISCOUNTS,
    G2_MSM_MAX_DISCOUNT,
    MSM_MULTIPLIER,
)
from eth.vm.computation import BaseComputation
from eth_typing import Address
from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

__all__ = [
    "NATIVE_PRECOMPILES",
    "Precompile",
    "ecrecover_backend_name",
    "install_native_precompiles",
    "pure_python_precompiles",
]

Precompile = Callable[[ComputationAPI], ComputationAPI]

# The base field modulus of BLS12-381.
FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9fefffff"
    "fffaaab",
    16,
)
FP_BYTES = 64  # an EIP-2537 field element: 16 zero bytes, then 48 bytes big-endian
_FP_PAD = 16
G1_BYTES = 2 * FP_BYTES
G2_BYTES = 4 * FP_BYTES
SCALAR_BYTES = 32
PAIRING_PAIR_BYTES = G1_BYTES + G2_BYTES
# py-evm's literal pairing gas (EIP-2537: 32600 per pair plus 37700).
PAIRING_GAS_PER_PAIR = 32600
PAIRING_GAS_BASE = 37700

_ONE_WORD = (1).to_bytes(32, "big")
_ZERO_WORD = bytes(32)


# -- decoding, with py-evm's checks and messages ---------------------------------------


def _check_fp(data: bytes, message: str) -> bytes:
    """Return the 48 significant bytes of a 64-byte field element, or raise ``VMError``."""
    if int.from_bytes(data, "big") >= FIELD_MODULUS:
        raise VMError(message)
    return data[_FP_PAD:]


def _decode_g1(data: bytes) -> G1Point:
    """Decode an EIP-2537 G1 point (on-curve check only)."""
    x = _check_fp(data[:FP_BYTES], "x >= field modulus")
    y = _check_fp(data[FP_BYTES:G1_BYTES], "y >= field modulus")
    try:
        return G1Point.from_xy_bytes_unchecked_be(x + y)
    except ValueError as exc:
        raise VMError("Point is not on curve") from exc


def _decode_fp2(data: bytes) -> bytes:
    """Check an EIP-2537 Fp2 element (c0 then c1) and return its 96 significant bytes."""
    c0 = _check_fp(data[:FP_BYTES], "coordinate 0 >= field modulus")
    c1 = _check_fp(data[FP_BYTES : 2 * FP_BYTES], "coordinate 1 >= field modulus")
    return c0 + c1


def _decode_g2(data: bytes) -> G2Point:
    """Decode an EIP-2537 G2 point (on-curve check only)."""
    x = _decode_fp2(data[: 2 * FP_BYTES])
    y = _decode_fp2(data[2 * FP_BYTES : G2_BYTES])
    try:
        return G2Point.from_xy_bytes_unchecked_be(x + y)
    except ValueError as exc:
        raise VMError("Point is not on curve") from exc


def _pad_words(xy: bytes) -> bytes:
    """Re-pad arkworks' 48-byte coordinates to EIP-2537's 64 bytes (infinity stays zeros)."""
    return b"".join(bytes(_FP_PAD) + xy[i : i + 48] for i in range(0, len(xy), 48))


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


#: A point of G1 or of G2 (the two groups share the multi-scalar multiplication).
_P = TypeVar("_P", G1Point, G2Point)


def _msm_gas(k: int, per_pair_gas: int, discounts: list[int], max_discount: int) -> int:
    discount = discounts[k - 1] if k <= len(discounts) else max_discount
    return k * per_pair_gas * discount // MSM_MULTIPLIER


# -- the precompiles -------------------------------------------------------------------


def bls12_g1_add(computation: ComputationAPI) -> ComputationAPI:
    """0x0b: the sum of two G1 points (no subgroup check, as EIP-2537 says)."""
    data = bytes(computation.msg.data)
    if len(data) != 2 * G1_BYTES:
        raise VMError("Length of data must be 256 bytes for BLS12_G1ADD")
    computation.consume_gas(BLS12_G1_ADD_GAS, reason="BLS12_G1ADD gas")
    total = _decode_g1(data[:G1_BYTES]) + _decode_g1(data[G1_BYTES:])
    computation.output = _pad_words(total.to_xy_bytes_be())
    return computation


@dataclass(frozen=True, slots=True)
class _MsmGroup(Generic[_P]):
    """What differs between the G1 and G2 multi-scalar multiplications (py-evm's own strings)."""

    decode: Callable[[bytes], _P]
    multiexp: Callable[[list[_P], list[Scalar]], _P]
    point_bytes: int
    gas: tuple[int, list[int], int]  # per-pair gas, discount table, maximum discount
    name: str
    length_message: str


def _msm(computation: ComputationAPI, group: _MsmGroup[_P]) -> ComputationAPI:
    """A multi-scalar multiplication over subgroup points, checked and charged as py-evm does."""
    data = bytes(computation.msg.data)
    pair_bytes = group.point_bytes + SCALAR_BYTES
    if len(data) == 0 or len(data) % pair_bytes != 0:
        raise VMError(group.length_message)
    k = len(data) // pair_bytes
    computation.consume_gas(_msm_gas(k, *group.gas), reason=f"{group.name} gas")
    points: list[_P] = []
    scalars: list[Scalar] = []
    for pair in _chunks(data, pair_bytes):
        point = group.decode(pair[: group.point_bytes])
        if not point.is_in_subgroup():
            raise VMError("Point failed sub-group check.")
        points.append(point)
        scalars.append(Scalar.from_be_bytes_mod_order(pair[group.point_bytes :]))
    computation.output = _pad_words(group.multiexp(points, scalars).to_xy_bytes_be())
    return computation


_G1_MSM = _MsmGroup(
    _decode_g1, G1Point.multiexp_unchecked, G1_BYTES,
    (BLS12_G1_MSM_GAS, G1_MSM_DISCOUNTS, G1_MSM_MAX_DISCOUNT),
    "BLS12_G1MSM", "Length of data must be a multiple of 128 bytes for BLS12_G1MSM",
)  # fmt: skip
_G2_MSM = _MsmGroup(
    _decode_g2, G2Point.multiexp_unchecked, G2_BYTES,
    (BLS12_G2_MSM_GAS, G2_MSM_DISCOUNTS, G2_MSM_MAX_DISCOUNT),
    "BLS12_G2MSM",
    "Length of data must be a multiple of 288 bytes for G2 multi-scalar multiplication",
)  # fmt: skip


def bls12_g1_msm(computation: ComputationAPI) -> ComputationAPI:
    """0x0c: a multi-scalar multiplication in G1 over points of the subgroup."""
    return _msm(computation, _G1_MSM)


def bls12_g2_add(computation: ComputationAPI) -> ComputationAPI:
    """0x0d: the sum of two G2 points (no subgroup check)."""
    data = bytes(computation.msg.data)
    if len(data) != 2 * G2_BYTES:
        raise VMError("Length of data must be 512 for g2 add")
    computation.consume_gas(BLS12_G2_ADD_GAS, "BLS12_G2ADD gas")
    total = _decode_g2(data[:G2_BYTES]) + _decode_g2(data[G2_BYTES:])
    computation.output = _pad_words(total.to_xy_bytes_be())
    return computation


def bls12_g2_msm(computation: ComputationAPI) -> ComputationAPI:
    """0x0e: a multi-scalar multiplication in G2 over points of the subgroup."""
    return _msm(computation, _G2_MSM)


def bls12_pairing_check(computation: ComputationAPI) -> ComputationAPI:
    """0x0f: 1 if the product of the pairings of (G1, G2) pairs is one, else 0."""
    data = bytes(computation.msg.data)
    if len(data) == 0 or len(data) % PAIRING_PAIR_BYTES != 0:
        raise VMError("Length of data must be a multiple of 384 bytes for BLS12_PAIRING_CHECK")
    k = len(data) // PAIRING_PAIR_BYTES
    computation.consume_gas(PAIRING_GAS_PER_PAIR * k + PAIRING_GAS_BASE, "BLS12_PAIRING_CHECK gas")
    g1s: list[G1Point] = []
    g2s: list[G2Point] = []
    for pair in _chunks(data, PAIRING_PAIR_BYTES):
        g1 = _decode_g1(pair[:G1_BYTES])
        if not g1.is_in_subgroup():
            raise VMError("Sub-group check failed for G1 point.")
        g2 = _decode_g2(pair[G1_BYTES:])
        if not g2.is_in_subgroup():
            raise VMError("Sub-group check failed for G2 point.")
        g1s.append(g1)
        g2s.append(g2)
    computation.output = _ONE_WORD if GT.pairing_check(g1s, g2s) else _ZERO_WORD
    return computation


def bls12_map_fp_to_g1(computation: ComputationAPI) -> ComputationAPI:
    """0x10: map a field element to G1 (simplified SWU, isogeny, cofactor clearing)."""
    data = bytes(computation.msg.data)
    if len(data) != FP_BYTES:
        raise VMError("Length of data must be 64 bytes for BLS12_MAP_FP_TO_G1")
    computation.consume_gas(BLS12_MAP_FP_G1_GAS, reason="BLS12_MAP_FP_TO_G1 gas")
    fp = _check_fp(data, "coordinate >= field modulus")
    computation.output = _pad_words(G1Point.map_from_fp_be(fp).to_xy_bytes_be())
    return computation


def bls12_map_fp2_to_g2(computation: ComputationAPI) -> ComputationAPI:
    """0x11: map an Fp2 element to G2 (simplified SWU, isogeny, cofactor clearing)."""
    data = bytes(computation.msg.data)
    if len(data) != 2 * FP_BYTES:
        raise VMError("Length of data must be 128 bytes for BLS12_MAP_FP2_TO_G2")
    computation.consume_gas(BLS12_MAP_FP2_G2_GAS, "BLS12_MAP_FP2_TO_G2 gas")
    fp2 = _decode_fp2(data)
    computation.output = _pad_words(G2Point.map_from_fp2_be(fp2).to_xy_bytes_be())
    return computation


# -- installation ----------------------------------------------------------------------


def _address(number: int) -> Address:
    return Address(force_bytes_to_address(bytes([number])))


# (address, py-evm's pure-Python function, native replacement), in address order.
_TABLE: tuple[tuple[Address, Callable[[ComputationAPI], object], Precompile], ...] = (
    (_address(0x0B), _pure_g1.bls12_g1_add, bls12_g1_add),
    (_address(0x0C), _pure_g1.bls12_g1_msm, bls12_g1_msm),
    (_address(0x0D), _pure_g2.bls12_g2_add, bls12_g2_add),
    (_address(0x0E), _pure_g2.bls12_g2_msm, bls12_g2_msm),
    (_address(0x0F), _pure_pairing.bls12_pairing_check, bls12_pairing_check),
    (_address(0x10), _pure_g1.bls12_map_fp_to_g1, bls12_map_fp_to_g1),
    (_address(0x11), _pure_g2.bls12_map_fp2_to_g2, bls12_map_fp2_to_g2),
)

NATIVE_PRECOMPILES: Mapping[Address, Precompile] = {a: native for a, _, native in _TABLE}
"""The native functions by precompile address."""

_install_lock = threading.Lock()


def pure_python_precompiles() -> Mapping[Address, Callable[[ComputationAPI], object]]:
    """py-evm's original pure-Python functions by address (kept aside as a test oracle)."""
    return {address: pure for address, pure, _ in _TABLE}


def _computation_classes() -> Iterator[type[BaseComputation]]:
    """Every computation class defined so far (py-evm's forks and their subclasses)."""
    seen: set[type[BaseComputation]] = set()
    stack: list[type[BaseComputation]] = [BaseComputation]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        stack.extend(cls.__subclasses__())


def install_native_precompiles() -> int:
    """Replace py-evm's pure-Python BLS12-381 precompiles with the native ones.

    Patches in place every precompile table held by a computation class (Prague's, shared
    by eth-tester and titanoboa), replacing exactly py-evm's original functions. Calling it
    again changes nothing. Returns the number of table entries replaced by this call.
    """
    originals: dict[object, Precompile] = {pure: native for _, pure, native in _TABLE}
    replaced = 0
    with _install_lock:
        for cls in _computation_classes():
            table = cls.__dict__.get("_precompiles")
            if not isinstance(table, dict):
                continue
            for address, function in list(table.items()):
                native = originals.get(function)
                if native is not None:
                    table[address] = native
                    replaced += 1
    return replaced


def ecrecover_backend_name() -> str:
    """The class name of the eth-keys backend py-evm's ecrecover uses (want coincurve's)."""
    from eth_keys.backends import get_backend_class

    return get_backend_class().__name__
