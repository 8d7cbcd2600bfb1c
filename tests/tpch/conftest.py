"""TPC-H session fixtures: the SF 0.01 data set and the shared local Spark session with the
tables registered as temp views. Other test packages import these fixtures from here (their
conftest does ``from tests.tpch.conftest import spark, tpch_dir``); the module-level cache
makes every importer see the same data directory."""

from __future__ import annotations

import pytest

from spark_conf import tpch
from tests import spark_support

SCALE = 0.01

_generated: dict[float, object] = {}


@pytest.fixture(scope="session")
def tpch_dir(tmp_path_factory):
    if SCALE not in _generated:
        out = tmp_path_factory.mktemp("tpch-sf0.01")
        tpch.generate(out, SCALE, threads=1, log=lambda *_: None)
        _generated[SCALE] = out
    return _generated[SCALE]


@pytest.fixture(scope="session")
def spark(tpch_dir):
    spark_support.require_spark()
    session = spark_support.local_spark()
    spark_support.register_tpch(session, tpch_dir)
    return session
