"""The wire codec: immutable messages, append-only tags, msgpack frames.

Every message that crosses a node boundary is a frozen, slotted, keyword-only
dataclass registered with :func:`message` under a tag that never changes
meaning (ONLY APPEND new tags; never reuse a retired one).  A message is
encoded as ``[tag, field1, field2, ...]`` in declaration order; decoding is
driven by the field annotations, so a decoded message is validated as it is
built: unknown tags, wrong field types, wrong arity, truncated and oversized
frames all raise a :class:`WireError` subclass.  Receivers catch
``WireError`` at the edge, count it and drop the input: bad input from a peer
is the peer's fault and must never kill an actor.

Supported field types: ``int``, ``float``, ``str``, ``bytes``, ``bool``,
``None``, ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``frozenset[X]``,
another registered message class, and :class:`Message` (any registered
message).  Frozensets are encoded sorted so the bytes never depend on
``PYTHONHASHSEED``.
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack

__all__ = [
    "BadField",
    "FrameDecoder",
    "FrameTooLarge",
    "Message",
    "TruncatedFrame",
    "UnknownTag",
    "WireError",
    "builder",
    "decode",
    "decode_fields",
    "decode_frame",
    "encode",
    "encode_fields",
    "encode_frame",
    "fields_decoder",
    "fields_encoder",
    "head_encoder",
    "message",
    "registered",
]

# A frame is a 4-byte big-endian length followed by that many payload bytes.
FRAME_HEADER = struct.Struct(">I")
# Default frame limit: large enough for a Raft snapshot chunk (1 MiB) plus a
# batch of entries, small enough that a hostile length prefix cannot make us
# allocate much.  Every transport passes its own configured limit.
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024


class WireError(ValueError):
    """Input from the network could not be decoded: the sender's fault."""


class FrameTooLarge(WireError):
    """A frame (or its length prefix) exceeds the configured limit."""


class TruncatedFrame(WireError):
    """The bytes end before the frame or the msgpack value does."""


class UnknownTag(WireError):
    """The message tag is not registered here."""


class BadField(WireError):
    """A field has the wrong type, or the field count is wrong."""


class Message:
    """Marker base of every registered wire message (usable as a field type)."""

    __slots__ = ()
    TAG: typing.ClassVar[int]


M = TypeVar("M", bound=type)

_BY_TAG: dict[int, type] = {}
_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def message(tag: int) -> Callable[[M], M]:
    """Register a frozen slotted dataclass as a wire message under *tag*."""

    def register(cls: M) -> M:
        if not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):  # type: ignore[attr-defined]
            raise TypeError(f"{cls.__name__} must be a frozen dataclass")
        if not hasattr(cls, "__slots__"):
            raise TypeError(f"{cls.__name__} must use slots=True")
        if tag in _BY_TAG and _BY_TAG[tag].__qualname__ != cls.__qualname__:
            raise TypeError(f"wire tag {tag} already used by {_BY_TAG[tag].__name__}")
        hints = typing.get_type_hints(cls)
        _FIELDS[cls] = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
        cls.TAG = tag  # type: ignore[attr-defined]
        _BY_TAG[tag] = cls
        _fast_init(cls)
        return cls

    return register


def _slot_setters(cls: type) -> list[Callable[[Any, Any], None]] | None:
    """Each field's slot ``__set__``, in field order (None if a field is not a plain slot)."""
    setters = []
    for f in dataclasses.fields(cls):
        descr = next((k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__), None)
        if type(descr) is not types.MemberDescriptorType:
            return None
        setters.append(descr.__set__)
    return setters


