"""Strategies: scores to fills, one cycle at a time, on any trading engine (replay, paper, live)."""
