"""Spark accepts and applies the generated configuration.

In process: the shared local session (``local_session`` through ``tests.spark_support``) carries
profile ``local``. In fresh ``spark-submit`` processes: a ``spark-defaults.conf`` written by the
renderer (``--properties-file``) and ``--conf`` arguments, each read back from Spark's own conf,
Hadoop's configuration and Spark's typed config entries (which parse every value).
S3A itself is not exercised: hadoop-aws is not on the classpath here, so ``s3a://`` paths cannot
be read; the keys are checked where Spark hands them to Hadoop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'wjio[spark]')")

from spark_conf.config import OPTIONS, SparkConfig
from spark_conf.session import SessionConflictError, local_session
from tests import spark_support

# Keys SparkContext reads directly instead of through a registered config entry.
_NO_ENTRY = {"spark.master", "spark.app.name"}

# Run by spark-submit: report what Spark made of its configuration as one JSON line.
CHECK_SCRIPT = r'''
import json, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
jconf = sc._jsc.sc().conf()
entries = sc._jvm.org.apache.spark.internal.config.ConfigEntry
conf = dict(sc.getConf().getAll())
hadoop = sc._jsc.hadoopConfiguration()
parsed, unregistered = {}, []
for key in conf:
    if key.startswith(("spark.hadoop.", "spark.wjio.")):
        continue
    entry = entries.findEntry(key)
    if entry is None:
        unregistered.append(key)
    else:
        parsed[key] = str(jconf.get(entry))  # the entry's own parser: raises on a bad value
report = {
    "conf": conf,
    "hadoop": {k: hadoop.get(k[len("spark.hadoop."):]) for k in conf
               if k.startswith("spark.hadoop.")},
    "parsed": parsed,
    "unregistered": unregistered,
    "master": sc.master,
    "app_name": sc.appName,
    "rows": spark.range(1000).selectExpr("id % 7 as k").groupBy("k").count().count(),
}
print("WJ-REPORT " + json.dumps(report))
spark.stop()
'''


@pytest.fixture(scope="module")
def spark():
    spark_support.require_spark()
    return spark_support.local_spark()


def test_local_session_carries_profile_local(spark):
    expected = SparkConfig.for_profile("local").with_settings(spark_support.TEST_CONF)
    for key, value in expected.to_spark_conf().items():
        assert spark.conf.get(key) == value, key
    back = SparkConfig.from_spark_conf(spark.sparkContext.getConf().getAll())
    assert back.core == expected.core and back.python == expected.python
    assert back.wjio == expected.wjio
    # The settings take effect: UTC session time, loopback driver, this interpreter as worker.
    row = spark.sql("select unix_timestamp(timestamp'2024-01-01 00:00:00') as t").first()
    assert row.t == 1704067200
    assert spark.sparkContext.master == "local[2]"
    assert spark.sparkContext.getConf().get("spark.driver.host") == "127.0.0.1"
    workers = spark.sparkContext.parallelize([0], 1).map(lambda _: sys.executable).collect()
    assert workers == [os.environ["PYSPARK_PYTHON"]]


def test_one_session_per_process_and_conflicts_are_refused(spark):
    assert local_session() is spark
    assert spark_support.local_spark() is spark
    assert local_session(**{"spark.sql.shuffle.partitions": "4"}) is spark
    with pytest.raises(SessionConflictError, match=r"spark\.sql\.shuffle\.partitions"):
        local_session(**{"spark.sql.shuffle.partitions": "7"})
    with pytest.raises(SessionConflictError, match=r"spark\.app\.name"):
        local_session(SparkConfig.for_profile("local"))


def test_spark_registers_every_typed_key(spark):
    entries = spark.sparkContext._jvm.org.apache.spark.internal.config.ConfigEntry
    missing = [o.key for o in OPTIONS
               if not o.key.startswith(("spark.wjio.", "spark.hadoop."))
               and o.key not in _NO_ENTRY and entries.findEntry(o.key) is None]
    assert missing == []


def _submit_configs(rig) -> tuple[SparkConfig, SparkConfig]:
    """Two deployments, small enough for local[1]: MinIO-style with fallback storage on the
    rig's bucket, and AWS-style with the aws profile's allocation and decommission settings."""
    small = {"spark.master": "local[1]", "spark.driver.memory": "512m",
             "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
             "spark.sql.shuffle.partitions": "2"}
    minio = SparkConfig.for_profile(
        "minio", endpoint=rig.endpoint_url, checkpoint_root="s3://wjio-test/checkpoints/"
    ).with_settings({
        **small,
        "spark.app.name": "wj-conf-defaults",
        "spark.decommission.enabled": "true",
        "spark.storage.decommission.enabled": "true",
        "spark.storage.decommission.shuffleBlocks.enabled": "true",
        "spark.storage.decommission.fallbackStorage.path": "s3a://wjio-test/fallback/",
        "spark.dynamicAllocation.enabled": "true",
        "spark.dynamicAllocation.shuffleTracking.enabled": "true",
        "spark.executor.pyspark.memory": "256m",
        "spark.hadoop.fs.s3a.multipart.size": "32m",
        "spark.wjio.prefetch.concurrency": "48",
        "spark.wjio.memoryBudget": "96m",
        "spark.wjio.fallback": "error",
    })
    aws = SparkConfig.for_profile("aws", region="eu-west-1",
                                  checkpoint_root="s3://wj-bucket/ckpt/").with_settings({
        **small,
        "spark.app.name": "wj-conf-submit",
        "spark.network.timeout": "300s",
        "spark.dynamicAllocation.maxExecutors": "10",
        "spark.wjio.native.enabled": "false",
    })
    return minio, aws


def test_spark_submit_applies_defaults_file_and_conf_args(spark, rig, tmp_path):
    spark_submit = Path(__import__("pyspark").__file__).parent / "bin" / "spark-submit"
    script = tmp_path / "check.py"
    script.write_text(CHECK_SCRIPT)
    minio, aws = _submit_configs(rig)
    defaults = tmp_path / "spark-defaults.conf"
    defaults.write_text(minio.to_defaults())
    runs = {
        "defaults": (minio, [str(spark_submit), "--properties-file", str(defaults), str(script)]),
        "submit": (aws, [str(spark_submit), *aws.to_submit_args(), str(script)]),
    }
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    procs = {name: subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env, cwd=tmp_path)
             for name, (_, argv) in runs.items()}
    outputs = {}
    try:
        for name, proc in procs.items():
            outputs[name] = proc.communicate(timeout=240)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, (config, _) in runs.items():
        out, err = outputs[name]
        assert procs[name].returncode == 0, f"{name}: spark-submit failed:\n{err[-3000:]}"
        report = json.loads(next(line for line in out.splitlines()
                                 if line.startswith("WJ-REPORT "))[len("WJ-REPORT "):])
        expected = config.to_spark_conf()
        for key, value in expected.items():
            assert report["conf"].get(key) == value, (name, key)
            if key.startswith("spark.hadoop."):
                assert report["hadoop"][key] == value, (name, key)
        assert set(report["unregistered"]) & set(expected) <= {"spark.master", "spark.app.name"}
        assert report["master"] == expected["spark.master"]
        assert report["app_name"] == expected["spark.app.name"]
        assert report["rows"] == 7
        assert SparkConfig.from_spark_conf(report["conf"]).wjio == config.wjio
    # Spark's typed entries parsed the rendered units the way they were meant.
    parsed = json.loads(next(line for line in outputs["submit"][0].splitlines()
                             if line.startswith("WJ-REPORT "))[len("WJ-REPORT "):])["parsed"]
    assert parsed["spark.network.timeout"] == "300"  # seconds
    assert parsed["spark.dynamicAllocation.shuffleTracking.timeout"] == str(30 * 60 * 1000)
