"""Low-cardinality string columns decoded as Parquet dictionaries, and filters applied to them.

A string column whose chunks are dictionary-encoded with few distinct values decodes several
times faster as an Arrow dictionary (the chunk's distinct values plus one index per row) than
as plain strings, and a conjunct of the filter that references only that column needs
evaluating once per distinct value, not once per row. :class:`RowFilter` does that, then
decodes the dictionary columns of the surviving rows only, so what a scan yields is exactly
what a plain read yields: the same rows, plain columns of the same types.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow._acero as ac  # pyarrow.acero imports pyarrow.dataset and pandas (~0.5 s)
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wjio import predicate

MAX_BYTES_PER_VALUE = 4.0
"""A column is read as a dictionary when every row group's chunk of it has a dictionary page
and at most this many uncompressed bytes per value (indices, definition levels and the
dictionary page, over the chunk's values). Measured single-threaded, pyarrow 26, read then
decoded to plain strings in full (the worst case: no row filtered out) against a plain read:
TPC-H ``l_returnflag`` 0.25 B/value 0.06 s vs 0.12 s CPU, ``l_shipmode`` 0.38 B/value 0.08 s vs
0.17 s, ``o_clerk`` 1.46 B/value 0.012 s vs 0.029 s; synthetic 14-character strings in 125k-row
row groups with 10k distinct values 3.2 B/value 0.015 s vs 0.021 s, 20k distinct 4.7 B/value
0.021 s vs 0.036 s. Above it the dictionary page dominates or the writer fell back to plain
pages, which a dictionary read must hash back into a dictionary: 50k distinct 8.6 B/value is
still ahead, but unique values (``c_name`` 24 B/value 0.016 s vs 0.008 s) and fallen-back
chunks (``l_comment`` 31 B/value 1.38 s vs 0.34 s, synthetic 24 B/value 0.24 s vs 0.04 s) lose
2-7x. A fallback needs a dictionary page of the writer's limit (1 MiB in Arrow) and plain
values of a few bytes each, so at 4 bytes per value the chunk is essentially indices."""

_STRING_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                 pa.types.is_large_binary)


def dictionary_columns(metadata: pq.FileMetaData, names: Iterable[str]) -> frozenset[str]:
    """Those of the top-level columns ``names`` of one Parquet file worth reading as
    dictionaries, from its footer alone (see :data:`MAX_BYTES_PER_VALUE`): flat string or
    binary columns whose every row-group chunk is dictionary-encoded with few distinct values.
    A file without row groups has none."""
    if metadata.num_row_groups == 0:
        return frozenset()
    arrow_schema = metadata.schema.to_arrow_schema()
    leaf = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    chosen = set()
    for name in names:
        i = leaf.get(name)
        index = arrow_schema.get_field_index(name)
        if i is None or index < 0 or not any(
                is_type(arrow_schema.field(index).type) for is_type in _STRING_TYPES):
            continue
        if all(_dictionary_chunk(metadata.row_group(rg).column(i))
               for rg in range(metadata.num_row_groups)):
            chosen.add(name)
    return frozenset(chosen)


def null_free_columns(metadata: pq.FileMetaData,
                      among: Collection[str] | None = None) -> frozenset[str]:
    """The flat top-level columns of one Parquet file (of ``among`` only, if given) that hold
    no null, from its footer alone: required ones, and those with a null count of 0 in every
    row group's statistics."""
    found = set()
    for i in range(metadata.num_columns):
        column = metadata.schema.column(i)
        if "." in column.path or (among is not None and column.path not in among):
            continue  # a nested leaf, not a top-level column; or not asked about
        if column.max_definition_level == 0 or all(
                (stats := metadata.row_group(rg).column(i).statistics) is not None
                and stats.has_null_count and stats.null_count == 0
                for rg in range(metadata.num_row_groups)):
            found.add(column.path)
    return frozenset(found)


def _dictionary_chunk(chunk: pq.ColumnChunkMetaData) -> bool:
    if chunk.num_values == 0:
        return True  # an empty row group decodes to nothing either way
    return (chunk.has_dictionary_page
            and chunk.total_uncompressed_size <= MAX_BYTES_PER_VALUE * chunk.num_values)


@dataclass(frozen=True, eq=False)  # Expression == builds an expression, not a bool
class Conjunct:
    """One conjunct of a filter and the top-level columns it references."""

    expression: pc.Expression
    columns: frozenset[str]


def _null_check(c: Conjunct) -> str | None:
    """The column ``c`` is ``IS NOT NULL`` of, if it is one."""
    if len(c.columns) != 1:
        return None
    (name,) = c.columns
    return name if c.expression.equals(pc.field(name).is_valid()) else None


def conjuncts(expressions: Sequence[pc.Expression], schema: pa.Schema) -> tuple[Conjunct, ...]:
    """``expressions`` (a filter's conjuncts, each valid on ``schema``) with their columns."""
    return tuple(Conjunct(e, frozenset(predicate.referenced_columns(e, schema)))
                 for e in expressions)


Data = pa.Table | pa.RecordBatch


class RowFilter:
    """The conjuncts of a scan's filter, applied exactly to decoded rows, some of whose columns
    may be dictionaries (``dictionary``: {column: the plain type a plain read yields}).

    A conjunct referencing only one dictionary column is evaluated on that column's distinct
    values plus a null, and mapped to the rows through the indices (a null row takes the null's
    result), so it means what it means on plain rows; a row survives where it is true (false
    and null drop it, as in ``filter``). Those go first, being the cheapest; the conjuncts
    referencing no dictionary column are then evaluated on the rows those keep only (pushed
    conjuncts raise no errors, so skipping rows changes nothing but the work); the dictionary
    columns of the rows left are decoded, and the conjuncts left (on a dictionary column and
    another) applied to those.
    """

    def __init__(self, conjuncts: Sequence[Conjunct]) -> None:
        self.conjuncts = tuple(conjuncts)
        self._masks: dict[str, tuple[pa.Array, pa.Array]] = {}
        self._without: dict[frozenset[str], RowFilter] = {}
        """:meth:`without_null_checks` by its columns: a scan's files mostly share them."""

    def without_null_checks(self, no_nulls: Collection[str]) -> RowFilter:
        """This filter for data in which the columns ``no_nulls`` hold no null: their
        ``IS NOT NULL`` conjuncts (which Spark adds to most scans) dropped, being true on every
        row. A filter left with no conjunct filters nothing, sparing the copy of every row.
        Made once per set of columns."""
        no_nulls = frozenset(no_nulls)
        found = self._without.get(no_nulls)
        if found is None:
            kept = [c for c in self.conjuncts if _null_check(c) not in no_nulls]
            found = self if len(kept) == len(self.conjuncts) else RowFilter(kept)
            self._without[no_nulls] = found
        return found

    @property
    def null_checked(self) -> frozenset[str]:
        """The columns an ``IS NOT NULL`` conjunct checks (:meth:`without_null_checks` may drop
        those conjuncts)."""
        return frozenset(n for c in self.conjuncts if (n := _null_check(c)) is not None)

    @property
    def filtered_alone(self) -> frozenset[str]:
        """The columns some conjunct references alone: the only ones worth reading as
        dictionaries. A column only read, or grouped on later, decodes to plain values anyway,
        here in the consuming thread instead of the reader's threads: TPC-H Q1's flag columns
        read as dictionaries took as much CPU and more wall time."""
        return frozenset(c for conj in self.conjuncts if len(conj.columns) == 1
                         for c in conj.columns)

    def apply(self, data: Data, dictionary: Mapping[str, pa.DataType],
              keep: Sequence[str] | None = None) -> Data:
        """Rows of ``data`` where every conjunct holds, its dictionary columns decoded, then
        only the columns ``keep`` (default: all), in that order."""
        dictionary = {n: t for n, t in dictionary.items() if n in data.schema.names
                      and pa.types.is_dictionary(data.schema.field(n).type)}
        on_dictionary: dict[str, list[Conjunct]] = {}
        rest = []
        for c in self.conjuncts:
            if len(c.columns) == 1 and next(iter(c.columns)) in dictionary:
                on_dictionary.setdefault(next(iter(c.columns)), []).append(c)
            else:
                rest.append(c)
        after = [c for c in rest if c.columns & dictionary.keys()]
        first = _conjunction([c for c in rest if not c.columns & dictionary.keys()])
        if on_dictionary:
            mask = functools.reduce(pc.and_, [
                self._rows(name, _conjunction(on_one), data.column(name))
                for name, on_one in on_dictionary.items()])
            if pc.sum(mask).as_py() != data.num_rows:  # (Spark's isnotnull often keeps all)
                data = data.filter(mask)
        if first is not None and data.num_rows:
            data = predicate.filter_rows(data, first)
        wanted = data.schema.names if keep is None else keep
        for name, plain in dictionary.items():
            if name in wanted or any(name in c.columns for c in after):
                data = data.set_column(data.schema.get_field_index(name),
                                       data.schema.field(name).with_type(plain),
                                       _decode(data.column(name), plain))
        if after:
            data = predicate.filter_rows(data, _conjunction(after))
        return data if keep is None else data.select(list(keep))

    def _rows(self, name: str, expression: pc.Expression,
              column: pa.DictionaryArray | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """``expression`` (on the dictionary column ``name`` only) per row: true or false."""
        if isinstance(column, pa.ChunkedArray):
            return pa.chunked_array([self._rows(name, expression, c) for c in column.chunks],
                                    pa.bool_())
        values = self._on_values(name, expression, column.dictionary)
        indices = column.indices
        if indices.null_count:
            indices = pc.fill_null(indices, pa.scalar(len(column.dictionary), indices.type))
        return pc.take(values, indices)

    def _on_values(self, name: str, expression: pc.Expression,
                   dictionary: pa.Array) -> pa.Array:
        """``expression`` on each of ``dictionary``'s values and then on null (null read as
        false). The dictionary of a column chunk is shared by its batches: the last result per
        column is kept and reused while the dictionary is equal (decode threads share it: an
        entry is replaced whole, and only used after the equality check)."""
        last = self._masks.get(name)
        if last is not None and last[0].equals(dictionary):
            return last[1]
        values = pa.concat_arrays([dictionary, pa.nulls(1, dictionary.type)])
        mask = _evaluate(pa.record_batch({name: values}), expression)
        self._masks[name] = (dictionary, mask)
        return mask


def _conjunction(conjuncts: Sequence[Conjunct]) -> pc.Expression | None:
    return (functools.reduce(operator.and_, [c.expression for c in conjuncts]) if conjuncts
            else None)


def _evaluate(batch: pa.RecordBatch, expression: pc.Expression) -> pa.Array:
    """``expression`` on each row of ``batch``, null read as false."""
    result = ac.Declaration.from_sequence([
        ac.Declaration("table_source", ac.TableSourceNodeOptions(pa.Table.from_batches([batch]))),
        ac.Declaration("project", ac.ProjectNodeOptions([expression], ["keep"])),
    ]).to_table(use_threads=False).column(0)  # one thread: rows stay in order
    return pc.fill_null(result, False).combine_chunks()


def _decode(column: pa.DictionaryArray | pa.ChunkedArray,
            plain: pa.DataType) -> pa.Array | pa.ChunkedArray:
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([_decode(c, plain) for c in column.chunks], plain)
    decoded = column.dictionary_decode()
    return decoded if decoded.type == plain else decoded.cast(plain)
