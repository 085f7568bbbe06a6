"""Pure core of the storage service: entities, value objects and policies.

Imports only the standard library and msgspec; performs no I/O and reads no clock.
"""
