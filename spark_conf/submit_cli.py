"""``wj submit``: run an unmodified PySpark script with native execution on.

    wj submit job.py --day 2024-01-01
    wj submit --profile local --set spark.wjio.fallback=error job.py

The script runs in this interpreter as ``__main__`` (``sys.argv`` is the script and its
arguments, its directory first on ``sys.path``, as ``python job.py`` would have it). Every
session it gets from ``SparkSession.builder.getOrCreate()`` is accelerated
(:func:`spark_conf.accelerate.enable`); with ``--profile`` the profile's keys fill in what the
script's builder does not set. When the script ends (normally, by ``sys.exit`` or by an
exception) each session's report goes to stderr. The exit status is the script's.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from spark_conf.accelerate import enable_on_create
from spark_conf.config import PROFILES, ConfigError, SparkConfig


class SubmitError(ConfigError):
    """``wj submit`` was given something it cannot run (a missing script, a bad setting)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit",
        help="run a PySpark script with native execution on; report each action at exit",
        description="Run an unmodified PySpark script with its DataFrame actions (collect, "
        "toArrow, toPandas, count, write.parquet) running natively where the plan allows and "
        "on Spark otherwise; print each session's report to stderr at exit.",
    )
    p.add_argument("--profile", choices=PROFILES, help="fill in the script's session settings "
                   "from this profile (see wj spark-conf); the script's own settings win")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --profile: set a Spark key (typed keys are checked; repeatable)")
    p.add_argument("script", help="the PySpark script (.py)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, err=None) -> int:
    err = err or sys.stderr
    script = Path(args.script)
    if not script.is_file():
        raise SubmitError(f"{script}: no such script")
    config = _config(args)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [str(script), *args.args]
    sys.path.insert(0, str(script.resolve().parent))
    code: int = 0
    with enable_on_create(config) as reports:
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit_:
            code = _exit_code(exit_.code, err)
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
            _print_reports(reports, err)
    return code


def _config(args: argparse.Namespace) -> SparkConfig | None:
    if args.profile is None:
        if args.set:
            raise SubmitError("--set needs --profile (the script's builder sets everything "
                              "else)")
        return None
    from spark_conf.conf_cli import parse_settings, profile_config

    return profile_config(args.profile, settings=parse_settings(args.set))


def _exit_code(code, err) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=err)
    return 1


def _print_reports(reports, err) -> None:
    if not reports:
        print("wj submit: the script created no SparkSession; nothing was accelerated",
              file=err)
    for rep in reports:
        print(rep, file=err)
    err.flush()
