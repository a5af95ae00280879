"""Scoring models: quality on test sets and speed on this machine."""
