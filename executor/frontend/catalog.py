"""Tables for ``wj sql``: ``name=location`` pairs registered as Spark temp views.

Spark plans the query; the executor reads the data. A local Parquet path is registered as
it is. An ``s3://`` table is read by the executor through wjio, but Spark needs a Hadoop
S3A connector (``hadoop-aws``) to even list it. When this Spark has one, the view reads the
``s3a://`` location itself. When it has none, the view reads a *schema stub*: an empty
Parquet file with the table's schema (from wjio's footer read) in a local directory, and the
plan's scans of the stub are pointed back at the ``s3://`` location (:meth:`Catalog.retarget`).
Spark can then plan but not run such a query: a query that would fall back to Spark fails
with :class:`StubFallbackError` instead of returning the stub's (empty) rows.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from executor.errors import ExecutorError
from executor.ir.node import transform_up
from executor.ir.relations import Relation, Scan

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CatalogError(ExecutorError):
    """A ``--table`` argument is malformed or names a table that cannot be read."""


class StubFallbackError(ExecutorError):
    """A query on s3:// tables must fall back to Spark, which cannot read them here."""


@dataclass
class Catalog:
    """Registered tables: view name -> location, and the stub directories standing in for
    ``s3://`` locations (stub path -> s3 URI)."""

    tables: dict[str, str] = field(default_factory=dict)
    stubs: dict[str, str] = field(default_factory=dict)
    workdir: tempfile.TemporaryDirectory | None = None

    def retarget(self, plan: Relation) -> Relation:
        """``plan`` with scans of stubs reading their ``s3://`` tables instead."""
        if not self.stubs:
            return plan
        out = _retarget(plan, self.stubs)
        assert isinstance(out, Relation)
        return out

    def check_fallback(self, reason: str, root_paths: set[str]) -> None:
        """Raise if falling back would make Spark read a stub, i.e. if a stub's directory is
        among ``root_paths`` (the plan's file relations, as Spark names them: ``file:/...``)."""
        roots = {p.removeprefix("file:").rstrip("/") for p in root_paths}
        read = {uri for path, uri in self.stubs.items() if path.rstrip("/") in roots}
        if read:
            names = sorted(n for n, loc in self.tables.items()
                           if "s3://" + loc.split("://", 1)[-1] in read)
            raise StubFallbackError(
                f"this query must run on Spark ({reason}), but Spark here has no S3A connector "
                f"(hadoop-aws) to read {', '.join(names)} on s3://; copy the tables locally or "
                "add hadoop-aws to Spark's classpath")

    def close(self) -> None:
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None


def parse_table_args(items: list[str]) -> dict[str, str]:
    """``["name=location", ...]`` -> ``{name: location}``; clear errors for bad items."""
    out: dict[str, str] = {}
    for item in items:
        name, eq, location = item.partition("=")
        name, location = name.strip(), location.strip()
        if not eq or not location:
            raise CatalogError(f"--table {item!r}: expected NAME=LOCATION, e.g. "
                               "lineitem=s3://bucket/tpch/lineitem/")
        if not _NAME.match(name):
            raise CatalogError(f"--table {item!r}: {name!r} is not a valid table name "
                               "(letters, digits, underscore)")
        if name in out:
            raise CatalogError(f"--table {name!r} is given twice")
        out[name] = location
    return out


def spark_reads_s3(spark) -> bool:
    """Whether Spark's classpath has the S3A filesystem."""
    try:
        spark._jvm.java.lang.Class.forName("org.apache.hadoop.fs.s3a.S3AFileSystem")
    except Exception:
        return False
    return True


def register(spark, tables: dict[str, str], *, store=None) -> Catalog:
    """Register each table as a temp view named after it (see the module docstring)."""
    catalog = Catalog(dict(tables))
    s3a = None
    for name, location in tables.items():
        if location.startswith(("s3://", "s3a://")):
            s3a = spark_reads_s3(spark) if s3a is None else s3a
            uri = "s3://" + location.split("://", 1)[1]
            if s3a:
                path = "s3a://" + location.split("://", 1)[1]
            else:
                if catalog.workdir is None:
                    catalog.workdir = tempfile.TemporaryDirectory(prefix="wj-sql-")
                path = _write_stub(Path(catalog.workdir.name) / name, uri, store)
                catalog.stubs[path] = uri
        else:
            path = os.path.abspath(location)
            if not os.path.exists(path):
                raise CatalogError(f"table {name!r}: no such file or directory {location}")
        try:
            spark.read.parquet(path).createOrReplaceTempView(name)
        except Exception as err:
            raise CatalogError(f"table {name!r} at {location}: Spark cannot read it: "
                               f"{_first_line(err)}") from err
    return catalog


def _write_stub(directory: Path, uri: str, store) -> str:
    import wjio
    from wjio.sync import run

    plan = run(wjio.ParquetScan(uri, store=store).plan())  # lists, reads the footers
    schema, files = plan.projection.output, plan.files
    partition = dict(files[0].partition) if files else {}
    target = directory
    for key, value in partition.items():
        target = target / f"{key}={'__HIVE_DEFAULT_PARTITION__' if value is None else value}"
    target.mkdir(parents=True, exist_ok=True)
    data_schema = schema
    for key in partition:
        data_schema = data_schema.remove(data_schema.get_field_index(key))
    pq.write_table(data_schema.empty_table(), target / "part-00000.parquet")
    return str(directory.resolve())


def _retarget(node, stubs: dict[str, str]):
    return transform_up(node, lambda n: n.replace(table=stubs[n.table])
                        if isinstance(n, Scan) and n.table in stubs else n)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
