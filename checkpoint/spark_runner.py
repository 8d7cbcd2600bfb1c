"""Stage tasks as Spark tasks: the distributed runner (``runner="spark"``, ``--runner spark``).

Each stage's pending tasks are one Spark job, ``parallelize(tasks, len(tasks))``: one Spark
task per stage task, each running it with :meth:`~executor.stages.PortableStage.run_task`.
The job's closure is the :class:`~executor.stages.PortableStage` (the plan as JSON and the
stage's object-store exchanges with the commit records already read): tasks read their
inputs from and write their output to the store themselves, and only ``(task, outcome)``
comes back to the driver. No Spark shuffle, no data through the driver; the result stage
writes to the store too and the driver reads it from there.

Retries: Spark retries a failed task (``spark.task.maxFailures``; speculative copies too),
each try a new attempt whose commit is the usual ``If-None-Match`` record, so exactly one
attempt of each task commits whichever executor runs it. A query error (an
:class:`~executor.errors.ExecutorError`, such as a lost input the driver recovers, or a
division by zero) is not retried: it comes back as the task's outcome. A task that still
fails after Spark's retries fails the stage with :class:`~executor.errors.ExecutionError`;
what committed stays committed, so ``resume`` (with either runner) continues from there.

Executors need what the driver's local pool needs: this package importable by their Python
(``PYSPARK_PYTHON``) and store credentials from their own AWS chain; pyspark is imported only
when a stage runs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any

from executor.errors import ExecutionError, ExecutorError
from executor.stages import PortableStage, StageRunner, TaskOutcome


class SparkRunner(StageRunner):
    """Runs each stage's tasks as one job of ``spark`` (default: the active session, else
    :func:`executor.frontend.session.planning_session`'s local one)."""

    name = "spark"

    def __init__(self, spark: Any = None) -> None:
        self._spark = spark

    @property
    def spark(self) -> Any:
        if self._spark is None:
            from executor.frontend.session import planning_session

            self._spark = planning_session()   # the active session, else a local one
        return self._spark

    def run_stage(self, stage: PortableStage, attempts: dict[int, int]
                  ) -> dict[int, TaskOutcome]:
        sc = self._context()
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        tasks = sorted(attempts)
        job = functools.partial(_run_tasks, stage, attempts)
        sc.setJobDescription(f"wj stage {stage.stage} ({stage.output.name}): "
                             f"{len(tasks)} of {stage.num_tasks} task(s)")
        try:
            rows = sc.parallelize(tasks, len(tasks)).mapPartitions(job).collect()
        except (Py4JError, PySparkException) as err:
            raise ExecutionError(f"stage {stage.stage}: its Spark job of {len(tasks)} task(s) "
                                 f"failed: {_reason(err)}") from err
        finally:
            sc.setLocalProperty("spark.job.description", None)
        outcomes = {task: _restore(outcome) for task, outcome in rows}
        missing = sorted(set(tasks) - set(outcomes))
        if missing:
            raise ExecutionError(f"stage {stage.stage}: its Spark job returned no outcome for "
                                 f"tasks {missing[:10]}")
        return outcomes

    def _context(self) -> Any:
        spark = self.spark
        try:
            return spark.sparkContext
        except Exception as err:  # Spark Connect sessions have no SparkContext
            raise ExecutionError(f"runner 'spark' needs a Spark session with a SparkContext "
                                 f"(it runs RDD jobs); this {type(spark).__name__} has none: "
                                 f"{err}") from None


def _run_tasks(stage: PortableStage, attempts: dict[int, int], tasks: Iterable[int]
               ) -> Iterator[tuple[int, Any]]:
    """The body of one Spark task (one partition holds one stage task)."""
    for task in tasks:
        try:
            outcome: Any = stage.run_task(task, attempts[task])
        except ExecutorError as err:
            # Carried by class, args and attributes: some executor errors build their
            # message in __init__ and would not survive plain pickling unchanged.
            outcome = (type(err), err.args, dict(vars(err)))
        yield task, outcome


def _restore(outcome: Any) -> TaskOutcome:
    if isinstance(outcome, bool):
        return outcome
    cls, args, state = outcome
    err = cls.__new__(cls)
    err.args = args
    vars(err).update(state)
    return err


def _reason(err: BaseException) -> str:
    """The worker's Python error out of a Spark job failure: the last line before the JVM's
    stack trace (else the failure's type)."""
    lines = [line.strip() for line in str(err).splitlines()]
    jvm = next((i for i, line in enumerate(lines) if line.startswith("at org.apache.spark")),
               len(lines))
    shown = [line for line in lines[:jvm] if line and not line.startswith("at ")]
    return shown[-1] if shown else type(err).__name__
