"""Gossip encryption at the transport edge: memberlist's AES-GCM packet format and keyring.

Nomad's ``server.encrypt`` key (serf/memberlist) encrypts and authenticates
every gossip UDP packet and every TCP stream frame.  The format is
memberlist's ``encryptPayload`` version 1 (``security.go``)::

    [version byte = 1][12-byte random nonce][ciphertext + 16-byte GCM tag]

29 bytes of overhead (:data:`OVERHEAD`), which memberlist subtracts from its
UDP payload budget and so do we (``GossipConfig.encrypt_overhead_bytes``).
The primary key (the first of the keyring) encrypts; every installed key is
tried to decrypt, so a rotation (install everywhere, use everywhere, remove
the old key everywhere) never leaves two members unable to talk.

AES-GCM comes from the ``cryptography`` package: a hand-written cipher would
be a liability.  Nonces come from ``os.urandom`` -- this module is an edge,
never protocol logic.  The keyring *state* is decided by the gossip actor
(``actors.gossip.keyring``) from messages; this module only holds the keys
the transport uses and persists them in ``<data_dir>/server/serf.keyring``
(a JSON list of base64 keys, primary first, mode 0600), as Nomad does.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
from collections.abc import Sequence

# cryptography (about 6 MB resident) is imported when a keyring is made:
# an agent without gossip encryption never loads it.

__all__ = [
    "KEY_SIZES",
    "OVERHEAD",
    "DecryptError",
    "GossipCrypto",
    "Keyring",
    "KeyringError",
    "decode_key",
    "generate_key",
    "load_keyring_file",
    "save_keyring_file",
]

log = logging.getLogger("nomad.gossip.crypto")

VERSION = 1  # memberlist encryption version 1: no padding (version 0 padded with PKCS#7)
NONCE_SIZE = 12  # GCM's standard nonce
TAG_SIZE = 16  # GCM's tag
OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE  # memberlist encryptOverhead(1) = 29
KEY_SIZES = (16, 24, 32)  # AES-128/192/256 (memberlist ValidateKey); keygen makes 32
GENERATED_KEY_BYTES = 32  # nomad operator gossip keyring generate: AES-256
KEYRING_FILE_MODE = 0o600  # the keyring is a secret: owner read/write only (Nomad)
# At most one "failed to decrypt" warning per peer-independent window: a
# member with the wrong key (or an attacker) must not flood the log; every
# failure is still counted.
DECRYPT_LOG_INTERVAL_S = 10.0


class KeyringError(ValueError):
    """A key or keyring operation is invalid (bad base64, size, removing the primary...)."""


class DecryptError(ValueError):
    """A packet or frame could not be authenticated with any installed key (remote's fault)."""


def generate_key() -> str:
    """A fresh base64 AES-256 key (``nomad operator gossip keyring generate``)."""
    return base64.b64encode(os.urandom(GENERATED_KEY_BYTES)).decode()


def decode_key(text: str) -> bytes:
    """The raw key of a base64 string; :class:`KeyringError` names what is wrong."""
    if not isinstance(text, str) or not text:
        raise KeyringError("Invalid encryption key: empty")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError("Invalid encryption key: not valid base64") from None
    if len(key) not in KEY_SIZES:
        raise KeyringError(f"Invalid encryption key: must decode to 16, 24 or 32 bytes, got {len(key)}")
    return key


class Keyring:
    """An immutable set of keys, primary first, with their ciphers ready."""

    __slots__ = ("_ciphers", "keys")

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one key")
        raw = [decode_key(k) for k in keys]
        if len(set(raw)) != len(raw):
            raise KeyringError("a keyring must not hold the same key twice")
        self.keys: tuple[str, ...] = tuple(base64.b64encode(k).decode() for k in raw)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._ciphers = tuple(AESGCM(k) for k in raw)

    @property
    def primary(self) -> str:
        return self.keys[0]

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt and authenticate *plaintext* with the primary key."""
        nonce = os.urandom(NONCE_SIZE)
        return bytes((VERSION,)) + nonce + self._ciphers[0].encrypt(nonce, plaintext, None)

    def open(self, data: bytes) -> bytes:
        """The plaintext of *data*, trying every key; :class:`DecryptError` if none fits."""
        if len(data) < OVERHEAD:
            raise DecryptError(f"payload of {len(data)} bytes is shorter than the {OVERHEAD}-byte overhead")
        if data[0] != VERSION:
            raise DecryptError(f"unsupported encryption version {data[0]}")
        from cryptography.exceptions import InvalidTag

        nonce = data[1:1 + NONCE_SIZE]
        body = data[1 + NONCE_SIZE:]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, body, None)
            except InvalidTag:
                continue
        raise DecryptError("No installed keys could decrypt the message")


class GossipCrypto:
    """What the gossip transport holds: the current keyring and the failure counters.

    ``keyring`` is replaced whole (never mutated) when the gossip actor changes
    the keys, so a packet in flight is sealed or opened with one consistent set.
    """

    def __init__(self, keys: Sequence[str], *, path: str | None = None) -> None:
        self.keyring = Keyring(keys)
        self.path = path  # where the keyring persists; None: in memory only (-dev)
        self.stats = {"sealed": 0, "opened": 0, "decrypt_failed": 0}
        self._last_warning = float("-inf")
        self._suppressed = 0

    def seal(self, plaintext: bytes) -> bytes:
        self.stats["sealed"] += 1
        return self.keyring.seal(plaintext)

    def open(self, data: bytes, peer: str, what: str) -> bytes | None:
        """The plaintext, or None (counted, logged at most every few seconds) if it does not decrypt."""
        try:
            plain = self.keyring.open(data)
        except DecryptError as exc:
            self.failed(peer, what, str(exc))
            return None
        self.stats["opened"] += 1
        return plain

    def failed(self, peer: str, what: str, why: str) -> None:
        """Count a decryption failure; warn once per DECRYPT_LOG_INTERVAL_S with the number suppressed."""
        self.stats["decrypt_failed"] += 1
        now = time.monotonic()
        if now - self._last_warning < DECRYPT_LOG_INTERVAL_S:
            self._suppressed += 1
            return
        extra = f" ({self._suppressed} more failures not logged)" if self._suppressed else ""
        self._last_warning, self._suppressed = now, 0
        log.warning("dropping %s from %s: failed to decrypt: %s (is server.encrypt the same "
                    "on every server?)%s", what, peer, why, extra)

    def install(self, keys: Sequence[str]) -> None:
        """Use *keys* (primary first) from now on and persist them; the gossip actor's sink."""
        keyring = Keyring(keys)
        if self.path is not None:
            save_keyring_file(self.path, keyring.keys)
        self.keyring = keyring


def load_keyring_file(path: str) -> list[str]:
    """The keys in a ``serf.keyring`` file; :class:`KeyringError` if it is unreadable or invalid."""
    try:
        with open(path, encoding="utf-8") as fh:
            keys = json.load(fh)
    except (OSError, ValueError) as exc:
        raise KeyringError(f"Error loading keyring {path}: {exc}") from None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise KeyringError(f"Error loading keyring {path}: expected a non-empty JSON list of keys")
    try:
        Keyring(keys)
    except KeyringError as exc:
        raise KeyringError(f"Error loading keyring {path}: {exc}") from None
    return keys


def save_keyring_file(path: str, keys: Sequence[str]) -> None:
    """Write the keyring atomically (temp file, fsync, rename), mode 0600."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEYRING_FILE_MODE)
    try:
        os.fchmod(fd, KEYRING_FILE_MODE)  # an old temp file may have had wider permissions
        os.write(fd, json.dumps(list(keys)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
