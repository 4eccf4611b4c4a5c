"""Coverage-guided fuzzing with atheris (issue 10): run by hand, never part of the pytest run.

The hypothesis suites (tests/test_fuzz_*.py) are the regression net; this
harness lets libFuzzer explore the same decoders guided by coverage of our
Python code (msgpack itself is C and not instrumented)::

    pip install atheris
    python tests/atheris_fuzz.py wire   -atheris_runs=200000
    python tests/atheris_fuzz.py gossip -max_total_time=120
    python tests/atheris_fuzz.py config -max_total_time=120

Targets:

* ``wire``   -- the first byte picks a path: ``wire.decode`` of the rest, the
  RPC ``FrameDecoder`` fed in two pieces, or the gossip stream reader with
  encryption (``SealedFrameDecoder``, frames sealed with the right key so
  the decoder behind the cipher is reached);
* ``gossip`` -- a sealed packet through ``UdpTransport._handle`` and every
  gossip message that decodes through a SWIM/Serf core;
* ``config`` -- the bytes as a TOML file through ``parse_args``.

A crash is any exception other than the ones each API documents
(``WireError``, ``ConfigError``); libFuzzer saves the input as
``crash-<sha1>``, which becomes a regression test.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import actors.client.messages  # registers message types
    import actors.gossip.keyring
    import actors.raft.messages  # noqa: F401
    from actors.gossip.config import fast_config
    from actors.gossip.messages import WIRE_TYPES
    from actors.gossip.serf import SerfCore
    from runtime import wire
    from runtime.config import ConfigError, parse_args
    from runtime.gossip_crypto import GossipCrypto
    from runtime.messages import Envelope
    from runtime.transport import SealedFrameDecoder, UdpTransport

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
CRYPTO = GossipCrypto([KEY])


def fuzz_wire(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    try:
        if mode == 0:
            wire.decode(rest, 64 * 1024)
        elif mode == 1:
            dec = wire.FrameDecoder(64 * 1024)
            cut = len(rest) // 2
            dec.feed(rest[:cut])
            dec.feed(rest[cut:])
        else:
            sealed = CRYPTO.keyring.seal(rest)
            SealedFrameDecoder(CRYPTO, 64 * 1024).feed(wire.FRAME_HEADER.pack(len(sealed)) + sealed)
    except wire.WireError:
        pass


def fuzz_gossip(data: bytes) -> None:
    udp = UdpTransport("127.0.0.1:0", _core_deliver, crypto=CRYPTO)
    udp._handle(CRYPTO.keyring.seal(data), ("10.0.0.1", 4648))


def _core_deliver(env: Envelope) -> None:
    if isinstance(env.payload, WIRE_TYPES):
        core = SerfCore("me.global", "10.0.0.9:4648", fast_config(), random.Random(1),
                        tags=(("role", "nomad"),), pool="gossip")
        core.start(0.0)
        core.on_message(env.payload, 1.0)
        core.take_effects()
        core.check_invariants()


def fuzz_config(data: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".toml", delete=False) as fh:
        fh.write(data)
    try:
        parse_args(["-config", fh.name, "-server", "-data-dir", "/tmp"])
    except ConfigError as e:
        assert "\n" not in str(e)
    finally:
        os.unlink(fh.name)


TARGETS = {"wire": fuzz_wire, "gossip": fuzz_gossip, "config": fuzz_config}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
