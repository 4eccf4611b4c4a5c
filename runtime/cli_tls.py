"""``nomad tls ca create`` / ``nomad tls cert create``, and the CLI's own TLS (HTTPS to the agent).

As Nomad's ``command/tls_ca_create.go`` and ``tls_cert_create.go``, in the
current directory:

- ``tls ca create [-days 1825] [-domain nomad] [-common-name NAME]`` writes
  ``nomad-agent-ca.pem`` and ``nomad-agent-ca-key.pem``;
- ``tls cert create -server|-client|-cli [-region global] [-domain nomad]
  [-days 365] [-ca FILE] [-key FILE] [-additional-dnsname NAME]...
  [-additional-ipaddress IP]...`` writes ``<region>-<role>-<domain>.pem`` and
  ``...-key.pem``, signed by the CA, with the SANs ``<role>.<region>.<domain>``,
  ``localhost`` and (server and client) ``127.0.0.1``;
- ``tls ca info <ca.pem>`` and ``tls cert info <cert.pem>`` print a
  certificate's serial number, issuer CN, subject, expiry and (CA) permitted
  DNS domains or (certificate) DNS names and IP addresses, as Nomad's
  ``tls_ca_info.go`` / ``tls_cert_info.go`` print them (Go's formatting of
  each value: the subject as ``pkix.Name.String``, the expiry as
  ``time.Time.String``, lists as ``[a b]``).

Keys are ECDSA P-256 (Nomad's default) and written 0600; an existing file is
never overwritten.  The HTTP helpers of :mod:`runtime.cli` speak HTTPS to an
``https://`` address with ``-ca-cert`` / ``-client-cert`` / ``-client-key``
(or ``NOMAD_CACERT`` / ``NOMAD_CLIENT_CERT`` / ``NOMAD_CLIENT_KEY``):
:func:`tls_handlers` builds the urllib handler.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import http.client
import importlib
import ipaddress
import os
import re
import ssl
import urllib.request
from typing import Any


class _Lazy:
    """A module of cryptography's (or a name in one), imported when first used: every CLI command
    imports this module for its TLS flags, and only ``tls ca|cert`` and certificate errors need
    cryptography (~25 ms of each command's start)."""

    def __init__(self, module: str, name: str = "") -> None:
        self._where = (module, name)

    def __getattr__(self, attr: str) -> Any:
        module, name = self._where
        target = importlib.import_module(module)
        return getattr(getattr(target, name) if name else target, attr)


x509: Any = _Lazy("cryptography.x509")
hashes: Any = _Lazy("cryptography.hazmat.primitives.hashes")
serialization: Any = _Lazy("cryptography.hazmat.primitives.serialization")
ec: Any = _Lazy("cryptography.hazmat.primitives.asymmetric.ec")
ExtendedKeyUsageOID: Any = _Lazy("cryptography.x509.oid", "ExtendedKeyUsageOID")
NameOID: Any = _Lazy("cryptography.x509.oid", "NameOID")

__all__ = ["TLS_BOOL_FLAGS", "TLS_COMMANDS", "TLS_FLAGS", "cert_info", "create_ca", "create_cert", "go_name",
           "go_tls_error", "parse_pem_cert", "tls_handlers"]

CA_FILE = "nomad-agent-ca.pem"
CA_KEY_FILE = "nomad-agent-ca-key.pem"
CA_DAYS = 1825  # Nomad: -days for the CA (5 years)
CERT_DAYS = 365  # Nomad: -days for a certificate (1 year)
DOMAIN = "nomad"
# The CLI's TLS flags and the environment variables they default from (Nomad's meta.go).
TLS_FLAGS = {"-ca-cert": "NOMAD_CACERT", "-ca-path": "NOMAD_CAPATH", "-client-cert": "NOMAD_CLIENT_CERT",
             "-client-key": "NOMAD_CLIENT_KEY", "-tls-server-name": "NOMAD_TLS_SERVER_NAME"}
TLS_BOOL_FLAGS = {"-tls-skip-verify": "NOMAD_SKIP_VERIFY"}  # Go's ParseBool: 1, t, true, 0, f, false
SERVER_WARNING = ("==> WARNING: Server Certificates grants authority to become a server and access "
                  "all state in the cluster including root keys and all ACL tokens. Do not "
                  "distribute them to production hosts that are not server nodes. Store them as "
                  "securely as CA keys.")


def _cli_error(message: str) -> Exception:
    from runtime.cli import CliError

    return CliError(message)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_new(path: str, data: bytes, mode: int) -> None:
    """Create *path* (never overwrite, as Nomad refuses) with *mode*."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise _cli_error(f"{path} already exists.") from None
    except OSError as e:
        raise _cli_error(f"Error writing {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


# Nomad's GenerateCA subject when none of its fields is given (helper/tlsutil/generate.go).
CA_SUBJECT_DEFAULTS = {"country": "US", "postal_code": "94105", "province": "CA", "locality": "San Francisco",
                       "street_address": "101 Second Street", "organization": "HashiCorp Inc.",
                       "organizational_unit": "Nomad"}


def create_ca(directory: str = "", *, days: int = CA_DAYS, domain: str = DOMAIN, common_name: str = "",
              subject: dict[str, str] | None = None,
              permitted_domains: tuple[str, ...] = ()) -> tuple[str, str]:
    """A self-signed CA for the cluster (``<domain>-agent-ca.pem`` and its key); returns (cert path, key
    path).  As Nomad's GenerateCA: the subject is Nomad's defaults unless *subject* (country,
    postal_code, province, locality, street_address, organization, organizational_unit) gives its
    own; the common name ("Nomad Agent CA" by default) ends with the serial number; with
    *permitted_domains* the CA may only sign names in those DNS zones (a critical name constraint)."""
    cert_path = os.path.join(directory, f"{domain}-agent-ca.pem")
    key_path = os.path.join(directory, f"{domain}-agent-ca-key.pem")
    if os.path.exists(cert_path):
        raise _cli_error(f"CA certificate file '{cert_path}' already exists")
    if os.path.exists(key_path):
        raise _cli_error(f"CA key file '{key_path}' already exists")
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    fields = CA_SUBJECT_DEFAULTS if subject is None else {k: subject.get(k, "") for k in CA_SUBJECT_DEFAULTS}
    common_name = f"{common_name or 'Nomad Agent CA'} {serial}"
    oids = (("country", NameOID.COUNTRY_NAME), ("postal_code", NameOID.POSTAL_CODE),
            ("province", NameOID.STATE_OR_PROVINCE_NAME), ("locality", NameOID.LOCALITY_NAME),
            ("street_address", NameOID.STREET_ADDRESS), ("organization", NameOID.ORGANIZATION_NAME),
            ("organizational_unit", NameOID.ORGANIZATIONAL_UNIT_NAME))
    name = x509.Name([*(x509.NameAttribute(oid, fields[k]) for k, oid in oids if fields.get(k)),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = x509.CertificateBuilder()
    if permitted_domains:
        builder = builder.add_extension(x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(d) for d in permitted_domains], excluded_subtrees=None),
            critical=True)
    cert = (builder.subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_new(key_path, _key_pem(key), 0o600)
    return cert_path, key_path


def create_cert(role: str, directory: str = "", *, region: str = "global", domain: str = DOMAIN,
                days: int = CERT_DAYS, ca_file: str = CA_FILE, ca_key_file: str = CA_KEY_FILE,
                dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = ()) -> tuple[str, str]:
    """A certificate for *role* (server, client, cli) signed by the CA; returns (cert path, key path)."""
    if role not in ("server", "client", "cli"):
        raise _cli_error(f"unknown role {role!r}")
    prefix = f"{region}-{role}-{domain}"
    cert_path = os.path.join(directory, prefix + ".pem")
    key_path = os.path.join(directory, prefix + "-key.pem")
    for p in (cert_path, key_path):
        if os.path.exists(p):
            raise _cli_error(f"{p} already exists.")
    ca_cert, ca_key = _load_ca(ca_file, ca_key_file)
    name = f"{role}.{region}.{domain}"
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in (name, "localhost", *dns_names)]
    ips = (*(("127.0.0.1",) if role != "cli" else ()), *ip_addresses)
    try:
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    except ValueError as e:
        raise _cli_error(f"-additional-ipaddress: {e}") from None
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if role != "cli" else [])
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_new(key_path, _key_pem(key), 0o600)
    return cert_path, key_path


def _load_ca(ca_file: str, ca_key_file: str) -> tuple[x509.Certificate, Any]:
    try:
        with open(ca_file, "rb") as fh:
            ca_cert = x509.load_pem_x509_certificate(fh.read())
        with open(ca_key_file, "rb") as fh:
            ca_key = serialization.load_pem_private_key(fh.read(), password=None)
    except OSError as e:
        raise _cli_error(f"Error reading CA: {e.filename}: {e.strerror or e}") from None
    except ValueError as e:
        raise _cli_error(f"Error reading CA: {e}") from None
    return ca_cert, ca_key


# ---------------------------------------------------------------- commands


def _options(args: list[str], flags: tuple[str, ...], valued: tuple[str, ...]) -> dict[str, list[str]]:
    """``-flag``, ``-opt value`` and ``-opt=value``; repeated options accumulate."""
    out: dict[str, list[str]] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if name in flags and not eq:
            out[name] = ["true"]
        elif name in valued:
            if not eq:
                if not rest:
                    raise _cli_error(f"flag needs an argument: {name}")
                value = rest.pop(0)
            out.setdefault(name, []).append(value)
        else:
            raise _cli_error(f"unknown argument {arg!r}")
    return out


def _int(opts: dict[str, list[str]], name: str, default: int) -> int:
    if name not in opts:
        return default
    try:
        value = int(opts[name][-1])
    except ValueError:
        raise _cli_error(f"{name}: expected a number of days, got {opts[name][-1]!r}") from None
    if value <= 0:
        raise _cli_error(f"{name}: must be > 0")
    return value


_CA_FIELDS = ("-country", "-postal-code", "-province", "-locality", "-street-address", "-organization",
              "-organizational-unit")


def tls_ca_create(addr: str, args: list[str]) -> str:
    """``nomad tls ca create``, as Nomad's: Nomad's default subject, or (any subject flag given) the
    operator's, which then needs -common-name, -country, -organization and -organizational-unit;
    ``-name-constraint`` limits the CA to -domain, localhost, nomad and each -additional-domain."""
    opts = _options(args, ("-name-constraint",),
                    ("-days", "-domain", "-common-name", "-additional-domain", *_CA_FIELDS))
    last = {k: v[-1] for k, v in opts.items()}
    custom = any(last.get(k) for k in ("-common-name", *_CA_FIELDS))
    if custom:
        for flag in ("-common-name", "-country", "-organization", "-organizational-unit"):
            if not last.get(flag):
                raise _cli_error(f"Please provide the {flag} flag when customizing the CA")
    domain, constraint = last.get("-domain", DOMAIN), "-name-constraint" in opts
    if domain and domain != DOMAIN and not constraint:
        raise _cli_error("Please provide the -name-constraint flag to use a custom domain constraint")
    if domain == DOMAIN and constraint:
        raise _cli_error("Please provide the -domain flag if you want to enable custom domain constraints")
    if opts.get("-additional-domain") and not domain and not constraint:
        raise _cli_error("Please provide the -name-constraint flag to use a custom domain constraints")
    permitted = (domain, "localhost", "nomad", *opts.get("-additional-domain", ())) if constraint else ()
    subject = {k[1:].replace("-", "_"): last.get(k, "") for k in _CA_FIELDS} if custom else None
    cert, key = create_ca(days=_int(opts, "-days", CA_DAYS), domain=domain,
                          common_name=last.get("-common-name", ""), subject=subject,
                          permitted_domains=permitted)
    return f"==> CA certificate saved to: {cert}\n==> CA certificate key saved to: {key}"


def tls_cert_create(addr: str, args: list[str]) -> str:
    opts = _options(args, ("-server", "-client", "-cli"),
                    ("-region", "-domain", "-days", "-ca", "-key", "-additional-dnsname",
                     "-additional-ipaddress"))
    roles = [r for r in ("server", "client", "cli") if f"-{r}" in opts]
    if len(roles) != 1:
        raise _cli_error("Please provide either -server, -client, or -cli")
    role = roles[0]
    ca, ca_key = opts.get("-ca", [CA_FILE])[-1], opts.get("-key", [CA_KEY_FILE])[-1]
    cert, key = create_cert(role, region=opts.get("-region", ["global"])[-1],
                            domain=opts.get("-domain", [DOMAIN])[-1], days=_int(opts, "-days", CERT_DAYS),
                            ca_file=ca, ca_key_file=ca_key,
                            dns_names=tuple(opts.get("-additional-dnsname", ())),
                            ip_addresses=tuple(opts.get("-additional-ipaddress", ())))
    title = {"server": "Server", "client": "Client", "cli": "Cli"}[role]
    lines = [SERVER_WARNING] if role == "server" else []
    lines += [f"==> Using CA file {ca} and CA key {ca_key}",
              f"==> {title} Certificate saved to {cert}",
              f"==> {title} Certificate key saved to {key}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- tls ca info / tls cert info

_PEM_BLOCK = re.compile(rb"-----BEGIN ([^-\r\n]*)-----\r?\n(.*?)-----END \1-----", re.S)
# Go's pkix attributeTypeNames: the attributes RDNSequence.String names; others print as OID=#<DER hex>.
_GO_ATTR_NAMES = {"2.5.4.6": "C", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.3": "CN",
                  "2.5.4.5": "SERIALNUMBER", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "STREET",
                  "2.5.4.17": "POSTALCODE"}
# pkix.Name.ToRDNSequence's order (reversed when printed); these are "already parsed into named fields".
_GO_NAME_ORDER = ("2.5.4.6", "2.5.4.8", "2.5.4.7", "2.5.4.9", "2.5.4.17", "2.5.4.10", "2.5.4.11", "2.5.4.3",
                  "2.5.4.5")
_GO_PARSED = frozenset({"2.5.4.3", "2.5.4.5", "2.5.4.6", "2.5.4.7", "2.5.4.8", "2.5.4.9", "2.5.4.10",
                        "2.5.4.11", "2.5.4.17"})


def parse_pem_cert(text: bytes) -> x509.Certificate:
    """Nomad's ``tlsutil.ParseCert``: the first PEM block, which must be a CERTIFICATE."""
    block = None
    for m in _PEM_BLOCK.finditer(text):  # pem.Decode: the first block that decodes
        body = b"".join(line for line in m.group(2).split() if b":" not in line)  # headers skipped
        try:
            block = (m.group(1).decode(errors="replace"), base64.b64decode(body, validate=True))
            break
        except (binascii.Error, ValueError):
            continue
    if block is None:
        raise _cli_error("no PEM-encoded data found")
    if block[0] != "CERTIFICATE":
        raise _cli_error("first PEM-block should be CERTIFICATE type")
    try:
        return x509.load_der_x509_certificate(block[1])
    except ValueError as e:
        raise _cli_error(f"x509: malformed certificate ({e})") from None


def _go_escape(value: str) -> str:
    out = []
    for i, c in enumerate(value):
        if c in ',+"\\<>;' or (c == " " and i in (0, len(value) - 1)) or (c == "#" and i == 0):
            out.append("\\")
        out.append(c)
    return "".join(out)


def _der_string(attr: x509.NameAttribute) -> str:
    """asn1.Marshal of a parsed string value, as Go prints an unnamed attribute: PrintableString when
    every character is printable, else UTF8String."""
    raw = str(attr.value).encode()
    printable = all((c.isalnum() and c.isascii()) or c in " '()+,-./:=?" for c in str(attr.value))
    tag = 0x13 if printable else 0x0C
    n = len(raw)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + \
        n.to_bytes((n.bit_length() + 7) // 8, "big")
    return (bytes([tag]) + length + raw).hex()


def go_name(name: x509.Name) -> str:
    """Go's ``pkix.Name.String()`` of a parsed certificate name."""
    attrs = [a for rdn in name.rdns for a in rdn]
    rdns: list[list[str]] = []
    for a in attrs:  # attributes without a named field come first, so they print last
        oid = a.oid.dotted_string
        if oid not in _GO_PARSED:
            rdns.append([f"{oid}=#{_der_string(a)}"])
    for oid in _GO_NAME_ORDER:
        values = [str(a.value) for a in attrs if a.oid.dotted_string == oid]
        if oid in ("2.5.4.3", "2.5.4.5"):
            values = values[-1:]  # Go keeps one CommonName and one SerialNumber: the last parsed
        if values:
            rdns.append([f"{_GO_ATTR_NAMES[oid]}={_go_escape(v)}" for v in values])
    return ",".join("+".join(r) for r in reversed(rdns))


def _go_common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[-1].value) if values else ""


def _go_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def _extension(cert: x509.Certificate, cls: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def cert_info(cert: x509.Certificate, *, ca: bool) -> str:
    """Nomad's table of a certificate's fields (``columnize.SimpleFormat``)."""
    not_after = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
    rows = [["Serial Number", str(cert.serial_number)], ["Issuer CN", _go_common_name(cert.issuer)],
            ["Common Name", go_name(cert.subject)], ["Expiry Date", not_after]]
    if ca:
        nc = _extension(cert, x509.NameConstraints)
        subtrees = (nc.permitted_subtrees or []) if nc else []
        permitted = [t.value for t in subtrees if isinstance(t, x509.DNSName)]
        rows.append(["Permitted DNS Domains", _go_list(permitted)])
    else:
        san = _extension(cert, x509.SubjectAlternativeName)
        dns = san.get_values_for_type(x509.DNSName) if san else []
        ips = [_go_ip(ip) for ip in san.get_values_for_type(x509.IPAddress)] if san else []
        rows += [["DNS Names", _go_list(dns)], ["IP Addresses", _go_list(ips)]]
    from runtime.cli import table

    return table(rows)


def _info(args: list[str], *, ca: bool) -> str:
    from runtime.cli_jobs import parse_flags

    _, rest = parse_flags(args, {})
    if len(rest) > 1:
        raise _cli_error("This command takes up to one argument\n"
                         "For additional help try 'nomad tls cert info -help'")  # Nomad's Name() for both
    what = "CA file" if ca else "certificate file"
    if not rest:
        if ca:  # Nomad's message when no file is named (its error value is nil)
            raise _cli_error("Error reading CA file: <nil>")
        text = b""
    else:
        try:
            with open(rest[0], "rb") as fh:
                text = fh.read()
        except OSError as e:
            reason = (e.strerror or str(e))
            reason = reason[:1].lower() + reason[1:]  # Go's syscall error text
            raise _cli_error(f"Error reading {what}: open {rest[0]}: {reason}") from None
    return cert_info(parse_pem_cert(text), ca=ca)


def tls_ca_info(addr: str, args: list[str]) -> str:
    return _info(args, ca=True)


def tls_cert_info(addr: str, args: list[str]) -> str:
    return _info(args, ca=False)


TLS_COMMANDS = {
    ("tls", "ca", "create"): tls_ca_create,
    ("tls", "cert", "create"): tls_cert_create,
    ("tls", "ca", "info"): tls_ca_info,
    ("tls", "cert", "info"): tls_cert_info,
}


# ---------------------------------------------------------------- HTTPS for the CLI


def tls_handlers(addr: str, files: dict[str, str]) -> list[urllib.request.BaseHandler]:
    """The urllib handler for an ``https://`` agent: our CA and, when given, our client certificate.

    *files* maps the flags of :data:`TLS_FLAGS` to paths ("" or absent: not
    set).  Without ``-ca-cert`` the system's CAs are used, as Nomad's CLI
    does.  An ``http://`` address needs none.
    """
    if not addr.lower().startswith("https://"):
        return []
    ca, cert, key = files.get("-ca-cert", ""), files.get("-client-cert", ""), files.get("-client-key", "")
    skip = files.get("-tls-skip-verify", "").strip().lower()
    if skip not in ("", "1", "t", "true", "0", "f", "false"):
        raise _cli_error(f'invalid boolean value "{skip}" for -tls-skip-verify')
    # Nomad's api.NewClient configures TLS (client pair first, then the CAs) and a command prints
    # "Error initializing client: " and Go's error.
    try:
        if cert or key:
            _load_client_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert, key)
        ctx = ssl.create_default_context(cadata=_read_ca_file(ca) if ca else None)
        if not ca and files.get("-ca-path"):  # -ca-cert wins, as go-rootcerts' LoadCACerts
            _load_ca_path(ctx, files["-ca-path"])
        if cert or key:
            ctx.load_cert_chain(cert, key)
    except _GoError as e:
        raise _cli_error(f"Error initializing client: {e}") from None
    if skip in ("1", "t", "true"):  # Nomad's -tls-skip-verify: no check of the agent's certificate at all
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if name := files.get("-tls-server-name", ""):
        return [_ServerNameHTTPSHandler(ctx, name)]
    return [urllib.request.HTTPSHandler(context=ctx)]


class _GoError(Exception):
    """A TLS file problem, worded as Go's errors (and go-rootcerts') word it."""


def _go_os_error(op: str, path: str, e: OSError) -> _GoError:
    """Go's ``*PathError`` text: ``open /x: no such file or directory``."""
    return _GoError(f"{op} {path}: {(e.strerror or str(e)).lower()}")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError as e:  # Go opens a directory, then fails to read it
        raise _go_os_error("read", path, e) from None
    except OSError as e:
        raise _go_os_error("open", path, e) from None


def _read_ca_file(path: str) -> str:
    """go-rootcerts' LoadCAFile: the file must hold at least one PEM certificate."""
    return _read_ca(path, read_error="Error loading CA File", parse_error="Error loading CA File")


def _read_ca(path: str, *, read_error: str, parse_error: str) -> str:
    """A CA file's PEM text, or go-rootcerts' error under the wording of the caller (a file, a path)."""
    try:
        pem = _read(path)
    except _GoError as e:
        raise _GoError(f"{read_error}: {e}") from None
    text = pem.decode("ascii", errors="replace")
    if "-----BEGIN CERTIFICATE-----" not in text or not _loads(text):
        raise _GoError(f"{parse_error}: Couldn't parse PEM in: {path}")
    return text


def _loads(cadata: str) -> bool:
    try:
        ssl.create_default_context(cadata=cadata)
        return True
    except (ssl.SSLError, ValueError):
        return False


def _load_client_pair(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    """Nomad's api ConfigureTLS: both files or neither; then Go's tls.LoadX509KeyPair errors."""
    if not (cert and key):
        raise _GoError("Both client cert and client key must be provided")
    if b"-----BEGIN" not in _read(cert):
        raise _GoError("tls: failed to find any PEM data in certificate input")
    if b"-----BEGIN" not in _read(key):
        raise _GoError("tls: failed to find any PEM data in key input")
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError):  # both read and hold PEM: the key is not the certificate's
        raise _GoError("tls: private key does not match public key") from None


def _load_ca_path(ctx: ssl.SSLContext, directory: str) -> None:
    """Trust every PEM file under *directory*, whatever its name (go-rootcerts' LoadCAPath; OpenSSL's
    own capath finds only hashed names).  A file without a PEM certificate is refused, as there."""
    def fail(e: OSError) -> None:
        raise _go_os_error("lstat", e.filename or directory, e)

    try:
        os.lstat(directory)
    except OSError as e:
        raise _go_os_error("lstat", directory, e) from None
    for root, dirs, names in os.walk(directory, onerror=fail):
        dirs.sort()
        for name in sorted(names):
            text = _read_ca(os.path.join(root, name), read_error="Error loading file from CAPath",
                            parse_error="Error loading CA Path")
            ctx.load_verify_locations(cadata=text)


class _ServerNameHTTPSHandler(urllib.request.HTTPSHandler):
    """HTTPS whose certificate is checked against *server_name* (``-tls-server-name``, also sent as SNI)
    instead of the address's host: e.g. ``server.global.nomad`` when dialling an agent by IP."""

    def __init__(self, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(context=context)
        self._server_name = server_name

    def https_open(self, req: urllib.request.Request) -> Any:
        ctx, name = self._context, self._server_name  # type: ignore[attr-defined]

        class Conn(http.client.HTTPSConnection):
            def connect(self) -> None:
                http.client.HTTPConnection.connect(self)
                self.sock = ctx.wrap_socket(self.sock, server_hostname=name)

        return self.do_open(Conn, req, context=ctx)


# -- TLS failures as Go's http client words them --------------------------------------------------

# OpenSSL's verify codes for a chain that does not lead to a trusted CA: Go's x509.UnknownAuthorityError.
_UNKNOWN_AUTHORITY = frozenset({2, 18, 19, 20, 21})
_EXPIRED, _NOT_YET_VALID, _HOST_MISMATCH, _IP_MISMATCH = 10, 9, 62, 64
# An alert the agent sent (OpenSSL's reason) -> Go's alert text (crypto/tls alert.go).
_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate required",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown certificate authority",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "handshake failure",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol version not supported",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "expired certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "unknown certificate",
    "TLSV1_ALERT_DECRYPT_ERROR": "error decrypting message",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
}
# How long the CLI waits for the agent's certificate when it describes a name mismatch or an expiry.
CERT_FETCH_TIMEOUT_S = 5.0  # a failed command's message only; the agent already answered a handshake


def go_tls_error(e: BaseException, url: str) -> str | None:
    """Go's wording of a TLS failure talking to *url* (what ``Get "<url>": ...`` ends with), or None.

    ``tls: failed to verify certificate: x509: ...`` for the agent's
    certificate (unknown authority, a name it does not hold, expired),
    ``remote error: tls: <alert>`` for an alert the agent sent (a client
    certificate missing or not from its CA), ``http: server gave HTTP
    response to HTTPS client`` for an agent serving plain HTTP, ``EOF`` for a
    connection closed in the handshake.
    """
    if isinstance(e, ssl.SSLCertVerificationError):
        code = e.verify_code
        if code in _UNKNOWN_AUTHORITY:
            detail = "certificate signed by unknown authority"
        elif code in (_HOST_MISMATCH, _IP_MISMATCH, _EXPIRED, _NOT_YET_VALID):
            detail = _cert_detail(code, str(e.verify_message or ""), url)
            if detail is None:
                return None
        else:
            return None
        return f"tls: failed to verify certificate: x509: {detail}"
    if isinstance(e, ssl.SSLEOFError):
        return "EOF"
    if isinstance(e, ssl.SSLError):
        if e.reason in _ALERTS:
            return f"remote error: tls: {_ALERTS[e.reason]}"
        if e.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"):
            return "http: server gave HTTP response to HTTPS client"
    return None


def _cert_detail(code: int, message: str, url: str) -> str | None:
    """x509's HostnameError / CertificateInvalidError(Expired) text, read from the agent's certificate."""
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # only to read the certificate
    try:
        address = (parts.hostname, parts.port or 443)
        with socket.create_connection(address, timeout=CERT_FETCH_TIMEOUT_S) as raw:
            with ctx.wrap_socket(raw, server_hostname=parts.hostname) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    if code in (_EXPIRED, _NOT_YET_VALID):
        now = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
        if code == _EXPIRED:
            return (f"certificate has expired or is not yet valid: current time {now} is after "
                    f"{cert.not_valid_after_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        return (f"certificate has expired or is not yet valid: current time {now} is before "
                f"{cert.not_valid_before_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    m = re.search(r"not valid for '([^']*)'", message)
    if not m:
        return None
    host = m.group(1)
    san = _extension(cert, x509.SubjectAlternativeName)
    dns = san.get_values_for_type(x509.DNSName) if san is not None else []
    ips = [_go_ip(ip) for ip in san.get_values_for_type(x509.IPAddress)] if san is not None else []
    try:
        ipaddress.ip_address(host)
        if not ips:
            return f"cannot validate certificate for {host} because it doesn't contain any IP SANs"
        valid = ", ".join(ips)
    except ValueError:
        valid = ", ".join(dns)
    if not valid:
        return f"certificate is not valid for any names, but wanted to match {host}"
    return f"certificate is valid for {valid}, not {host}"
