"""Expression evaluation: :func:`lower` IR expressions to Arrow compute kernels."""

from executor.eval import arithmetic, casts, strings  # noqa: F401  (register their rules)
from executor.eval.core import Kernel, as_array, evaluate, lower

__all__ = ["Kernel", "as_array", "evaluate", "lower"]
