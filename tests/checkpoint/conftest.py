"""Checkpoint test helpers: tables in the rig's bucket and multi-stage plans over them."""

from __future__ import annotations

import random
from decimal import Decimal as Dec

import pyarrow as pa
import pytest

from executor import ir
from tests.conftest import TEST_BUCKET
from tests.executor.conftest import col

I64, D = pa.int64(), pa.decimal128(12, 2)


def sample(n: int = 400, seed: int = 3) -> pa.Table:
    rng = random.Random(seed)
    return pa.table({
        "k": pa.array([rng.choice([None, *range(20)]) for _ in range(n)], I64),
        "s": pa.array([rng.choice(["a", "bb", "ccc", None]) for _ in range(n)]),
        "v": pa.array([Dec(rng.randint(-9999, 9999)).scaleb(-2) for _ in range(n)], D),
    })


@pytest.fixture
def s3_table(put, prefix):
    """s3_table(name, table, files) -> ir.Scan of a table written as ``files`` objects."""

    def _make(name: str, data: pa.Table, files: int = 4) -> ir.Scan:
        step = max(1, -(-data.num_rows // files))
        for i in range(files):
            put(f"{prefix}{name}/part-{i}.parquet", data.slice(i * step, step))
        return ir.Scan(f"s3://{TEST_BUCKET}/{prefix}{name}/", ir.Schema.from_arrow(data.schema),
                       tuple(data.column_names))

    return _make


@pytest.fixture
def root(prefix) -> str:
    return f"s3://{TEST_BUCKET}/{prefix}ck/"


def aggregate_plan(t: ir.Scan, partitions: int = 3) -> ir.Relation:
    """Partial aggregate -> hash exchange -> final aggregate -> single exchange -> sort:
    three stages (4 scan tasks, ``partitions`` tasks, 1 task)."""
    k, s, v = col(t, "k"), col(t, "s"), col(t, "v")
    aggs = (ir.Alias(ir.Sum(v), "sv"), ir.Alias(ir.Count(), "n"),
            ir.Alias(ir.Min(s), "ms"), ir.Alias(ir.Max(v), "mv"))
    partial = ir.Aggregate(t, (k,), aggs, "partial")
    final = ir.Aggregate(ir.Exchange(partial, "hash", (k,), partitions), (k,), aggs, "final")
    return ir.Sort(ir.Exchange(final, "single"), (ir.SortKey(k),))


def single_plan(t: ir.Scan) -> ir.Relation:
    """The same query in one stage (the reference: no exchange at all)."""
    k, s, v = col(t, "k"), col(t, "s"), col(t, "v")
    aggs = (ir.Alias(ir.Sum(v), "sv"), ir.Alias(ir.Count(), "n"),
            ir.Alias(ir.Min(s), "ms"), ir.Alias(ir.Max(v), "mv"))
    return ir.Sort(ir.Aggregate(t, (k,), aggs), (ir.SortKey(k),))
