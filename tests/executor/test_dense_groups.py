"""The direct-addressing grouped sum/count equals Acero's own aggregation (the reference) on
many shapes, and declines what it does not cover so Acero runs instead."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.acero as ac
import pyarrow.compute as pc
import pytest

from executor.operators.dense_groups import dense_aggregate

VALID = pc.CountOptions("only_valid")


def acero(table, aggs, keys):
    return ac.Declaration.from_sequence([
        ac.Declaration("table_source", ac.TableSourceNodeOptions(table)),
        ac.Declaration("aggregate", ac.AggregateNodeOptions(aggs, keys=keys)),
    ]).to_table(use_threads=False)


def same(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema
    key = got.schema.names[0]
    assert got.sort_by(key).to_pylist() == want.sort_by(key).to_pylist()


def _table(rng, n, key_type, null_rate, scale, spread, chunks=1):
    keys = rng.integers(-spread // 3, spread, n)
    values = rng.integers(-10**scale, 10**scale, n)
    nulls = rng.random(n) < null_rate
    dec = pa.array([None if m else Decimal(int(v)).scaleb(-2)
                    for v, m in zip(values, nulls, strict=True)], pa.decimal128(25, 2))
    table = pa.table({
        "k0": pa.array(keys).cast(key_type),
        "d": dec,
        "i": pa.array(values, mask=nulls),
        "f": pa.array(np.where(nulls, 0, 1).astype(np.int8), mask=nulls),
    })
    if chunks > 1:
        step = -(-n // chunks)
        table = pa.concat_tables([table.slice(i, step) for i in range(0, n, step)])
    return table


AGGS = [("d", "hash_sum", None, "sd"), ("i", "hash_sum", None, "si"),
        ("f", "hash_count", VALID, "cf"), ([], "hash_count_all", None, "n")]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("key_type", [pa.int64(), pa.int32(), pa.int16()])
def test_equals_acero(seed, key_type):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    table = _table(rng, n, key_type, null_rate=[0, 0.1, 0.9][seed % 3],
                   scale=[2, 6, 12][seed % 3], spread=int(rng.integers(1, 3000)),
                   chunks=1 + seed % 3)
    got = dense_aggregate(table, AGGS, ["k0"])
    assert got is not None
    same(got, acero(table, AGGS, ["k0"]))


def test_groups_whose_values_are_all_null_sum_to_null():
    table = pa.table({"k0": pa.array([1, 1, 2], pa.int64()),
                      "i": pa.array([None, None, 5], pa.int64())})
    aggs = [("i", "hash_sum", None, "s")]
    got = dense_aggregate(table, aggs, ["k0"])
    assert got.sort_by("k0").to_pylist() == [{"k0": 1, "s": None}, {"k0": 2, "s": 5}]
    same(got, acero(table, aggs, ["k0"]))


def test_declines_what_it_cannot_do_exactly():
    base = pa.table({"k0": pa.array([1, 2, 3], pa.int64()), "i": pa.array([1, 2, 3]),
                     "x": pa.array([1.0, 2.0, 3.0]), "s": pa.array(["a", "b", "c"])})
    sums = [("i", "hash_sum", None, "s")]
    assert dense_aggregate(base, sums, ["k0"]) is not None
    assert dense_aggregate(base, [("x", "hash_sum", None, "s")], ["k0"]) is None  # float
    assert dense_aggregate(base, [("i", "hash_min", None, "m")], ["k0"]) is None
    assert dense_aggregate(base, sums, ["s"]) is None  # string key
    assert dense_aggregate(base, sums, ["k0", "i"]) is None  # two keys
    sparse = base.set_column(0, "k0", pa.array([0, 10**9, 5], pa.int64()))
    assert dense_aggregate(sparse, sums, ["k0"]) is None
    nullkey = base.set_column(0, "k0", pa.array([1, None, 3], pa.int64()))
    assert dense_aggregate(nullkey, sums, ["k0"]) is None
    big = base.set_column(1, "i", pa.array([2**60, 1, 2], pa.int64()))  # float64 not exact
    assert dense_aggregate(big.take([2, 0, 1]), sums, ["k0"]) is None  # (unsorted keys)
    assert dense_aggregate(big, sums, ["k0"]).column("s").to_pylist() == [2**60, 1, 2]
    wide = pa.table({"k0": pa.array([1, 1], pa.int64()),
                     "d": pa.array([10**30, 1], pa.decimal128(38, 0))})  # beyond int64
    assert dense_aggregate(wide, [("d", "hash_sum", None, "s")], ["k0"]) is None


@pytest.mark.parametrize("seed", range(4))
def test_sorted_keys_equal_acero(seed):
    """Keys that never decrease (runs of any length, a sparse range) are summed by run."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    table = _table(rng, n, pa.int64(), null_rate=[0, 0.2, 1.0, 0.05][seed],
                   scale=[2, 6, 12, 14][seed], spread=int(rng.integers(1, 3000)),
                   chunks=1 + seed % 3)
    order = pc.sort_indices(table.column("k0"))
    table = table.take(order)
    table = table.set_column(0, "k0", pc.multiply(table.column("k0"),
                                                  pa.scalar(10**9 if seed % 2 else 1)))
    got = dense_aggregate(table, AGGS, ["k0"])
    assert got is not None
    same(got, acero(table, AGGS, ["k0"]))


def test_sorted_keys_decline_sums_that_could_wrap():
    table = pa.table({"k0": pa.array([1, 1, 2], pa.int64()),
                      "i": pa.array([2**62, 2**62, 1], pa.int64())})
    assert dense_aggregate(table, [("i", "hash_sum", None, "s")], ["k0"]) is None
