"""bench/side_by_side.py reads the medians of both shell benchmarks and computes the speeds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

WALRUSPY_OUTPUT = """devnet up (10 nodes, 100 shards): 21.3 s
op   size     median s (min..max)      MiB/s at median
put  1MiB     0.283 (0.269..0.830)     3.5
get  1MiB     0.041 (0.040..0.042)     24.4
put  100MiB   4.449 (4.034..4.585)     22.5
"""

TAHOE_OUTPUT = """[19:29:46] waiting for the grid
| op | tool | size MiB | runs | median s | min s | max s | median MiB/s | min..max MiB/s |
|---|---|---:|---:|---:|---:|---:|---:|---:|
| put | tahoe | 1 | 3 | 0.90 | 0.88 | 0.95 | 1.1 | 1.0..1.1 | 0.1 | 0.8 | 82 | 3 |
| put | curl | 1 | 3 | 0.08 | 0.07 | 0.08 | 12.5 | 12.7..13.8 | 0.1 | 0.0 | 11 | 39 |
| get | curl | 1 | 3 | 0.03 | 0.03 | 0.03 | 31.5 | 29.9..33.2 | 0.0 | 0.0 | 11 | 126 |
| put | curl | 100 | 3 | 2.79 | 2.74 | 2.86 | 35.9 | 34.9..36.5 | 3.4 | 0.0 | 11 | 0 |
"""


@pytest.fixture(scope="module")
def side_by_side() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "side_by_side.py"
    spec = importlib.util.spec_from_file_location("side_by_side", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # for its dataclasses
    spec.loader.exec_module(module)
    return module


def test_walruspy_medians(side_by_side: ModuleType) -> None:
    assert side_by_side.parse_walruspy(WALRUSPY_OUTPUT) == {
        ("put", 1): 0.283, ("get", 1): 0.041, ("put", 100): 4.449,
    }  # fmt: skip


def test_tahoe_medians_come_from_its_curl_rows_throughput(side_by_side: ModuleType) -> None:
    medians = side_by_side.parse_tahoe(TAHOE_OUTPUT)
    assert set(medians) == {("put", 1), ("get", 1), ("put", 100)}  # not the CLI's row
    assert medians["put", 1] == pytest.approx(1 / 12.5)
    assert medians["put", 100] == pytest.approx(100 / 35.9)


def test_speed_is_tahoe_time_over_walruspy_time(side_by_side: ModuleType) -> None:
    row = side_by_side.Row(10, "get", 1, walruspy_s=0.04, tahoe_s=0.05)
    assert row.speed == pytest.approx(1.25)


def test_tahoe_encoding_by_node_count(side_by_side: ModuleType) -> None:
    assert side_by_side.tahoe_encoding(10) == (3, 7, 10)
    assert side_by_side.tahoe_encoding(4) == (2, 4, 4)
    assert side_by_side.tahoe_encoding(20) == (6, 14, 20)