def _fast_init(cls: type) -> None:
    """Replace the dataclass ``__init__`` by one that sets the slots directly.

    A frozen dataclass's ``__init__`` calls ``object.__setattr__(self, name,
    value)`` per field; the slot's own setter does the same store for less.
    Same signature, defaults and ``__post_init__`` call; classes with
    anything else (a field default factory, an init=False or positional field,
    an ``__init__`` of their own) keep theirs.
    """
    init = cls.__dict__.get("__init__")
    setters = _slot_setters(cls)
    if init is None or getattr(init, "__code__", None) is None or init.__code__.co_filename != "<string>" \
            or not setters:
        return
    ns: dict[str, Any] = {}
    params, body = [], []
    for i, f in enumerate(dataclasses.fields(cls)):
        if not f.init or not f.kw_only or f.default_factory is not dataclasses.MISSING \
                or f.name.startswith("__") or f.name == "self":
            return
        ns[f"__set{i}"] = setters[i]
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            ns[f"__dflt{i}"] = f.default
            params.append(f"{f.name}=__dflt{i}")
        body.append(f"    __set{i}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    src = f"def __init__(self, *, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(src, ns)  # field names are identifiers
    fn = ns["__init__"]
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    fn.__module__ = cls.__module__
    cls.__init__ = fn  # type: ignore[misc]
    _FAST_INIT[cls] = setters
    twin = _twin(cls)
    if twin is not None:
        _TWINS[cls] = twin
        # builder(cls): the same signature, building as the decoders do.
        body = ["    __o = __new(__twin)"]
        body += [f"    __o.{f.name} = {f.name}" for f in dataclasses.fields(cls)]
        body.append("    __o.__class__ = __cls")
        if hasattr(cls, "__post_init__"):
            body.append("    __o.__post_init__()")
        body.append("    return __o")
        ns.update({"__new": object.__new__, "__twin": twin, "__cls": cls})
        exec(f"def build(*, {', '.join(params)}):\n" + "\n".join(body) + "\n", ns)  # field names are identifiers
        fn = ns["build"]
        fn.__qualname__ = fn.__name__ = cls.__qualname__
        fn.__module__ = cls.__module__
        _BUILDERS[cls] = fn


def builder(cls: type) -> Callable[..., Any]:
    """A function that builds a *cls* message from the same arguments as ``cls(...)``, faster.

    For the hottest call sites: a class call goes through ``type.__call__``,
    ``__new__`` and ``__init__``, and a frozen class's ``__init__`` stores each
    field with a call; this stores them as the decoders do (see _twin).  The
    class itself when it cannot.
    """
    return _BUILDERS.get(cls, cls)


def _twin(cls: type) -> type | None:
    """A class with *cls*'s slots and none of its frozen ``__setattr__``, or None.

    A decoder builds an instance of it with plain attribute stores (the
    interpreter's fastest store, where a slot setter is a call each) and then
    makes it a *cls* by assigning ``__class__``, which the interpreter allows
    exactly when the two lay their instances out alike.  None when that is
    refused for *cls*.
    """
    twin = type(cls.__name__, cls.__bases__, {"__slots__": cls.__dict__.get("__slots__", ())})
    try:
        probe = object.__new__(twin)
        probe.__class__ = cls
    except TypeError:
        return None
    return twin


# Classes given _fast_init, with their slot setters: their decoders build
# instances the same way, without the keyword call.
_FAST_INIT: dict[type, list[Callable[[Any, Any], None]]] = {}
_TWINS: dict[type, type] = {}  # see _twin
_BUILDERS: dict[type, Callable[..., Any]] = {}  # see builder


def registered() -> dict[int, type]:
    """Every registered message class by tag (a copy)."""
    return dict(sorted(_BY_TAG.items()))


def fields_of(cls: type) -> tuple[tuple[str, Any], ...]:
    return _FIELDS[cls]


# ---------------------------------------------------------------- encoding
#
# Each field type is compiled once, at first use, into a pair of closures
# (to-wire, from-wire); this keeps the codec fast enough for the simulator,
# where every message crosses it twice.

_Enc = Callable[[Any], Any]
_Dec = Callable[[Any, str], Any]
_COMPILED: dict[Any, tuple[_Enc, _Dec]] = {}


def _sort_key(v: Any) -> tuple[str, Any]:
    # Frozenset members share one type in practice; the type name keeps mixed
    # sets orderable and the order independent of hashing.
    return (type(v).__name__, v if not isinstance(v, list) else repr(v))


def _ident(v: Any) -> Any:
    return v


def _scalar(tp: type) -> tuple[_Enc, _Dec]:
    name = tp.__name__

    def dec(v: Any, where: str) -> Any:
        if type(v) is not tp:
            if tp is float and type(v) is int:
                return float(v)
            raise BadField(f"{where}: expected {name}, got {type(v).__name__}")
        return v

    return _ident, dec


def _compile(tp: Any) -> tuple[_Enc, _Dec]:
    got = _COMPILED.get(tp)
    if got is None:
        got = _build(tp)
        _COMPILED[tp] = got
    return got


def _build(tp: Any) -> tuple[_Enc, _Dec]:  # noqa: C901 - one branch per wire type
    origin = typing.get_origin(tp)
    if tp in (int, float, str, bytes, bool):
        return _scalar(tp)
    if tp is type(None) or tp is None:
        def dec_none(v: Any, where: str) -> Any:
            if v is not None:
                raise BadField(f"{where}: expected nil")
            return None
        return _ident, dec_none
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(tp))
        variants = [_compile(a) for a in args]

        def enc_union(v: Any) -> Any:
            return None if v is None else _encode_any(v)

        def dec_union(v: Any, where: str) -> Any:
            if v is None and nullable:
                return None
            errors = []
            for _, d in variants:
                try:
                    return d(v, where)
                except WireError as exc:
                    errors.append(str(exc))
            raise BadField(f"{where}: no variant matched ({'; '.join(errors)})")
        return enc_union, dec_union
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return _seq(args[0])
        return _fixed_tuple(args)
    if origin is frozenset:
        ienc, idec = _compile(typing.get_args(tp)[0])

        def enc_set(v: Any) -> Any:
            return sorted((ienc(x) for x in v), key=_sort_key)

        def dec_set(v: Any, where: str) -> Any:
            if type(v) is not list:
                raise BadField(f"{where}: expected array, got {type(v).__name__}")
            return frozenset([idec(x, where) for x in v])
        return enc_set, dec_set
    if tp is Message:
        return _encode_any, lambda v, where: _decode_message(v, None, where)
    if isinstance(tp, type) and issubclass(tp, Message):
        return _encode_any, lambda v, where: _decode_message(v, tp, where)
    raise TypeError(f"unsupported wire field type {tp!r}")


def _seq(item: Any) -> tuple[_Enc, _Dec]:
    """``tuple[X, ...]``: a msgpack array; items of an exact scalar type take a fast path."""
    if isinstance(item, type) and issubclass(item, Message) and item is not Message:
        return _message_seq(item)
    ienc, idec = _compile(item)
    exact = item if item in _EXACT else None

    def dec_seq(v: Any, where: str) -> Any:
        if type(v) is not list:
            raise BadField(f"{where}: expected array, got {type(v).__name__}")
        if exact is not None:
            for x in v:
                if type(x) is not exact:
                    break
            else:
                return tuple(v)
        return tuple([idec(x, where) for x in v])

    if ienc is _ident:
        return list, dec_seq

    def enc_seq(v: Any) -> Any:
        return [ienc(x) for x in v]
    return enc_seq, dec_seq


def _message_seq(cls: type) -> tuple[_Enc, _Dec]:
    """``tuple[C, ...]`` of one message class (Raft's entries): C's own encoder and
    decoder per item, without the per-item dispatch of _encode_any and _decode_message."""
    tag = cls.TAG  # type: ignore[attr-defined]

    def enc_seq(v: Any) -> Any:
        enc = _ENCODERS.get(cls) or _make_encoder(cls)
        return [enc(x) if type(x) is cls else _encode_any(x) for x in v]

    def dec_seq(v: Any, where: str) -> Any:
        if type(v) is not list:
            raise BadField(f"{where}: expected array, got {type(v).__name__}")
        dec = _DECODERS.get(cls) or _make_decoder(cls)
        # What _decode_message(x, cls, where) does for a well-formed item; anything else takes it.
        return tuple([dec(x, where) if type(x) is list and x and type(x[0]) is int and x[0] == tag
                      else _decode_message(x, cls, where) for x in v])
    return enc_seq, dec_seq


def _fixed_tuple(args: tuple[Any, ...]) -> tuple[_Enc, _Dec]:
    """``tuple[X, Y]``: an array of exactly that many items."""
    parts = [_compile(a) for a in args]
    exact = tuple(args) if all(a in _EXACT for a in args) else None
    n = len(parts)

    def dec_tup(v: Any, where: str) -> Any:
        if type(v) is not list or len(v) != n:
            raise BadField(f"{where}: expected array of {n}")
        if exact is not None and all(type(x) is t for x, t in zip(v, exact)):
            return tuple(v)
        return tuple([d(x, where) for (_, d), x in zip(parts, v)])

    if all(e is _ident for e, _ in parts):
        return list, dec_tup

    def enc_tup(v: Any) -> Any:
        return [e(x) for (e, _), x in zip(parts, v)]
    return enc_tup, dec_tup


# Scalar types a decoded value must have exactly (float also takes an int,
# so it is not here: its decoder converts).
_EXACT = (int, str, bytes, bool)

# Per message class, an encoder and a decoder generated once from its fields
# (straight-line code: the codec runs twice per simulated message).
_ENCODERS: dict[type, Callable[[Any], list[Any]]] = {}
_DECODERS: dict[type, Callable[[list[Any], str], Any]] = {}
# The same decoders by tag, for a field of any message type (_field_check).
_DECODERS_BY_TAG: dict[int, Callable[[list[Any], str], Any]] = {}


def _encode_any(value: Any) -> Any:
    enc = _ENCODERS.get(type(value))
    if enc is None:
        enc = _make_encoder(type(value))
    return enc(value)


_Field = tuple[str, _Enc, _Dec, str]  # name, encoder, decoder, "Class.name" for errors
_PLANS: dict[type, tuple[int, tuple[_Field, ...]]] = {}


def _plan(cls: type) -> tuple[int, tuple[_Field, ...]]:
    if cls not in _FIELDS:
        raise TypeError(f"cannot encode {cls.__name__}: not a registered message")
    plan = (cls.TAG, tuple((name, *_compile(tp), f"{cls.__name__}.{name}")  # type: ignore[attr-defined]
                           for name, tp in _FIELDS[cls]))
    _PLANS[cls] = plan
    return plan


def _make_encoder(cls: type) -> Callable[[Any], list[Any]]:
    tag, fields = _PLANS.get(cls) or _plan(cls)
    ns: dict[str, Any] = {}
    items = [str(int(tag))]
    for i, (name, enc, _, _) in enumerate(fields):
        if enc is _ident:
            items.append(f"v.{name}")
        else:
            ns[f"e{i}"] = enc
            items.append(f"e{i}(v.{name})")
    exec(f"def enc(v):\n    return [{', '.join(items)}]\n", ns)  # field names are identifiers
    _ENCODERS[cls] = ns["enc"]
    return ns["enc"]


def _field_check(ns: dict[str, Any], i: int, tp: Any) -> list[str]:
    """Generated lines that check (and convert) field value ``f{i}`` of type *tp* in place.

    ``d{i}`` and ``w{i}`` (its decoder and its name for errors) are in *ns*.
    """
    if tp in _EXACT or tp is float:
        # A float field takes an int too: its decoder converts it.
        ns[f"t{i}"] = tp
        return [f"    if type(f{i}) is not t{i}:", f"        f{i} = d{i}(f{i}, w{i})"]
    if typing.get_origin(tp) is tuple and len(typing.get_args(tp)) == 2 and typing.get_args(tp)[1] is Ellipsis:
        item = typing.get_args(tp)[0]
        if item in _EXACT:
            # What d{i} (_seq's dec_seq) does for an array of exact items, without its call;
            # an item of another type takes d{i}, which converts or raises.
            ns[f"t{i}"] = item
            return [f"    if type(f{i}) is list:",
                    f"        for x{i} in f{i}:",
                    f"            if type(x{i}) is not t{i}:",
                    f"                f{i} = d{i}(f{i}, w{i})",
                    "                break",
                    "        else:",
                    f"            f{i} = tuple(f{i})",
                    "    else:",
                    f"        f{i} = d{i}(f{i}, w{i})"]
        # tuple[X, ...]: an empty array is the empty tuple, whatever X is.
        return [f"    if type(f{i}) is list and not f{i}:", f"        f{i} = ()",
                "    else:", f"        f{i} = d{i}(f{i}, w{i})"]
    if tp is Message:
        # What d{i} does (see _build) for a well-formed message whose decoder
        # exists, without its calls; anything else takes _decode_message.
        ns["decode_message"], ns["by_tag"] = _decode_message, _DECODERS_BY_TAG
        return [f"    if type(f{i}) is list and f{i} and type(f{i}[0]) is int "
                f"and (m{i} := by_tag.get(f{i}[0])) is not None:",
                f"        f{i} = m{i}(f{i}, w{i})",
                "    else:",
                f"        f{i} = decode_message(f{i}, None, w{i})"]
    if isinstance(tp, type) and issubclass(tp, Message):
        # What d{i} does (see _build), without its call.
        ns["decode_message"], ns[f"c{i}"] = _decode_message, tp
        return [f"    f{i} = decode_message(f{i}, c{i}, w{i})"]
    return [f"    f{i} = d{i}(f{i}, w{i})"]


def _make_decoder(cls: type) -> Callable[[list[Any], str], Any]:
    """``dec(value, where)`` for a message array whose tag names *cls* (checked by the caller)."""
    _, fields = _PLANS.get(cls) or _plan(cls)
    n = len(fields)
    ns: dict[str, Any] = {"cls": cls, "BadField": BadField}
    body = [f"    if len(v) != {n + 1}:",
            f"        raise BadField(f\"{cls.__name__}: expected {n} fields, got {{len(v) - 1}}\")"]
    args = []
    for i, (name, _, dec, where) in enumerate(fields):
        ns[f"d{i}"], ns[f"w{i}"] = dec, where
        tp = _FIELDS[cls][i][1]
        body.append(f"    f{i} = v[{i + 1}]")
        body += _field_check(ns, i, tp)
        args.append(f"{name}=f{i}")
    setters = _FAST_INIT.get(cls)
    twin = _TWINS.get(cls)
    # cls's __post_init__ validation, run on an object built without calling cls.
    post_init = ["    try:",
                 "        o.__post_init__()",
                 "    except (TypeError, ValueError) as exc:  # __post_init__ validation",
                 f"        raise BadField(f\"{cls.__name__}: {{exc}}\") from None"] \
        if hasattr(cls, "__post_init__") else []
    if twin is not None:
        # What cls(**fields) does (see _fast_init and _twin), without the call.
        ns["new"], ns["twin"] = object.__new__, twin
        body.append("    o = new(twin)")
        for i, (name, _, _, _) in enumerate(fields):
            body.append(f"    o.{name} = f{i}")
        body.append("    o.__class__ = cls")
        body += post_init
        body.append("    return o")
    elif setters is None:
        body += ["    try:",
                 f"        return cls({', '.join(args)})",
                 "    except (TypeError, ValueError) as exc:  # __post_init__ validation",
                 f"        raise BadField(f\"{cls.__name__}: {{exc}}\") from None"]
    else:
        # What cls(**fields) does (see _fast_init), without the call.
        ns["new"] = object.__new__
        body.append("    o = new(cls)")
        for i, setter in enumerate(setters):
            ns[f"s{i}"] = setter
            body.append(f"    s{i}(o, f{i})")
        body += post_init
        body.append("    return o")
    exec("def dec(v, where):\n" + "\n".join(body) + "\n", ns)  # field names are identifiers
    _DECODERS[cls] = ns["dec"]
    _DECODERS_BY_TAG[cls.TAG] = ns["dec"]  # type: ignore[attr-defined]
    return ns["dec"]


def encode(msg: Any) -> bytes:
    """Encode a registered message to msgpack bytes (no frame header)."""
    return _packb(_encode_any(msg))


def encode_fields(cls: type, *values: Any) -> bytes:
    """The bytes of ``encode(cls(*values))`` without building the message.

    For hot paths (the simulated network wraps every message in an
    Envelope) and only for classes with no validation of their own.
    """
    enc = _FIELD_ENCODERS.get(cls) or _make_field_encoder(cls)
    return _packb(enc(values))


def decode_fields(data: bytes, cls: type, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> tuple[Any, ...]:
    """Decode bytes that must hold one *cls* message into its field values, without building it.

    Checks exactly what ``decode`` does, plus that the message is a *cls*;
    raises WireError otherwise.  Only for classes with no validation of
    their own (see encode_fields).
    """
    value = _unpack(data, max_frame_bytes)
    if type(value) is not list or not value or type(value[0]) is not int or value[0] != cls.TAG:  # type: ignore[attr-defined]
        got = _decode_message(value, None, "frame")  # the error decode would raise, if any
        raise BadField(f"expected {cls.__name__}, got {type(got).__name__}")
    dec = _FIELD_DECODERS.get(cls) or _make_field_decoder(cls)
    return dec(value)


def fields_encoder(cls: type) -> Callable[..., bytes]:
    """``f(*values)``: the bytes of ``encode_fields(cls, *values)``, as straight-line code."""
    tag, fields = _PLANS.get(cls) or _plan(cls)
    ns: dict[str, Any] = {"packb": _packb, "encoders": _ENCODERS, "make": _make_encoder}
    params, items = [], [str(int(tag))]
    for i, (_, enc, _, _) in enumerate(fields):
        params.append(f"v{i}")
        if enc is _ident:
            items.append(f"v{i}")
        elif enc is _encode_any:  # inlined
            items.append(f"(encoders.get(type(v{i})) or make(type(v{i})))(v{i})")
        else:
            ns[f"e{i}"] = enc
            items.append(f"e{i}(v{i})")
    src = f"def encode_values({', '.join(params)}):\n    return packb([{', '.join(items)}])\n"
    exec(src, ns)  # generated from field positions only
    return ns["encode_values"]  # type: ignore[no-any-return]


def head_encoder(cls: type) -> Callable[..., bytes]:
    """``f(*values)``: the bytes of ``encode_fields(cls, *values, payload)`` that precede *payload*'s.

    For a class whose last field is a message (an envelope): a msgpack array
    is its header followed by its items' bytes, so
    ``encode_fields(cls, *values, m) == f(*values) + encode(m)``; a caller
    that sends many payloads with the same leading values packs those once.
    """
    tag, fields = _PLANS.get(cls) or _plan(cls)
    if not fields or _FIELDS[cls][-1][1] is not Message:
        raise TypeError(f"{cls.__name__}: the last field is not a Message")
    lead = fields[:-1]
    if any(enc is not _ident for _, enc, _, _ in lead):
        raise TypeError(f"{cls.__name__}: the leading fields must be plain scalars")

    def head(*values: Any) -> bytes:
        if len(values) != len(lead):
            raise TypeError(f"{cls.__name__} has {len(lead)} leading fields, got {len(values)}")
        # The array with a 0 (one byte, 0x00) in place of the payload, without that byte.
        return _packb([int(tag), *values, 0])[:-1]
    return head


def fields_decoder(cls: type,
                   max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Callable[[bytes], tuple[Any, ...]]:
    """``f(data)``: ``decode_fields(data, cls, max_frame_bytes)``, with the lookups done once.

    Input that is not a well-formed *cls* message takes ``decode_fields``
    itself, so it raises exactly the same WireError.
    """
    _, fields = _PLANS.get(cls) or _plan(cls)
    n = len(fields)
    ns: dict[str, Any] = {"unpackb": msgpack.unpackb, "decode_fields": decode_fields, "cls": cls,
                          "max_frame_bytes": max_frame_bytes}
    body = []
    for i, (_, _, dec, where) in enumerate(fields):
        ns[f"d{i}"], ns[f"w{i}"] = dec, where
        body.append(f"    f{i} = v[{i + 1}]")
        body += _field_check(ns, i, _FIELDS[cls][i][1])
    # _make_field_decoder's body, inside the checks decode_fields makes first.
    src = ("def decode_values(data):\n"
           "    if len(data) <= max_frame_bytes:\n"
           "        try:\n"
           "            v = unpackb(data, raw=False, strict_map_key=True)\n"
           "        except Exception:\n"
           "            pass  # decode_fields below raises the WireError\n"
           "        else:\n"
           f"            if type(v) is list and len(v) == {n + 1} and type(v[0]) is int "
           f"and v[0] == {int(cls.TAG)}:\n"  # type: ignore[attr-defined]
           + "".join(f"            {line}\n" for line in body)
           + f"                return ({''.join(f'f{i}, ' for i in range(n))})\n"
           "    return decode_fields(data, cls, max_frame_bytes)\n")
    exec(src, ns)  # generated from field positions only
    return ns["decode_values"]  # type: ignore[no-any-return]


_FIELD_ENCODERS: dict[type, Callable[[tuple[Any, ...]], list[Any]]] = {}
_FIELD_DECODERS: dict[type, Callable[[list[Any]], tuple[Any, ...]]] = {}


def _make_field_encoder(cls: type) -> Callable[[tuple[Any, ...]], list[Any]]:
    tag, fields = _PLANS.get(cls) or _plan(cls)
    ns: dict[str, Any] = {}
    items = [str(int(tag))]
    for i, (_, enc, _, _) in enumerate(fields):
        if enc is _ident:
            items.append(f"t[{i}]")
        else:
            ns[f"e{i}"] = enc
            items.append(f"e{i}(t[{i}])")
    src = (f"def enc(t):\n    if len(t) != {len(fields)}:\n"
           f"        raise TypeError('{cls.__name__} has {len(fields)} fields, got %d' % len(t))\n"
           f"    return [{', '.join(items)}]\n")
    exec(src, ns)  # generated from field positions only
    _FIELD_ENCODERS[cls] = ns["enc"]
    return ns["enc"]


def _make_field_decoder(cls: type) -> Callable[[list[Any]], tuple[Any, ...]]:
    _, fields = _PLANS.get(cls) or _plan(cls)
    n = len(fields)
    ns: dict[str, Any] = {"BadField": BadField}
    body = [f"    if len(v) != {n + 1}:",
            f"        raise BadField(f\"{cls.__name__}: expected {n} fields, got {{len(v) - 1}}\")"]
    for i, (_, _, dec, where) in enumerate(fields):
        ns[f"d{i}"], ns[f"w{i}"] = dec, where
        tp = _FIELDS[cls][i][1]
        body.append(f"    f{i} = v[{i + 1}]")
        body += _field_check(ns, i, tp)
    body.append(f"    return ({''.join(f'f{i}, ' for i in range(n))})")
    exec("def dec(v):\n" + "\n".join(body) + "\n", ns)  # generated from field positions only
    _FIELD_DECODERS[cls] = ns["dec"]
    return ns["dec"]


def encode_frame(msg: Any, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encode *msg* as one length-prefixed frame; refuse to build an oversized one."""
    body = encode(msg)
    if len(body) > max_frame_bytes:
        raise FrameTooLarge(f"frame of {len(body)} bytes exceeds limit {max_frame_bytes}")
    return FRAME_HEADER.pack(len(body)) + body


_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack


# ---------------------------------------------------------------- decoding


def _decode_message(value: Any, expected: type | None, where: str) -> Any:
    if type(value) is not list or not value:
        raise BadField(f"{where}: expected a message array")
    tag = value[0]
    if type(tag) is not int:
        raise BadField(f"{where}: message tag must be an int")
    cls = _BY_TAG.get(tag)
    if cls is None:
        raise UnknownTag(f"{where}: unknown message tag {tag}")
    if expected is not None and cls is not expected:
        raise BadField(f"{where}: expected {expected.__name__}, got {cls.__name__}")
    dec = _DECODERS.get(cls) or _make_decoder(cls)
    return dec(value, where)


def decode(data: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Any:
    """Decode one message from msgpack bytes; raise WireError on anything bad."""
    return _decode_message(_unpack(data, max_frame_bytes), None, "frame")


def _unpack(data: bytes, max_frame_bytes: int) -> Any:
    if len(data) > max_frame_bytes:
        raise FrameTooLarge(f"payload of {len(data)} bytes exceeds limit {max_frame_bytes}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
        )
    except msgpack.ExtraData:
        raise BadField("trailing bytes after the message") from None
    except (ValueError, msgpack.UnpackException) as exc:
        if "incomplete" in str(exc).lower() or isinstance(exc, msgpack.OutOfData):
            raise TruncatedFrame("message ends early") from None
        raise BadField(f"malformed msgpack: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - msgpack raises assorted types on garbage
        raise BadField(f"malformed msgpack: {type(exc).__name__}") from None


def decode_frame(frame: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Any:
    """Decode exactly one whole frame (header + body)."""
    if len(frame) < FRAME_HEADER.size:
        raise TruncatedFrame("frame shorter than its header")
    (length,) = FRAME_HEADER.unpack_from(frame)
    if length > max_frame_bytes:
        raise FrameTooLarge(f"frame length {length} exceeds limit {max_frame_bytes}")
    body = frame[FRAME_HEADER.size :]
    if len(body) < length:
        raise TruncatedFrame(f"frame body has {len(body)} of {length} bytes")
    if len(body) > length:
        raise BadField("bytes after the frame body")
    return decode(body, max_frame_bytes)


class FrameDecoder:
    """Incremental decoder for a byte stream of frames (one per connection).

    ``feed`` returns the messages completed by the new bytes.  A frame whose
    length prefix exceeds the limit raises FrameTooLarge at once (before the
    body arrives), and a bad body raises its WireError; after either the
    stream cannot be re-synchronised and the connection should be closed.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out = []
        while len(self._buf) >= FRAME_HEADER.size:
            (length,) = FRAME_HEADER.unpack_from(self._buf)
            if length > self._max:
                raise FrameTooLarge(f"frame length {length} exceeds limit {self._max}")
            end = FRAME_HEADER.size + length
            if len(self._buf) < end:
                break
            body = bytes(self._buf[FRAME_HEADER.size : end])
            del self._buf[:end]
            out.append(decode(body, self._max))
        return out

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)
