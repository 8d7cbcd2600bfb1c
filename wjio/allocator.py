"""Process-wide memory settings, applied when :mod:`wjio` is imported (before polars is).

polars allocates with its own jemalloc, which polars sets to hand freed pages back to the
kernel within a second (``dirty_decay_ms:500``, against memory growth reported in
pola-rs/polars#18088). A query engine frees and re-allocates the same few hundred megabytes on
every query, so each query then takes its memory again page by page: measured on TPC-H Q1 at scale
factor 1 (2 cores), ~180,000 page faults and 0.5-0.9 s of system time per run after a pause of
3 s, against ~10,000 faults and ~0.1 s when freed pages are kept. So freed pages are kept
mapped for reuse (as a JVM keeps its heap): the process holds on to the most memory polars
has used at once, and gives it back when it exits.

jemalloc reads its settings once, when polars is imported, from ``_RJEM_MALLOC_CONF``: polars
puts its own settings first and appends what the variable held, so the later ones win. Importing
polars before :mod:`wjio` leaves polars' defaults; a ``_RJEM_MALLOC_CONF`` already set is kept.
"""

from __future__ import annotations

import os
import sys

POLARS_MALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
"""jemalloc settings for polars (its symbols are prefixed ``_rjem_``, hence the variable's
name): freed pages stay mapped, neither returned nor marked reclaimable."""


def keep_polars_pages() -> bool:
    """Set polars' jemalloc to keep freed pages, unless polars is already loaded or the
    setting is already given. Returns whether polars will use :data:`POLARS_MALLOC_CONF`."""
    if "polars" not in sys.modules:
        os.environ.setdefault("_RJEM_MALLOC_CONF", POLARS_MALLOC_CONF)
    return os.environ.get("_RJEM_MALLOC_CONF", "").endswith(POLARS_MALLOC_CONF)
