"""Object-store exchange and per-task commits for resumable queries (not yet implemented)."""
