"""Key-encryption keys for tests: fresh random keys in the ``ENCRYPTION_KEYS_FILE`` format."""

from pathlib import Path

from infrastructure.crypto.keyring import Keyring, append_new_key, new_key_line, parse_keyring


def key_lines(count: int = 1) -> list[str]:
    """``count`` new lines of a keys file."""
    return [new_key_line() for _ in range(count)]


def fresh_keyring(count: int = 1) -> Keyring:
    """``count`` new keys, the last one active."""
    return parse_keyring("".join(key_lines(count)))


def write_keys_file(path: Path, count: int = 1) -> Path:
    for _ in range(count):
        append_new_key(path)
    return path
