"""The gossip keyring: install / use / remove / list across the pool (serf ``keymanager.go``).

Serf answers a keyring operation with an internal query to every member;
each member changes its own keyring and answers, and the asker sums the
answers into a :class:`KeyResponse` (how many members answered, which
failed and why, how many hold each key).  Rotation without downtime is
three such operations: install the new key everywhere (every member then
*decrypts* with both), use it everywhere (every member *encrypts* with it),
remove the old key everywhere.

Here the query is a :class:`KeyOp` sent to each alive member's gossip actor
(the transport seals it with the current primary key, as memberlist seals
serf's queries) and a :class:`KeyOpResult` back.  The pure parts live in
this module -- the keyring rules (:func:`apply_op`, memberlist
``keyring.go``) and the answer tally (:class:`KeyQuery`); the
:class:`~actors.gossip.member.GossipMember` hosts them and hands each new
key list to its ``keyring_sink`` (the transport's
:class:`~runtime.gossip_crypto.GossipCrypto`, which also persists
``serf.keyring``).  Tags 213-214 (gossip's 200-249; ONLY APPEND).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from runtime.wire import Message, message

msg = dataclass(frozen=True, slots=True, kw_only=True)

OPS = ("list", "install", "use", "remove")
KEY_SIZES = (16, 24, 32)  # AES-128/192/256 (memberlist ValidateKey)
MAX_KEY_TEXT = 64  # base64 of 32 bytes is 44 characters
MAX_KEYS = 16  # a rotation needs 2; more is an operator mistake or an attack
MAX_ERROR_LEN = 256
NOT_ENABLED = "Gossip encryption is not enabled (server.encrypt): no keyring to modify"


def normalize_key(text: str) -> str:
    """The canonical base64 of a key; ValueError (memberlist's words) if it is not a valid key."""
    if not isinstance(text, str) or not text:
        raise ValueError("Invalid encryption key: empty")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Invalid encryption key: not valid base64") from None
    if len(raw) not in KEY_SIZES:
        raise ValueError(f"Invalid encryption key: must decode to 16, 24 or 32 bytes, got {len(raw)}")
    return base64.b64encode(raw).decode()


def apply_op(keys: tuple[str, ...], op: str, key: str) -> tuple[tuple[str, ...], str]:
    """(new keys, error) after *op* on *keys* (primary first), by memberlist's keyring rules.

    install adds a non-primary key (already there: no change); use makes an
    installed key primary; remove drops a key, never the primary.  An empty
    keyring means encryption is off: every operation fails.
    """
    if not keys:
        return keys, NOT_ENABLED
    if op == "list":
        return keys, ""
    try:
        key = normalize_key(key)
    except ValueError as exc:
        return keys, str(exc)
    if op == "install":
        if key in keys:
            return keys, ""
        if len(keys) >= MAX_KEYS:
            return keys, f"Keyring is full: at most {MAX_KEYS} keys"
        return (*keys, key), ""
    if op == "use":
        if key not in keys:
            return keys, "Requested key is not in the keyring"
        return (key, *(k for k in keys if k != key)), ""
    if op == "remove":
        if key == keys[0]:
            return keys, "Removing the primary key is not allowed"
        return tuple(k for k in keys if k != key), ""
    return keys, f"unknown keyring operation {op!r}"


def _check_text(value: str, limit: int, what: str) -> None:
    if len(value) > limit:
        raise ValueError(f"{what} is over {limit} characters")


@message(213)
@msg
class KeyOp(Message):
    """Change (or list) the receiver's keyring; answer :class:`KeyOpResult` to ``reply_addr``."""

    req: int
    op: str
    key: str = ""
    reply_addr: str

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"KeyOp.op {self.op!r} is not one of {OPS}")
        if not 0 <= self.req < 2**62:
            raise ValueError("KeyOp.req out of range")
        _check_text(self.key, MAX_KEY_TEXT, "KeyOp.key")
        if not self.reply_addr or len(self.reply_addr) > 64:
            raise ValueError("KeyOp.reply_addr must be 1..64 characters")


@message(214)
@msg
class KeyOpResult(Message):
    """One member's answer: its error ("" for success) and its keys after the operation."""

    req: int
    name: str
    error: str = ""
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.req < 2**62:
            raise ValueError("KeyOpResult.req out of range")
        if not self.name or len(self.name) > 128:
            raise ValueError("KeyOpResult.name must be 1..128 characters")
        _check_text(self.error, MAX_ERROR_LEN, "KeyOpResult.error")
        if len(self.keys) > MAX_KEYS:
            raise ValueError(f"KeyOpResult.keys holds more than {MAX_KEYS} keys")
        for k in self.keys:
            _check_text(k, MAX_KEY_TEXT, "KeyOpResult key")


KEYRING_WIRE_TYPES = (KeyOp, KeyOpResult)


@dataclass(frozen=True, slots=True)
class KeyringRequest:
    """Local request (never on the wire): run *op* on every alive member; ``reply`` gets the tally."""

    op: str
    key: str = ""
    reply: Any = None


@dataclass(slots=True)
class KeyQuery:
    """The answers to one keyring operation so far (serf ``KeyResponse``)."""

    op: str
    members: tuple[str, ...]  # names of the members asked (alive when asked), sorted
    reply: Any = None
    answers: dict[str, KeyOpResult] = field(default_factory=dict)

    def record(self, result: KeyOpResult) -> bool:
        """Take one answer (from a member asked, once); True when every member has answered."""
        if result.name in self.members and result.name not in self.answers:
            self.answers[result.name] = result
        return len(self.answers) == len(self.members)

    def response(self) -> tuple[dict[str, Any], str]:
        """(Nomad's KeyringResponse with serf's counts, error) -- error as serf's KeyManager words it."""
        keys: dict[str, int] = {}
        primary: dict[str, int] = {}
        messages: dict[str, str] = {}
        for name in sorted(self.answers):
            got = self.answers[name]
            if got.error:
                messages[name] = got.error
                continue
            for k in got.keys:
                keys[k] = keys.get(k, 0) + 1
            if got.keys:
                primary[got.keys[0]] = primary.get(got.keys[0], 0) + 1
        n, resp, errs = len(self.members), len(self.answers), len(messages)
        for name in self.members:
            if name not in self.answers:
                messages[name] = "no response before the keyring operation timed out"
        out = {"Messages": messages, "Keys": keys, "PrimaryKeys": primary, "NumNodes": n,
               "NumResp": resp, "NumErr": errs}
        if errs:
            return out, f"{errs}/{n} nodes reported failure"
        if resp != n:
            return out, f"{resp}/{n} nodes reported success"
        return out, ""
