"""HTML report rendering (jinja2 + matplotlib), shipped with its templates as package data."""

from bench.report.render import render_report

__all__ = ["render_report"]
