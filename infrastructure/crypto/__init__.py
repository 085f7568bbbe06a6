"""Encryption at rest: key-encryption keys, sealed blobs (ADR 0031)."""
