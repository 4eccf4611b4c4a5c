"""CLI commands run offline or against fake API answers: tls ca|cert info, var init, node pool init,
namespace inspect, acl policy self (and the commands of the later sections of this file)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runtime import cli, cli_acl, cli_init_files, cli_namespaces, cli_tls


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


class FakeApi:
    """Answers `request(addr, method, path, ...)` from a table of (method, path) -> answer or CliError."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers, self.calls = answers, []

    def __call__(self, addr: str, method: str, path: str, body: Any = None, **query: Any) -> Any:
        self.calls.append((method, path, {k: v for k, v in query.items() if v is not None}))
        got = self.answers[(method, path)]
        if isinstance(got, Exception):
            raise got
        return got


# ---------------------------------------------------------------- tls ca info / tls cert info


def test_tls_ca_create_takes_a_custom_subject_and_a_name_constraint(tmp_path: Path, capsys: Any,
                                                                     monkeypatch: Any) -> None:
    """Nomad's tls ca create: a custom subject needs its four required fields; -name-constraint limits
    the CA to -domain, localhost, nomad and each -additional-domain, in <domain>-agent-ca.pem."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "tls", "ca", "create", "-organization", "Acme")
    assert code == 1 and "Please provide the -common-name flag when customizing the CA" in err
    code, _, err = run(capsys, "tls", "ca", "create", "-domain", "corp")
    assert code == 1 and "Please provide the -name-constraint flag to use a custom domain constraint" in err
    code, _, err = run(capsys, "tls", "ca", "create", "-name-constraint")
    assert code == 1
    assert "Please provide the -domain flag if you want to enable custom domain constraints" in err
    code, out, err = run(capsys, "tls", "ca", "create", "-domain", "corp", "-name-constraint",
                         "-additional-domain", "example.com", "-common-name", "Corp CA", "-country", "DE",
                         "-organization", "Corp", "-organizational-unit", "Ops")
    assert code == 0 and out.startswith("==> CA certificate saved to: corp-agent-ca.pem"), err
    ca = x509.load_pem_x509_certificate(Path("corp-agent-ca.pem").read_bytes())
    assert ca.subject.rfc4514_string() == f"CN=Corp CA {ca.serial_number},OU=Ops,O=Corp,C=DE"
    nc = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical and [g.value for g in nc.value.permitted_subtrees] == \
        ["corp", "localhost", "nomad", "example.com"]
    code, _, err = run(capsys, "tls", "ca", "create", "-domain", "corp", "-name-constraint")
    assert code == 1 and "CA certificate file 'corp-agent-ca.pem' already exists" in err


def test_tls_ca_and_cert_info_print_nomads_fields(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    cli_tls.create_ca(common_name="Test CA")
    cli_tls.create_cert("server", ip_addresses=("10.1.2.3", "fe80::1"), dns_names=("nomad.example",))
    ca = x509.load_pem_x509_certificate(Path(cli_tls.CA_FILE).read_bytes())
    code, out, _ = run(capsys, "tls", "ca", "info", cli_tls.CA_FILE)
    assert code == 0
    expiry = ca.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S")
    assert out.splitlines() == [
        f"Serial Number          {ca.serial_number}",
        f"Issuer CN              Test CA {ca.serial_number}",  # Nomad's GenerateCA: the serial appended
        # Nomad's default subject, in Go's pkix.Name.String order
        f"Common Name            CN=Test CA {ca.serial_number},OU=Nomad,O=HashiCorp Inc.,POSTALCODE=94105,"
        "STREET=101 Second Street,L=San Francisco,ST=CA,C=US",
        f"Expiry Date            {expiry} +0000 UTC",
        "Permitted DNS Domains  []"]
    cert = x509.load_pem_x509_certificate(Path("global-server-nomad.pem").read_bytes())
    code, out, _ = run(capsys, "tls", "cert", "info", "global-server-nomad.pem")
    assert code == 0
    assert out.splitlines() == [
        f"Serial Number  {cert.serial_number}",
        f"Issuer CN      Test CA {ca.serial_number}",
        "Common Name    CN=server.global.nomad",
        f"Expiry Date    {cert.not_valid_after_utc.strftime('%Y-%m-%d %H:%M:%S')} +0000 UTC",
        "DNS Names      [server.global.nomad localhost nomad.example]",
        "IP Addresses   [127.0.0.1 10.1.2.3 fe80::1]"]


def test_tls_info_names_go_style_and_name_constraints(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "A, B+C"),
                      x509.NameAttribute(NameOID.COMMON_NAME, " #lead"),
                      x509.NameAttribute(NameOID.EMAIL_ADDRESS, "x@y")])
    now = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(12345).not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now)
            .add_extension(x509.NameConstraints(permitted_subtrees=[x509.DNSName("nomad"),
                                                                    x509.DNSName("example.com")],
                                                excluded_subtrees=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("::ffff:1.2.3.4"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    # the email attribute has no Go name: OID=#<DER>, first in the sequence so printed last
    assert cli_tls.go_name(cert.subject) == \
        "CN=\\ #lead,O=A\\, B\\+C,C=US,1.2.840.113549.1.9.1=#0c03784079"
    ca = cli_tls.cert_info(cert, ca=True).splitlines()
    assert ca[0] == "Serial Number          12345"
    assert ca[3] == "Expiry Date            2030-01-02 03:04:05 +0000 UTC"
    assert ca[4] == "Permitted DNS Domains  [nomad example.com]"
    assert cli_tls.cert_info(cert, ca=False).splitlines()[5] == "IP Addresses   [1.2.3.4]"  # v4-mapped
    # only the first PEM block counts, wherever it starts
    pem = b"junk\n" + cert.public_bytes(serialization.Encoding.PEM)
    assert cli_tls.parse_pem_cert(pem).serial_number == 12345


def test_tls_info_errors_are_nomads(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    Path("key.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    Path("empty.pem").write_text("nothing here\n")
    assert run(capsys, "tls", "cert", "info", "key.pem")[2] == \
        "first PEM-block should be CERTIFICATE type\n"
    assert run(capsys, "tls", "ca", "info", "empty.pem")[2] == "no PEM-encoded data found\n"
    assert run(capsys, "tls", "cert", "info")[2] == "no PEM-encoded data found\n"
    assert run(capsys, "tls", "ca", "info")[2] == "Error reading CA file: <nil>\n"
    code, _, err = run(capsys, "tls", "cert", "info", "missing.pem")
    assert code == 1
    assert err == "Error reading certificate file: open missing.pem: no such file or directory\n"
    code, _, err = run(capsys, "tls", "ca", "info", "a", "b")
    assert code == 1 and err.startswith("This command takes up to one argument\n")


# ---------------------------------------------------------------- var init / node pool init


def test_var_init_writes_nomads_examples(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "var", "init")
    assert code == 0 and out == "Example variable specification written to spec.nv.hcl\n"
    text = Path("spec.nv.hcl").read_text()
    assert text == cli_init_files.VAR_SPEC_HCL
    assert stat.S_IMODE(os.stat("spec.nv.hcl").st_mode) == 0o660 & ~_umask()
    # Nomad's comments, wrapped at 70 columns with the "# " prefix
    assert "# The items map is the only strictly required part of a variable\n" \
           "# specification, since path and namespace can be set via other means.\n" in text
    assert all(len(line) <= 70 for line in text.splitlines() if line.startswith("# The items") or
               line.startswith("# REMINDER"))
    assert text.endswith('items {\n  key1 = "value 1"\n  key2 = "value 2"\n}\n')
    code, out, err = run(capsys, "var", "init", "-out=json")
    assert code == 0 and out.endswith("Example variable specification written to spec.nv.json\n")
    assert out.startswith("The Items map is the only strictly required part of a variable\n")
    assert err.startswith("REMINDER: While keys in the Items map can contain dots")
    assert json.loads(Path("spec.nv.json").read_text())["Items"] == {"key1": "value 1", "key2": "value 2"}
    assert run(capsys, "var", "init", "-quiet", "mine.hcl") == (0, "", "")
    assert Path("mine.hcl").read_text() == text
    assert run(capsys, "var", "init")[2] == 'File "spec.nv.hcl" already exists\n'
    assert run(capsys, "var", "init", "-out=yaml")[0] == 1
    assert run(capsys, "var", "init", "a", "b")[2].startswith(
        "This command takes no arguments or one: <filename>\n")
    # what `var put` reads back from it
    from runtime.cli_variables import _spec
    assert _spec("@spec.nv.hcl", "hcl")["Items"] == {"key1": "value 1", "key2": "value 2"}


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_node_pool_init_writes_nomads_examples(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "node", "pool", "init") == \
        (0, "Example node pool specification written to pool.nomad.hcl\n", "")
    assert run(capsys, "node", "pool", "init", "-out", "json")[0] == 0
    assert json.loads(Path("pool.nomad.json").read_text())["Name"] == "example"
    assert run(capsys, "node", "pool", "init")[2] == 'File "pool.nomad.hcl" already exists\n'
    from runtime.cli_node_pools import _spec
    assert _spec("pool.nomad.hcl", False) == {"Name": "example", "Description": "Example node pool",
                                               "Meta": {"environment": "prod", "owner": "sre"}}


# ---------------------------------------------------------------- namespace inspect / acl policy self


def test_namespace_inspect_prints_the_namespace_as_json(capsys: Any, monkeypatch: Any) -> None:
    default = {"Name": "default", "Description": "Default shared namespace", "Quota": "", "Meta": None,
               "CreateIndex": 1, "ModifyIndex": 1}
    api = FakeApi({("GET", "/v1/namespaces"): [default]})
    monkeypatch.setattr(cli_namespaces, "request", api)
    code, out, _ = run(capsys, "namespace", "inspect", "def")
    assert code == 0 and api.calls == [("GET", "/v1/namespaces", {"prefix": "def"})]
    got = json.loads(out)
    assert list(got) == ["Name", "Description", "Quota", "Capabilities", "NodePoolConfiguration",
                         "VaultConfiguration", "ConsulConfiguration", "Meta", "CreateIndex", "ModifyIndex",
                         "RequiredExtraClaims", "OptionalExtraClaims"]
    assert got["Name"] == "default" and got["CreateIndex"] == 1 and got["Capabilities"] is None
    assert run(capsys, "namespace", "inspect", "-t", "{{ .Description }}", "default")[1] == \
        "Default shared namespace\n"
    api.answers[("GET", "/v1/namespaces")] = []
    assert run(capsys, "namespace", "inspect", "x")[2] == \
        'Error retrieving namespaces: Namespace "x" matched no namespaces\n'
    api.answers[("GET", "/v1/namespaces")] = [{"Name": "dev1"}, {"Name": "dev2", "Description": "d"}]
    code, _, err = run(capsys, "namespace", "inspect", "dev")
    assert code == 1
    assert err == "Prefix matched multiple namespaces\n\nName  Description\ndev1\ndev2  d\n"
    assert json.loads(run(capsys, "namespace", "inspect", "dev2")[1])["Description"] == "d"
    assert run(capsys, "namespace", "inspect")[0] == 1


def test_acl_policy_self(capsys: Any, monkeypatch: Any) -> None:
    from runtime.cli import CliError

    api = FakeApi({("GET", "/v1/acl/token/self"): {"Type": "management"}})
    monkeypatch.setattr(cli_acl, "request", api)
    assert run(capsys, "acl", "policy", "self")[1] == \
        "This is a management token. No individual policies are assigned.\n"
    api.answers = {("GET", "/v1/acl/token/self"): {"Type": "client", "Policies": ["readonly"]},
                   ("GET", "/v1/acl/policies"): [
                       {"Name": "readonly", "Description": "", "CreateIndex": 5, "ModifyIndex": 5},
                       {"Name": "wi", "JobACL": {"JobID": "web", "Group": "", "Task": ""}}]}
    code, out, _ = run(capsys, "acl", "policy", "self")
    assert code == 0 and out.splitlines() == [
        "Name      Job ID         Group Name       Task Name",
        "readonly  <unavailable>  <unavailable>    <unavailable>",
        "wi        web            <not specified>  <not specified>"]
    assert json.loads(run(capsys, "acl", "policy", "self", "-json")[1])[0]["Name"] == "readonly"
    api.answers[("GET", "/v1/acl/policies")] = []
    assert run(capsys, "acl", "policy", "self")[1] == "No policies found.\n"
    api.answers[("GET", "/v1/acl/token/self")] = CliError("Unexpected response code: 403 (Permission denied)")
    assert run(capsys, "acl", "policy", "self")[2] == \
        "Error fetching token: Unexpected response code: 403 (Permission denied)\n"
    assert run(capsys, "acl", "policy", "self", "extra")[0] == 1


# ---------------------------------------------------------------- operator raft info|logs|state (offline)


def _raft_store(data_dir: Path, *, compact: bool) -> Path:
    """A stopped server's store: bootstrap, a no-op, kv and variable writes; with *compact* a snapshot
    at index 3 (entry 3 kept) and the log after it."""
    from actors.raft.messages import CONFIG, NOOP, NORMAL, ConfigChange, Entry
    from actors.raft.sqlite_store import SqliteStorage
    from actors.state.store import StateStore, command
    from runtime import wire

    raft_dir = data_dir / "server" / "raft"
    raft_dir.mkdir(parents=True)
    entries = [Entry(term=1, index=1, kind=CONFIG,
                     data=wire.encode(ConfigChange(op="bootstrap", node="", voters=("10.0.0.1:4647",)))),
               Entry(term=1, index=2, kind=NOOP),
               Entry(term=1, index=3, data=command("kv_put", key="a", value=1)),
               Entry(term=2, index=4, data=command("var_set", namespace="default", path="app/db",
                                                   items={"pw": "s<&>"}, now=1700000000.5)),
               Entry(term=2, index=5, data=command("kv_put", key="b", value=b"\x00raw"))]
    store = SqliteStorage(str(raft_dir / "raft.db"))
    store.load()
    store.save(hard_state=(2, "10.0.0.1:4647"), entries=entries[:3])
    if compact:
        state = StateStore()
        for e in entries[:3]:
            if e.kind == NORMAL:
                state.apply(e.index, e.data)
        state.applied_index = 3
        snapshot = (3, 1, ("10.0.0.1:4647",), (), state.snapshot())
        store.stage_snapshot(snapshot)  # as the agent keeps it: in a file beside the store
        store.compact(snapshot, keep_from=3)
    store.save(entries=entries[3:])
    store.close()
    return raft_dir / "raft.db"


def test_operator_raft_info_logs_and_state_read_a_stopped_store(tmp_path: Path, capsys: Any) -> None:
    db = _raft_store(tmp_path, compact=False)
    before = sorted(os.listdir(db.parent)), db.read_bytes()
    code, out, _ = run(capsys, "operator", "raft", "info", str(tmp_path))
    assert code == 0
    assert out.splitlines()[:8] == [f"path:        {db}", "length:      5", "first index: 1",
                                    "last index:  5", "last term:   2", "term:        2",
                                    "voted for:   10.0.0.1:4647", "snapshot:    none"]
    code, out, err = run(capsys, "operator", "raft", "logs", str(tmp_path))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert [json.loads(line) for line in lines[:3]] == [
        {"LogType": "LogConfiguration", "Term": 1, "Index": 1,
         "Body": {"node": "", "op": "bootstrap", "voters": ["10.0.0.1:4647"]}},
        {"LogType": "LogNoop", "Term": 1, "Index": 2},
        {"LogType": "LogCommand", "Term": 1, "Index": 3, "CommandType": "kv_put",
         "Body": {"key": "a", "value": 1}}]
    # Go's encoder: compact, map keys sorted, <>& escaped, bytes as base64
    assert lines[3] == ('{"LogType":"LogCommand","Term":2,"Index":4,"CommandType":"var_set","Body":{"items":'
                        '{"pw":"s\\u003c\\u0026\\u003e"},"namespace":"default","now":1700000000.5,'
                        '"path":"app/db"}}')
    assert json.loads(lines[4])["Body"]["value"] == "AHJhdw=="
    pretty = run(capsys, "operator", "raft", "logs", "-pretty", str(db))[1]
    assert pretty.startswith('{\n  "LogType": "LogConfiguration",\n  "Term": 1,')
    code, out, _ = run(capsys, "operator", "raft", "state", str(tmp_path))
    state = json.loads(out)
    assert code == 0 and out.startswith('{\n  "ACLAuthMethods": [],\n  "ACLBindingRules": [],\n  "ACLBootstrap": [],')
    assert state["KV"] == [{"Key": "a", "Value": 1}, {"Key": "b", "Value": "AHJhdw=="}]
    assert state["Variables"] == [{"Namespace": "default", "Path": "app/db", "CreateIndex": 4,
                                   "ModifyIndex": 4, "CreateTime": 1700000000500000000,
                                   "ModifyTime": 1700000000500000000}]
    assert {"Key": "kv", "Value": 5} in state["Indexes"]
    # -last-index: an index, or (<= 0) back from the last one
    assert json.loads(run(capsys, "operator", "raft", "state", "-last-index=3", str(tmp_path))[1])["KV"] == \
        [{"Key": "a", "Value": 1}]
    assert json.loads(run(capsys, "operator", "raft", "state", "-last-index=-1", str(tmp_path))[1])[
        "Variables"][0]["Path"] == "app/db"
    assert (sorted(os.listdir(db.parent)), db.read_bytes()) == before  # read-only: nothing written


def test_operator_raft_state_starts_from_the_snapshot(tmp_path: Path, capsys: Any) -> None:
    db = _raft_store(tmp_path, compact=True)
    assert [p.name for p in db.parent.iterdir() if ".snapshot-" in p.name]  # the snapshot is in its file
    info = run(capsys, "operator", "raft", "info", str(tmp_path))[1].splitlines()
    assert info[1:4] == ["length:      3", "first index: 3", "last index:  5"]
    assert info[7].startswith("snapshot:    index 3, term 1, ")
    assert [json.loads(line)["Index"] for line in run(capsys, "operator", "raft", "logs", str(tmp_path))[1]
            .splitlines()] == [3, 4, 5]
    state = json.loads(run(capsys, "operator", "raft", "state", str(tmp_path))[1])
    assert [kv["Key"] for kv in state["KV"]] == ["a", "b"]
    code, _, err = run(capsys, "operator", "raft", "state", "-last-index=2", str(tmp_path))
    assert code == 1 and "before the snapshot at index 3" in err


def test_operator_raft_refuses_a_store_in_use_and_bad_paths(tmp_path: Path, capsys: Any) -> None:
    import subprocess
    import sys

    db = _raft_store(tmp_path, compact=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from actors.raft.sqlite_store import SqliteStorage; "
         f"s = SqliteStorage({str(db)!r}); s.load(); print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).parent.parent))
    try:
        assert holder.stdout.readline() == "open\n"
        for cmd in ("info", "logs", "state"):
            code, _, err = run(capsys, "operator", "raft", cmd, str(tmp_path))
            assert code == 1
            assert err.startswith("failed to open raft logs: unable to open raft logs that are in use "
                                  f"(process {holder.pid} holds {db}")
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert run(capsys, "operator", "raft", "info", str(tmp_path))[0] == 0  # released: readable again
    (tmp_path / "empty").mkdir()
    assert run(capsys, "operator", "raft", "info", str(tmp_path / "empty"))[2] == \
        f"no raft store (raft.db) found in {tmp_path / 'empty'}\n"
    (tmp_path / "bad.db").write_bytes(b"not sqlite")
    code, _, err = run(capsys, "operator", "raft", "logs", str(tmp_path / "bad.db"))
    assert code == 1 and "is corrupt" in err and str(tmp_path / "bad.db") in err
    assert run(capsys, "operator", "raft", "info")[2].startswith(
        "This command takes one argument: <path>")


# ---------------------------------------------------------------- operator snapshot state


def test_operator_snapshot_state_prints_the_archives_state(tmp_path: Path, capsys: Any) -> None:
    from actors.state import snapshot_archive
    from actors.state.store import StateStore, command

    st = StateStore()
    st.apply(1, command("kv_put", key="a", value=1))
    st.apply(2, command("upsert", table="nodes", record={"ID": "n1", "Name": "one", "Datacenter": "dc1"}))
    st.apply(3, command("upsert", table="nodes", record={"ID": "n2", "Name": "two", "Datacenter": "dc2"}))
    snap = tmp_path / "backup.snap"
    snap.write_bytes(snapshot_archive.encode(st.snapshot(), index=3, term=1, created_ms=1700000000000,
                                             voters=("10.0.0.1:4647",)))
    code, out, _ = run(capsys, "operator", "snapshot", "state", str(snap))
    got = json.loads(out)
    assert code == 0 and [n["ID"] for n in got["Nodes"]] == ["n1", "n2"]
    assert got["SnapshotMeta"][0]["ID"] == "1-3-1700000000000" and got["SnapshotMeta"][0]["Index"] == 3
    assert got["KV"] == [{"Key": "a", "Value": 1}] and {"Key": "nodes", "Value": 3} in got["Indexes"]
    got = json.loads(run(capsys, "operator", "snapshot", "state", "-filter", 'Datacenter == "dc2"',
                         str(snap))[1])
    assert [n["ID"] for n in got["Nodes"]] == ["n2"] and got["KV"] == [] and got["Indexes"]
    assert run(capsys, "operator", "snapshot", "state", "-filter", "Datacenter ==", str(snap))[2].startswith(
        'Invalid filter expression "Datacenter ==": ')
    (tmp_path / "bad.snap").write_bytes(b"junk")
    assert run(capsys, "operator", "snapshot", "state", str(tmp_path / "bad.snap"))[2].startswith(
        "Failed to read archive file: ")
    assert run(capsys, "operator", "snapshot", "state", str(tmp_path / "none.snap"))[2].startswith(
        "Error opening snapshot file: ")


def test_operator_snapshot_state_has_nomads_job_summaries_and_csi_tables(tmp_path: Path, capsys: Any) -> None:
    """Nomad's StateAsMap always carries JobSummaries, CSIPlugins and CSIVolumes (``jq .JobSummaries``)."""
    from actors.state import snapshot_archive
    from actors.state.store import StateStore, command

    st = StateStore()
    st.apply(1, command("upsert", table="jobs", record={
        "ID": "web", "Namespace": "default", "Type": "service", "Status": "running",
        "TaskGroups": [{"Name": "g", "Count": 1}]}))
    st.apply(2, command("upsert", table="allocs", record={
        "ID": "a1", "JobID": "web", "Namespace": "default", "TaskGroup": "g", "ClientStatus": "running",
        "DesiredStatus": "run"}))
    snap = tmp_path / "backup.snap"
    snap.write_bytes(snapshot_archive.encode(st.snapshot(), index=2, term=1, created_ms=1700000000000,
                                             voters=("10.0.0.1:4647",)))
    code, out, _ = run(capsys, "operator", "snapshot", "state", str(snap))
    got = json.loads(out)
    assert code == 0 and got["CSIPlugins"] == [] and got["CSIVolumes"] == []
    assert [(s["JobID"], s["Namespace"]) for s in got["JobSummaries"]] == [("web", "default")]
    assert got["JobSummaries"][0]["Summary"]["g"]["Running"] == 1


