"""Subcommands of the Spark-facing layer: ``wj demo``, ``wj spark-conf``, ``wj submit``."""

from __future__ import annotations


def register(sub) -> None:
    from spark_conf import conf_cli, demo, submit_cli

    demo.register(sub)
    conf_cli.register(sub)
    submit_cli.register(sub)
