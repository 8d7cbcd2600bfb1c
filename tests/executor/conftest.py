"""Executor test helpers: local Parquet tables (wjio's S3 path is exercised elsewhere)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from executor import ir
from executor.context import ExecContext


@pytest.fixture
def table(tmp_path):
    """table(name, pyarrow_table, files=1) -> ir.Scan over all columns of a local table."""

    def _make(name: str, data: pa.Table, files: int = 1) -> ir.Scan:
        root = tmp_path / name
        root.mkdir()
        step = max(1, -(-data.num_rows // files))
        for i in range(files):
            pq.write_table(data.slice(i * step, step), root / f"part-{i}.parquet")
        schema = ir.Schema.from_arrow(data.schema)
        return ir.Scan(str(root), schema, tuple(data.column_names))

    return _make


@pytest.fixture
def ctx():
    return ExecContext()


def col(scan_or_rel, name: str) -> ir.ColumnRef:
    f = scan_or_rel.schema.field(name)
    return ir.ColumnRef(name, f.dtype, f.nullable)


def lit(value, dtype) -> ir.Literal:
    return ir.Literal(value, dtype)
