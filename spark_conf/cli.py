"""Subcommands of the Spark-facing layer: ``wj demo`` (later also spark-conf, submit)."""

from __future__ import annotations


def register(sub) -> None:
    from spark_conf import demo

    demo.register(sub)
