"""Judging: finding implementations, running one case, comparing, the ledger and the session."""
