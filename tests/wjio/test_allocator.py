"""polars' allocator keeps freed pages when wjio is imported first (wjio.allocator)."""

from __future__ import annotations

import os
import subprocess
import sys

from wjio.allocator import POLARS_MALLOC_CONF


def _fresh(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"} | env
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.strip()


def test_wjio_first_sets_the_setting_polars_applies_last():
    conf = _fresh("import wjio, os, polars; print(os.environ['_RJEM_MALLOC_CONF'])")
    # polars puts its defaults first and appends ours: jemalloc lets the last one win.
    assert conf.startswith("dirty_decay_ms:500")
    assert conf.endswith("," + POLARS_MALLOC_CONF)


def test_polars_first_or_a_users_setting_is_left_alone():
    said = _fresh("import polars, wjio, wjio.allocator as a, os; "
                  "print(a.keep_polars_pages(), os.environ['_RJEM_MALLOC_CONF'])")
    assert said == "False dirty_decay_ms:500,muzzy_decay_ms:1000"
    said = _fresh("import wjio, wjio.allocator as a, os; "
                  "print(a.keep_polars_pages(), os.environ['_RJEM_MALLOC_CONF'])",
                  _RJEM_MALLOC_CONF="dirty_decay_ms:2000")
    assert said == "False dirty_decay_ms:2000"
