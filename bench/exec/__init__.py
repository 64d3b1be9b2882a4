"""Executors: who runs which run (in this process, in worker processes, on Ray)."""
