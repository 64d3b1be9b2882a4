"""Statistics over finished runs: tables, summaries and paired comparisons. No torch."""
