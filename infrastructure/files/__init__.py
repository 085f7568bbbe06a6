"""Blobs as files under one root directory."""