# ---------------------------------------------------------------- operator gossip keyring <subcommand>


def test_gossip_keyring_subcommands(capsys: Any, monkeypatch: Any) -> None:
    from runtime import cli_keyring
    from runtime.cli import ApiError

    calls = []

    def fake(addr: str, op: str, key: str) -> Any:
        calls.append((op, key))
        if key == "bad":
            raise ApiError("Unexpected response code: 500 (bad key)")
        return {"Keys": {"k2=": 3, "k1=": 3}, "NumNodes": 3} if op == "list" else None

    monkeypatch.setattr(cli_keyring, "_request", fake)
    assert run(capsys, "operator", "gossip", "keyring", "list") == \
        (0, "Gathering installed encryption keys...\nKey\nk1=\nk2=\n", "")
    assert run(capsys, "operator", "gossip", "keyring", "install", "new=") == \
        (0, "Installing new gossip encryption key...\n", "")
    assert run(capsys, "operator", "gossip", "keyring", "use", "new=")[1] == \
        "Changing primary gossip encryption key...\n"
    assert run(capsys, "operator", "gossip", "keyring", "remove", "k1=")[1] == \
        "Removing gossip encryption key...\n"
    assert calls == [("list", ""), ("install", "new="), ("use", "new="), ("remove", "k1=")]
    assert run(capsys, "operator", "gossip", "keyring", "install", "bad") == \
        (1, "Installing new gossip encryption key...\n", "error: Unexpected response code: 500 (bad key)\n")
    code, _, err = run(capsys, "operator", "gossip", "keyring", "use")
    assert code == 1 and err.startswith("This command requires one argument: <key>\n")
    code, _, err = run(capsys, "operator", "gossip", "keyring", "list", "x")
    assert code == 1 and err.startswith("This command takes no arguments\n")
    # the older flag form still works
    assert run(capsys, "operator", "gossip", "keyring", "-install", "old=")[0] == 0
    assert calls[-1] == ("install", "old=")


