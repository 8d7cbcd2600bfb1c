"""Native, vectorized execution of Spark's optimized plans on Arrow (not yet implemented)."""
