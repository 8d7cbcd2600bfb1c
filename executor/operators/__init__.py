"""Physical operators, one per module; the contract is in :mod:`executor.operators.base`."""
