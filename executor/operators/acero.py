"""Acero's plan-building classes, imported without pandas.

``pyarrow.acero`` re-exports these from ``pyarrow._acero`` but first imports
``pyarrow.dataset``, which imports pandas when it is installed: about 0.3 s to import and
0.2 s to tear down in every process, half the fixed cost of a ``wj resume`` that has little
left to run. Local tables still import ``pyarrow.dataset`` when they are read
(``executor.sources``)."""

from pyarrow._acero import (
    AggregateNodeOptions,
    Declaration,
    FilterNodeOptions,
    HashJoinNodeOptions,
    TableSourceNodeOptions,
)

__all__ = ["AggregateNodeOptions", "Declaration", "FilterNodeOptions", "HashJoinNodeOptions",
           "TableSourceNodeOptions"]
