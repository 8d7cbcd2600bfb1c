"""The typed configuration without Spark: kinds, rules, rendering, round trips, docs and the CLI.

Spark's acceptance of the rendered configuration is in test_session.py.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from spark_conf import entry
from spark_conf.config import (
    OPTIONS,
    PROFILES,
    ConfigError,
    SparkConfig,
    reference_markdown,
)
from wjio import rig as rig_mod
from wjio.options import ScanOptions

ROOT = Path(__file__).resolve().parents[2]
MINIO = "http://127.0.0.1:9000"


def profile(name: str, **kw) -> SparkConfig:
    return SparkConfig.for_profile(name, endpoint=MINIO if name == "minio" else None, **kw)


def parse_defaults(text: str) -> dict[str, str]:
    """spark-defaults.conf as Spark reads it: `key<whitespace>value`, `#` comments."""
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split(None, 1)
            out[key] = value.strip()
    return out


def parse_submit(args: list[str]) -> dict[str, str]:
    assert args[::2] == ["--conf"] * (len(args) // 2)
    return dict(a.split("=", 1) for a in args[1::2])


# -- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_three_renderings_carry_the_same_settings(name):
    config = profile(name, checkpoint_root="s3://wjio-ckpt/q")
    conf = config.to_spark_conf()
    assert parse_defaults(config.to_defaults()) == conf
    assert parse_submit(config.to_submit_args()) == conf
    assert conf["spark.wjio.checkpoint.root"] == "s3://wjio-ckpt/q/"
    # Every rendered key is a typed option, the derived SSL key, or nothing else.
    known = {o.key for o in OPTIONS} | {"spark.hadoop.fs.s3a.connection.ssl.enabled"}
    assert set(conf) <= known


@pytest.mark.parametrize("name", PROFILES)
def test_spark_conf_round_trips_to_the_same_typed_config(name):
    config = profile(name, checkpoint_root="s3://wjio-ckpt/q/").with_settings(
        {"spark.wjio.memoryBudget": "96m", "spark.network.timeout": "300s"})
    back = SparkConfig.from_spark_conf(config.to_spark_conf())
    for group in ("core", "s3a", "parquet", "allocation", "decommission", "python", "wjio"):
        assert getattr(back, group) == getattr(config, group), group


def test_profile_contents():
    minio, aws, local = (profile(p).to_spark_conf() for p in PROFILES)
    assert minio["spark.hadoop.fs.s3a.endpoint"] == MINIO
    assert minio["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert minio["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert minio["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith(
        "EnvironmentVariableCredentialsProvider")
    # aws: no shuffle service anywhere; executors holding shuffle data are tracked; spot-ready.
    assert aws["spark.shuffle.service.enabled"] == "false"
    assert aws["spark.dynamicAllocation.enabled"] == "true"
    assert aws["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert aws["spark.decommission.enabled"] == "true"
    assert aws["spark.storage.decommission.shuffleBlocks.enabled"] == "true"
    assert "spark.hadoop.fs.s3a.endpoint" not in aws
    assert local["spark.master"] == "local[2]"
    assert local["spark.driver.bindAddress"] == "127.0.0.1"
    assert local["spark.ui.enabled"] == "false"
    assert local["spark.sql.session.timeZone"] == "UTC"
    assert local["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    for conf in (minio, aws, local):
        assert conf["spark.wjio.prefetch.concurrency"] == str(ScanOptions().concurrency)
        assert conf["spark.wjio.native.enabled"] == "true"
        assert conf["spark.wjio.fallback"] == "spark"


def test_credentials_are_rendered_only_when_given():
    for name in PROFILES:
        text = profile(name).to_defaults()
        assert "access.key" not in text and "secret.key" not in text
        assert rig_mod.SECRET_KEY not in text
    static = profile("minio").with_settings({
        "spark.hadoop.fs.s3a.aws.credentials.provider": "static",
        "spark.hadoop.fs.s3a.access.key": "AKIDEXAMPLE",
        "spark.hadoop.fs.s3a.secret.key": "s3cr3t-value"})
    conf = static.to_spark_conf()
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "s3cr3t-value"
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"] == \
        "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    assert "s3cr3t-value" not in repr(static) and "AKIDEXAMPLE" not in repr(static)


# -- kinds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "given", "rendered"), [
    ("spark.wjio.memoryBudget", "1g", "1g"),
    ("spark.wjio.memoryBudget", "1536k", "1536k"),
    ("spark.wjio.memoryBudget", str(3 * 1024 * 1024 + 1), "3145729b"),
    ("spark.hadoop.fs.s3a.multipart.size", "128mb", "128M"),
    ("spark.hadoop.fs.s3a.readahead.range", "1000", "1000"),
    ("spark.driver.memory", "2048", "2g"),          # Spark: a bare number is MiB here
    ("spark.network.timeout", "300", "5min"),       # ... and seconds here
    ("spark.executor.heartbeatInterval", "1500", "1500ms"),  # ... and milliseconds here
    ("spark.dynamicAllocation.shuffleTracking.timeout", "2h", "2h"),
    ("spark.sql.parquet.mergeSchema", "TRUE", "true"),
    ("spark.sql.session.timeZone", "Europe/Berlin", "Europe/Berlin"),
    ("spark.sql.session.timeZone", "+01:00", "+01:00"),
    ("spark.hadoop.fs.s3a.endpoint", "https://s3.eu-west-1.amazonaws.com/",
     "https://s3.eu-west-1.amazonaws.com"),
    ("spark.storage.decommission.fallbackStorage.path", "s3a://fb-bucket/spark",
     "s3a://fb-bucket/spark/"),
])
def test_values_are_parsed_and_rendered_in_spark_syntax(key, given, rendered):
    settings = {key: given}
    if key.startswith("spark.storage.decommission"):
        settings["spark.storage.decommission.shuffleBlocks.enabled"] = "true"
    config = profile("aws").with_settings(settings)
    assert config.to_spark_conf()[key] == rendered


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("spark.wjio.prefetch.concurrency", "0", "integer >= 1"),
    ("spark.wjio.prefetch.concurrency", "many", "expected an integer"),
    ("spark.wjio.memoryBudget", "12x", "expected a size"),
    ("spark.wjio.memoryBudget", "1k", "at least 1m"),
    ("spark.wjio.fallback", "maybe", "expected one of spark, error"),
    ("spark.wjio.native.enabled", "yes", "expected true or false"),
    ("spark.wjio.checkpoint.root", "/tmp/ckpt", "expected s3://bucket/prefix/"),
    ("spark.wjio.checkpoint.root", "s3://ckpt-bucket/../x", "'..' is not allowed"),
    ("spark.hadoop.fs.s3a.endpoint", "127.0.0.1:9000", "http:// or https:// URL"),
    ("spark.hadoop.fs.s3a.endpoint", "http://host/bucket", "without a path"),
    ("spark.hadoop.fs.s3a.multipart.size", "1M", "at least 5m"),
    ("spark.hadoop.fs.s3a.aws.credentials.provider", "magic", "expected one of chain"),
    ("spark.network.timeout", "soon", "expected a duration"),
    ("spark.sql.session.timeZone", "Mars/Olympus", "zone id"),
])
def test_bad_values_name_the_key_and_what_was_expected(key, value, expected):
    with pytest.raises(ConfigError) as err:
        profile("minio").with_settings({key: value})
    assert key in str(err.value) and expected in str(err.value)


# -- rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "settings", "expected"), [
    ("aws", {"spark.dynamicAllocation.shuffleTracking.enabled": "false"},
     "needs spark.dynamicAllocation.shuffleTracking.enabled=true"),
    ("aws", {"spark.shuffle.service.enabled": "true"}, "has no effect with"),
    ("aws", {"spark.dynamicAllocation.minExecutors": "5",
             "spark.dynamicAllocation.maxExecutors": "2"},
     "spark.dynamicAllocation.minExecutors=5 exceeds spark.dynamicAllocation.maxExecutors=2"),
    ("aws", {"spark.storage.decommission.fallbackStorage.path": "s3://fb-bucket/x/"},
     "expected s3a://bucket/prefix/"),
    ("minio", {"spark.storage.decommission.fallbackStorage.path": "s3a://fb-bucket/x/"},
     "fallbackStorage.path needs spark.storage.decommission.shuffleBlocks.enabled=true"),
    ("aws", {"spark.decommission.enabled": "false"},
     "spark.storage.decommission.enabled needs spark.decommission.enabled=true"),
    ("aws", {"spark.storage.decommission.fallbackStorage.cleanUp": "true"},
     "cleanUp needs spark.storage.decommission.fallbackStorage.path=set"),
    ("aws", {"spark.storage.decommission.fallbackStorage.path": "s3a://shared-bkt/wj/",
             "spark.wjio.checkpoint.root": "s3://shared-bkt/wj/checkpoints/"}, "overlap"),
    ("aws", {"spark.hadoop.fs.s3a.endpoint": MINIO}, "use profile minio"),
    ("aws", {"spark.hadoop.fs.s3a.endpoint": "http://s3.eu-west-1.amazonaws.com"},
     "not an https endpoint"),
    ("minio", {"spark.hadoop.fs.s3a.path.style.access": "false"},
     "profile minio needs spark.hadoop.fs.s3a.path.style.access=true"),
    ("local", {"spark.master": "yarn"}, "profile local needs spark.master=local[N]"),
    ("minio", {"spark.hadoop.fs.s3a.access.key": "AKID"}, "only used with credentials=static"),
    ("minio", {"spark.hadoop.fs.s3a.aws.credentials.provider": "static"}, "needs both"),
    ("aws", {"spark.hadoop.fs.s3a.threads.max": "500"}, "must be greater than"),
    ("local", {"spark.executor.heartbeatInterval": "200s"}, "must be less than"),
    ("local", {"spark.wjio.native.enabled": "false", "spark.wjio.fallback": "error"},
     "spark.wjio.fallback=error needs spark.wjio.native.enabled=true"),
])
def test_wrong_combinations_are_refused_naming_the_keys(name, settings, expected):
    with pytest.raises(ConfigError) as err:
        profile(name).with_settings(settings)
    assert expected in str(err.value)


def test_right_combinations_pass():
    config = profile("aws", checkpoint_root="s3://wj-bucket/checkpoints/").with_settings({
        "spark.storage.decommission.fallbackStorage.path": "s3a://wj-bucket/fallback/",
        "spark.storage.decommission.fallbackStorage.cleanUp": "true",
        "spark.hadoop.fs.s3a.endpoint": "https://s3.eu-west-1.amazonaws.com",
        "spark.dynamicAllocation.minExecutors": "1",
        "spark.dynamicAllocation.initialExecutors": "2",
        "spark.dynamicAllocation.maxExecutors": "20",
        "spark.wjio.fallback": "error",
    })
    conf = config.to_spark_conf()
    assert conf["spark.storage.decommission.fallbackStorage.path"] == "s3a://wj-bucket/fallback/"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"


def test_other_spark_keys_pass_through_and_project_typos_do_not():
    config = profile("local").with_settings({"spark.executor.instances": "3",
                                             "spark.sql.adaptive.enabled": "false"})
    assert config.to_spark_conf()["spark.executor.instances"] == "3"
    assert parse_defaults(config.to_defaults())["spark.sql.adaptive.enabled"] == "false"
    with pytest.raises(ConfigError, match=r"did you mean spark\.wjio\.memoryBudget"):
        config.with_settings({"spark.wjio.memorybudget": "1g"})
    with pytest.raises(ConfigError, match="expected a Spark key"):
        config.with_settings({"fs.s3a.endpoint": MINIO})
    with pytest.raises(ConfigError, match="derived from the scheme"):
        config.with_settings({"spark.hadoop.fs.s3a.connection.ssl.enabled": "true"})
    with pytest.raises(ConfigError, match="has a typed option"):
        SparkConfig(extra=(("spark.master", "local[1]"),))


def test_unknown_profile():
    with pytest.raises(ConfigError, match="unknown profile 'gcp'"):
        SparkConfig.for_profile("gcp")


def test_scan_options_carry_the_project_keys():
    config = profile("local").with_settings({"spark.wjio.prefetch.concurrency": "16",
                                             "spark.wjio.memoryBudget": "64m"})
    opts = config.wjio.scan_options()
    assert (opts.concurrency, opts.memory_budget) == (16, 64 * 1024 * 1024)
    assert opts.hole_size_limit == ScanOptions().hole_size_limit


def test_committed_reference_is_the_generated_one():
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == reference_markdown(), (
        "docs/configuration.md is stale: tools/wjenv wj spark-conf --reference > "
        "docs/configuration.md")
    for option in OPTIONS:
        assert f"`{option.key}`" in committed


# -- the command ------------------------------------------------------------------------------


def test_cli_minio_defaults_to_the_environment_endpoint(capsys, monkeypatch, rig):
    monkeypatch.setenv("AWS_ENDPOINT_URL", rig.endpoint_url)
    assert entry.main(["spark-conf", "--profile", "minio", "--checkpoint-root",
                       "s3://wjio-test/ckpt/"]) == 0
    conf = parse_defaults(capsys.readouterr().out)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == rig.endpoint_url
    assert conf["spark.wjio.checkpoint.root"] == "s3://wjio-test/ckpt/"


def test_cli_minio_endpoint_from_the_running_rig(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("WJ_RIG_DIR", str(tmp_path))
    assert entry.main(["spark-conf", "--profile", "minio"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "profile minio needs spark.hadoop.fs.s3a.endpoint" in err
    started = rig_mod.up(buckets=("wjio",))
    try:
        assert entry.main(["spark-conf", "--profile", "minio", "--format", "json"]) == 0
        conf = json.loads(capsys.readouterr().out)
        assert conf["spark.hadoop.fs.s3a.endpoint"] == started.endpoint_url
    finally:
        rig_mod.down()


def test_cli_formats_and_flags(capsys):
    args = ["spark-conf", "--profile", "aws", "--fallback-storage", "s3a://fb-bucket/spark/",
            "--set", "spark.wjio.prefetch.concurrency=32", "--set", "spark.app.name=my job"]
    assert entry.main([*args, "--format", "json"]) == 0
    conf = json.loads(capsys.readouterr().out)
    assert conf["spark.storage.decommission.fallbackStorage.path"] == "s3a://fb-bucket/spark/"
    assert conf["spark.wjio.prefetch.concurrency"] == "32"
    assert entry.main([*args, "--format", "submit"]) == 0
    assert parse_submit(shlex.split(capsys.readouterr().out)) == conf
    assert entry.main(args) == 0
    assert parse_defaults(capsys.readouterr().out) == conf


@pytest.mark.parametrize(("argv", "expected"), [
    (["--profile", "aws", "--set", "spark.wjio.fallback"], "expected KEY=VALUE"),
    (["--profile", "aws", "--set", "spark.wjio.fallback=sometimes"], "spark.wjio.fallback"),
    (["--profile", "aws", "--checkpoint-root", "s3://wj-bucket/ck/", "--fallback-storage",
      "s3a://wj-bucket/ck/fb/"], "overlap"),
    (["--profile", "aws", "--checkpoint-root", "s3://b/ck/"],
     "'b' in 's3://b/ck/' is not an S3 bucket name"),
    ([], "--profile is required"),
])
def test_cli_errors_are_one_line_and_exit_2(capsys, argv, expected):
    assert entry.main(["spark-conf", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line = captured.err.strip()
    assert "\n" not in line and line.startswith("wj spark-conf: error: ") and expected in line


def test_cli_reference_prints_the_docs(capsys):
    assert entry.main(["spark-conf", "--reference"]) == 0
    assert capsys.readouterr().out == reference_markdown()
