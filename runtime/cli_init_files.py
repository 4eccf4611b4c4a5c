"""``nomad var init`` and ``nomad node pool init``: Nomad's example specification files.

As Nomad's ``command/var_init.go`` and ``command/node_pool_init.go``:
``[-out=hcl|json] [-quiet] [<filename>]`` writes the example (default name
``spec.nv.hcl`` / ``spec.nv.json``, ``pool.nomad.hcl`` / ``pool.nomad.json``)
with mode 0660 and refuses a file that exists.  The texts are Nomad's
(``command/asset/pool.nomad.*`` and var_init.go's, its comments word-wrapped
as Nomad wraps them), so ``nomad var put @spec.nv.hcl`` and ``nomad node pool
apply pool.nomad.hcl`` take them as they are.  An ``-out`` other than hcl or
json is refused (Nomad would write an empty file under an empty name).
"""

from __future__ import annotations

import os
import re
import sys

from runtime.cli import CliError
from runtime.cli_jobs import parse_flags

__all__ = ["INIT_FILE_COMMANDS", "POOL_SPEC_HCL", "POOL_SPEC_JSON", "VAR_SPEC_HCL", "VAR_SPEC_JSON",
           "wordwrap"]


def wordwrap(text: str, limit: int) -> str:
    """muesli/reflow ``wordwrap.String``: words moved to a new line when the line would pass *limit*."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > limit:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


def _tidy(raw: str) -> str:
    """Nomad's tidyRawString: runs of tabs, newlines and spaces become one space."""
    return re.sub(r"[\t\n ]+", " ", raw.strip())


def _hcl_comment(raw: str) -> str:
    """Nomad's makeHCLComment: wrapped to 70 columns with the "# " prefix."""
    return "\n".join("# " + line for line in wordwrap(_tidy(raw), 68).split("\n"))


_MSG_WARN_KEYS = """
	REMINDER: While keys in the items map can contain dots, using them in
	templates is easier when they do not. As a best practice, avoid dotted
	keys when possible."""
_MSG_ONLY_ITEMS_REQUIRED = """
	The items map is the only strictly required part of a variable
	specification, since path and namespace can be set via other means. It
	contains the sensitive material to encrypt and store as a Nomad variable.
	The entire items map is encrypted and decrypted as a single unit."""

VAR_SPEC_HCL = ("""# A variable path can be specified in the specification file
# and will be used when writing the variable without specifying a
# path in the command or when writing JSON directly to the `/var/`
# HTTP API endpoint
# path = "path/to/variable"

# The Namespace to write the variable can be included in the specification. This
# value can be overridden by specifying the "-namespace" flag on the "put"
# command.
# namespace = "default"

""" + _hcl_comment(_MSG_ONLY_ITEMS_REQUIRED) + "\n\n" + _hcl_comment(_MSG_WARN_KEYS) + """
items {
  key1 = "value 1"
  key2 = "value 2"
}
""")

VAR_SPEC_JSON = """{
  "Namespace": "default",
  "Path": "path/to/variable",
  "Items": {
    "key1": "value 1",
    "key2": "value 2"
  }
}
"""

POOL_SPEC_HCL = """node_pool "example" {

  description = "Example node pool"

  # meta is optional metadata on the node pool, defined as key-value pairs.
  # The scheduler does not use node pool metadata as part of scheduling.
  meta {
    environment = "prod"
    owner       = "sre"
  }

  # node identity TTL is an optional parameter that sets the TTL for all node
  # identities issued to nodes in this node pool. The value must be a valid
  # duration string (e.g. "30m", "1h", "24h"). If not set, the default value is
  # "24h".
  # node_identity_ttl = "24h"

  # The scheduler configuration options specific to this node pool. This block
  # supports a subset of the fields supported in the global scheduler
  # configuration as described at:
  # https://developer.hashicorp.com/nomad/commands/operator/scheduler/set-config
  #
  # * scheduler_algorithm is the scheduling algorithm to use for the pool.
  #   If not defined, the global cluster scheduling algorithm is used.
  #
  # * memory_oversubscription_enabled specifies whether memory oversubscription
  #   is enabled. If not defined, the global cluster configuration is used.
  #
  # Available only in Nomad Enterprise.

  # scheduler_config {
  #   scheduler_algorithm             = "spread"
  #   memory_oversubscription_enabled = true
  # }
}
"""

POOL_SPEC_JSON = """{
  "Name": "example",
  "Description": "Example node pool",
  "Meta": {
    "environment": "prod",
    "owner": "sre"
  },
  "NodeIdentityTTL": "24h",
  "SchedulerConfiguration": {
    "SchedulerAlgorithm": "spread",
    "MemoryOversubscriptionEnabled": true
  }
}
"""


def _write_example(args: list[str], name: str, files: dict[str, tuple[str, str]]) -> tuple[str, str, bool]:
    """Nomad's init: (format, file written, quiet)."""
    flags, rest = parse_flags(args, {"out": str, "quiet": bool})
    if len(rest) > 1:
        raise CliError("This command takes no arguments or one: <filename>\n"
                       f"For additional help try 'nomad {name} -help'")
    fmt = flags.get("out", "hcl")
    if fmt not in files:
        raise CliError(f'Invalid -out value "{fmt}": must be "hcl" or "json"')
    path, content = files[fmt]
    if rest:
        path = rest[0]
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise CliError(f'Failed to stat "{path}": {e.strerror or e}') from None
    else:
        raise CliError(f'File "{path}" already exists')
    try:
        # O_EXCL: a file made since the check is not overwritten either
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
    except FileExistsError:
        raise CliError(f'File "{path}" already exists') from None
    except OSError as e:
        raise CliError(f'Failed to write "{path}": {e.strerror or e}') from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    return fmt, path, bool(flags.get("quiet"))


def var_init(addr: str, args: list[str]) -> str:
    fmt, path, quiet = _write_example(args, "var init", {"hcl": ("spec.nv.hcl", VAR_SPEC_HCL),
                                                         "json": ("spec.nv.json", VAR_SPEC_JSON)})
    if quiet:
        return ""
    lines = []
    if fmt == "json":  # Nomad: an Info line (stdout) and a Warn line (stderr) first
        lines.append(wordwrap(_tidy(_MSG_ONLY_ITEMS_REQUIRED.replace("items", "Items")), 70))
        print(wordwrap(_tidy(_MSG_WARN_KEYS.replace("items", "Items")), 70), file=sys.stderr)
    lines.append(f"Example variable specification written to {path}")
    return "\n".join(lines)


def node_pool_init(addr: str, args: list[str]) -> str:
    _, path, quiet = _write_example(args, "node pool init", {"hcl": ("pool.nomad.hcl", POOL_SPEC_HCL),
                                                             "json": ("pool.nomad.json", POOL_SPEC_JSON)})
    return "" if quiet else f"Example node pool specification written to {path}"


INIT_FILE_COMMANDS = {
    ("var", "init"): var_init,
    ("node", "pool", "init"): node_pool_init,
}
