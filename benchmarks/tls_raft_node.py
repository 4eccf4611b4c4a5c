from gevent import monkey

monkey.patch_all()

__doc__ = """benchmarks/raft_node.py with mutual TLS on its Raft transport (for `nomad-bench tls`).

Same flags and control API as raft_node.py; the certificates come from the
directory in ``NOMAD_BENCH_TLS_DIR`` (``nomad-agent-ca.pem``,
``global-server-nomad.pem``, ``global-server-nomad-key.pem``, as ``nomad tls``
writes them).  Every connection is mutual TLS with
``verify_server_hostname`` on, as a production server's RPC port.
"""

import functools  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import raft_node  # noqa: E402
from runtime.tls import TlsEdge, TlsSettings  # noqa: E402
from runtime.transport import TcpTransport  # noqa: E402


def tls_edge(directory: str) -> TlsEdge:
    return TlsEdge(TlsSettings(rpc=True, server=True, verify_server_hostname=True,
                               ca_file=os.path.join(directory, "nomad-agent-ca.pem"),
                               cert_file=os.path.join(directory, "global-server-nomad.pem"),
                               key_file=os.path.join(directory, "global-server-nomad-key.pem")))


if __name__ == "__main__":
    raft_node.TcpTransport = functools.partial(TcpTransport, tls=tls_edge(os.environ["NOMAD_BENCH_TLS_DIR"]))
    try:
        rc = raft_node.main(sys.argv[1:])
    finally:
        sys.stdout.flush()
    os._exit(rc)
