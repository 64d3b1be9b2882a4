"""Leaves every layer may use: the one-line error, the name registry, the process environment, seeds, the version."""
