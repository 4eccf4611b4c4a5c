"""The CLI starts without importing what only a few of its commands need.

Every ``nomad`` command is a new process, so what ``runtime.cli`` imports is
paid by each one (and by every CLI call of the tests): the agent's
configuration schema (``nomad config validate`` only), cryptography (``nomad
tls ca|cert create`` and certificate errors), the snapshot archive format
(``nomad operator snapshot``), the gossip keyring's crypto (``keyring
generate``), TOML (a TOML job file) and the agent itself (``nomad version``
reads :mod:`runtime.version`).  Measured here: ~155 ms of CPU per command
before, ~92 ms after.
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("runtime.config", "cryptography", "actors.state.snapshot_archive", "runtime.gossip_crypto",
         "tomllib", "actors.agent_specs")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys; sys.path.insert(0, {ROOT!r}); {code}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         check=True)
    return set(out.stdout.split())


def test_the_cli_imports_none_of_the_heavy_modules_a_few_commands_need() -> None:
    loaded = _imported_after("import runtime.cli")
    assert not [m for m in loaded if m in HEAVY or m.startswith("cryptography.")]


def test_nomad_version_prints_the_release_without_importing_the_agent() -> None:
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "nomad"), "version"], capture_output=True,
                         text=True, timeout=60)
    from runtime.version import VERSION

    assert out.returncode == 0 and out.stdout.startswith(f"Nomad v{VERSION}")
    assert "actors.agent_specs" not in _imported_after(
        "import runtime.cli as c; c.COMMANDS[('version',)]('', [])")


def test_the_lazy_modules_are_the_real_ones_when_used() -> None:
    from cryptography import x509

    from actors.state import snapshot_archive
    from runtime import cli, cli_snapshot, cli_tls  # (runtime.cli imports the other two)

    assert cli.COMMANDS

    assert cli_tls.x509.Certificate is x509.Certificate and cli_tls.NameOID.COMMON_NAME is not None
    assert cli_snapshot.archive.ArchiveError is snapshot_archive.ArchiveError
