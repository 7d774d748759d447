"""Helpers shared by the project's own tests (conftest.py keeps only fixtures and hooks)."""
