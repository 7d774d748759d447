"""Diagnosis: which known mistake a failing port made (the algebra, the catalogue, the search)."""