def test_operator_raft_reads_a_crashed_servers_wal_without_touching_it(tmp_path: Path, capsys: Any) -> None:
    import subprocess
    import sys

    db = tmp_path / "server" / "raft" / "raft.db"
    db.parent.mkdir(parents=True)
    code = ("import os; from actors.raft.sqlite_store import SqliteStorage; "
            "from actors.raft.messages import Entry; from actors.state.store import command; "
            f"s = SqliteStorage({str(db)!r}); s.load(); "
            "s.save(hard_state=(1, ''), "
            "entries=[Entry(term=1, index=1, data=command('kv_put', key='k', value=2))]); "
            "os._exit(0)")  # killed: the write is only in the -wal file
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30,
                   cwd=str(Path(__file__).parent.parent))
    wal = db.with_name("raft.db-wal")
    assert wal.exists()
    before = sorted(os.listdir(db.parent)), db.read_bytes(), wal.read_bytes()
    assert run(capsys, "operator", "raft", "info", str(tmp_path))[1].splitlines()[3] == "last index:  1"
    state = json.loads(run(capsys, "operator", "raft", "state", str(tmp_path))[1])
    assert state["KV"] == [{"Key": "k", "Value": 2}]
    assert (sorted(os.listdir(db.parent)), db.read_bytes(), wal.read_bytes()) == before
