"""Adapters that implement the application ports: SQL, files, Redis and in-memory."""
