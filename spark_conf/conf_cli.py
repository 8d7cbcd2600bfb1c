"""``wj spark-conf``: the typed configuration of a profile, rendered for Spark.

    wj spark-conf --profile minio > spark-defaults.conf
    wj spark-conf --profile aws --checkpoint-root s3://bucket/wjio/ --format submit
    wj spark-conf --profile local --set spark.wjio.fallback=error --format json
    wj spark-conf --reference > docs/configuration.md

Nothing here imports pyspark. Bad values and wrong combinations raise :class:`ConfigError`,
which the ``wj`` entry point prints as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping

from spark_conf.config import PROFILES, ConfigError, SparkConfig, reference_markdown

FORMATS = ("defaults", "submit", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spark-conf",
        help="render the Spark configuration of a profile (spark-defaults.conf, --conf, JSON)",
        description="Render one typed configuration as spark-defaults.conf text, spark-submit "
        "--conf arguments or JSON. Wrong combinations are refused with a message naming the "
        "keys; docs/configuration.md lists every key, profile and rule.",
    )
    p.add_argument("--profile", choices=PROFILES, help="starting point: minio (S3-compatible "
                   "endpoint), aws (AWS S3, spot-ready), local (one in-process local[2] session)")
    p.add_argument("--endpoint", help="S3 endpoint URL (minio default: AWS_ENDPOINT_URL_S3, "
                   "AWS_ENDPOINT_URL, else the running `wj rig`)")
    p.add_argument("--region", help="S3 signing region (minio default: us-east-1)")
    p.add_argument("--checkpoint-root", help="object-store prefix of query checkpoints, "
                   "s3://bucket/prefix/")
    p.add_argument("--fallback-storage", metavar="S3A_URI", help="decommissioning fallback "
                   "storage, s3a://bucket/prefix/ (enables decommissioning with shuffle-block "
                   "migration)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a Spark key (typed keys are checked; repeatable)")
    p.add_argument("--format", choices=FORMATS, default="defaults",
                   help="defaults: spark-defaults.conf text (default); submit: --conf "
                   "arguments, shell-quoted; json: {key: value}")
    p.add_argument("--reference", action="store_true",
                   help="print the configuration reference (docs/configuration.md) and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    if args.reference:
        out.write(reference_markdown())
        return 0
    if args.profile is None:
        raise ConfigError("--profile is required (minio, aws or local)")
    config = build(args)
    if args.format == "defaults":
        out.write(config.to_defaults())
    elif args.format == "submit":
        out.write(" ".join(shlex.quote(a) for a in config.to_submit_args()) + "\n")
    else:
        out.write(json.dumps(config.to_spark_conf(), indent=2) + "\n")
    return 0


def build(args: argparse.Namespace) -> SparkConfig:
    """The configuration the command line describes (profile, then flags, then ``--set``)."""
    settings: dict[str, str] = {}
    if args.fallback_storage:
        settings.update({
            "spark.decommission.enabled": "true",
            "spark.storage.decommission.enabled": "true",
            "spark.storage.decommission.shuffleBlocks.enabled": "true",
            "spark.storage.decommission.fallbackStorage.path": args.fallback_storage,
        })
    settings.update(parse_settings(args.set))
    return profile_config(args.profile, endpoint=args.endpoint, region=args.region,
                          checkpoint_root=args.checkpoint_root, settings=settings)


def profile_config(profile: str, *, endpoint: str | None = None, region: str | None = None,
                   checkpoint_root: str | None = None,
                   settings: Mapping[str, str] | None = None) -> SparkConfig:
    """Profile ``profile`` with ``settings`` applied; ``minio`` without an endpoint takes it
    from the environment or the running rig (shared by ``wj spark-conf`` and ``wj submit``)."""
    if endpoint is None and profile == "minio":
        endpoint = _default_endpoint()
    config = SparkConfig.for_profile(profile, endpoint=endpoint, region=region,
                                     checkpoint_root=checkpoint_root)
    return config.with_settings(settings) if settings else config


def parse_settings(items: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` arguments as ``{key: value}``."""
    settings: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        settings[key.strip()] = value
    return settings


def _default_endpoint() -> str | None:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return endpoint
    from wjio import rig

    running = rig.running()
    return running.endpoint_url if running else None
