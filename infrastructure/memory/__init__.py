"""In-process adapters: ``STORAGE_BACKEND=memory`` and the fast tests.

They behave like the SQL adapters (same contract tests) but keep nothing
across a restart.
"""
