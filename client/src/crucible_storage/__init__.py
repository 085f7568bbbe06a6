"""Typed client for the Crucible Storage Service."""
