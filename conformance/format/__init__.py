"""The fixture format: reading, validating, writing and exporting fixtures and model files (SPEC 4-6)."""
