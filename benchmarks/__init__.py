"""Benchmarks run as modules: ``.venv/bin/python -m benchmarks.<name>``."""
