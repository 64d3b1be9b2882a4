"""How to cite bench: the BibTeX entry the report prints, from the same fields as CITATION.cff (a test keeps
the two in step), plus the version and commit the runs were made with."""

from __future__ import annotations

TITLE = "bench-pretrain: a benchmark harness for pretraining strategies in image generative models"
AUTHORS = "The bench-pretrain contributors"


def bibtex(version: str, commit: str | None, year: str | None) -> str:
    """A @software entry naming the version and commit, so a citation points at the code that made the numbers."""
    fields = {
        "title": "{" + TITLE + "}",
        "author": "{{" + AUTHORS + "}}",
        "version": "{" + version + "}",
        "year": "{" + year + "}" if year else None,
        "note": "{commit " + commit + "}" if commit else None,
    }
    body = ",\n".join(f"  {k} = {v}" for k, v in fields.items() if v)
    return "@software{bench_pretrain,\n" + body + "\n}"
