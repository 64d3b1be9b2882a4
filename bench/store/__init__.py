"""Run folders on disk: atomic files, locks and claims, result.json in and out, stale folders, run identity."""
