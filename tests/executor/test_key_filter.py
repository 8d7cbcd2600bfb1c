"""Key filters (runtime filters below a partitioned join): the rows kept are exactly those
whose every key occurs, non-null, in the other side's values (checked against Python sets),
for integer and date keys, dense and sparse values, several keys and an empty other side;
a filter that drops little passes the rest untested. (Their place in distributed plans:
``tests/executor/frontend/test_distribute.py``.)"""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest

from executor import ExecContext, ir, run
from executor.errors import PlanError
from executor.ir import relations as rel
from executor.operators import key_filter
from tests.executor.conftest import col

I64 = pa.int64()
rng = random.Random(11)


def _filtered(target: ir.Scan, source: ir.Scan, pairs) -> pa.Table:
    node = rel.KeyFilter(target, tuple(col(target, a) for a, _ in pairs), source,
                         tuple(col(source, b) for _, b in pairs))
    return run(node, ExecContext())


def _expected(target: pa.Table, source: pa.Table, pairs) -> list[dict]:
    sets = {b: {v for v in source.column(b).to_pylist() if v is not None} for _, b in pairs}
    return [r for r in target.to_pylist()
            if all(r[a] is not None and r[a] in sets[b] for a, b in pairs)]


@pytest.mark.parametrize("values", [
    [rng.randrange(1000) for _ in range(300)],                       # dense: a bit table
    [rng.randrange(-(1 << 40), 1 << 40) for _ in range(300)],         # sparse: sorted array
])
def test_keeps_rows_whose_key_the_other_side_has(table, values):
    probe = values[:150] + [rng.randrange(-(1 << 40), 1 << 40) for _ in range(150)]
    target = pa.table({"k": pa.array(probe + [None] * 5, I64),
                       "v": pa.array(range(len(probe) + 5), I64)})
    source = pa.table({"s": pa.array([*values[::3], None], I64)})
    got = _filtered(table("t", target, files=2), table("s", source), [("k", "s")])
    want = _expected(target, source, [("k", "s")])
    assert got.to_pylist() == want and 0 < len(want) < len(probe)


def test_every_key_must_match_and_dates_and_narrow_integers_work(table):
    days = [dt.date(1995, 1, 1) + dt.timedelta(days=d) for d in range(60)]
    target = pa.table({"d": pa.array([rng.choice([*days, None]) for _ in range(400)]),
                       "n": pa.array([rng.randrange(20) for _ in range(400)], pa.int32())})
    source = pa.table({"sd": pa.array(days[::4]),
                       "sn": pa.array([n % 20 for n in range(0, 45, 3)], pa.int32())})
    pairs = [("d", "sd"), ("n", "sn")]
    got = _filtered(table("t", target), table("s", source), pairs)
    want = _expected(target, source, pairs)
    assert got.to_pylist() == want and 0 < len(want) < 400


def test_an_empty_other_side_keeps_nothing(table):
    target = pa.table({"k": pa.array(range(100), I64)})
    source = pa.table({"s": pa.array([None, None], I64)})
    assert _filtered(table("t", target), table("s", source), [("k", "s")]).num_rows == 0


def test_a_filter_dropping_little_passes_the_rest_untested(table, monkeypatch):
    monkeypatch.setattr(key_filter, "SAMPLE_ROWS", 10)
    target = pa.table({"k": pa.array(range(1000), I64)})
    source = pa.table({"s": pa.array(range(1, 1000), I64)})  # all but key 0
    scan, other = table("t", target), table("s", source)
    node = rel.KeyFilter(scan, (col(scan, "k"),), other, (col(other, "s"),))
    ctx = ExecContext(batch_size=100)
    assert run(node, ctx).column("k").to_pylist() == list(range(1, 1000))  # one batch tested
    monkeypatch.setattr(key_filter, "KEEP_LIMIT", 1.0)
    assert run(node, ctx).num_rows == 999  # every batch tested: only key 0 dropped


def test_types_are_checked():
    scan = ir.Scan("/t", ir.Schema.of(("k", I64), ("s", pa.string())), ("k", "s"))
    with pytest.raises(PlanError, match="key types differ"):
        rel.KeyFilter(scan, (col(scan, "k"),), scan, (col(scan, "s"),))
    assert key_filter.filterable(pa.date32()) and not key_filter.filterable(pa.float64())


def test_a_staged_plan_reads_the_source_through_an_exchange(table):
    from executor import run_parallel

    scan = table("t", pa.table({"k": pa.array(range(10), I64)}))
    node = rel.KeyFilter(scan, (col(scan, "k"),), scan, (col(scan, "k"),))
    with pytest.raises(PlanError, match="source must be an Exchange"):
        run_parallel(ir.Exchange(node, "single"))
