"""``nomad tls ca create`` / ``nomad tls cert create``, and the CLI's own TLS (HTTPS to the agent).

As Nomad's ``command/tls_ca_create.go`` and ``tls_cert_create.go``, in the
current directory:

- ``tls ca create [-days 1825] [-domain nomad] [-common-name NAME]`` writes
  ``nomad-agent-ca.pem`` and ``nomad-agent-ca-key.pem``;
- ``tls cert create -server|-client|-cli [-region global] [-domain nomad]
  [-days 365] [-ca FILE] [-key FILE] [-additional-dnsname NAME]...
  [-additional-ipaddress IP]...`` writes ``<region>-<role>-<domain>.pem`` and
  ``...-key.pem``, signed by the CA, with the SANs ``<role>.<region>.<domain>``,
  ``localhost`` and (server and client) ``127.0.0.1``.

Keys are ECDSA P-256 (Nomad's default) and written 0600; an existing file is
never overwritten.  The HTTP helpers of :mod:`runtime.cli` speak HTTPS to an
``https://`` address with ``-ca-cert`` / ``-client-cert`` / ``-client-key``
(or ``NOMAD_CACERT`` / ``NOMAD_CLIENT_CERT`` / ``NOMAD_CLIENT_KEY``):
:func:`tls_handlers` builds the urllib handler.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import urllib.request
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TLS_COMMANDS", "TLS_FLAGS", "create_ca", "create_cert", "tls_handlers"]

CA_FILE = "nomad-agent-ca.pem"
CA_KEY_FILE = "nomad-agent-ca-key.pem"
CA_DAYS = 1825  # Nomad: -days for the CA (5 years)
CERT_DAYS = 365  # Nomad: -days for a certificate (1 year)
DOMAIN = "nomad"
# The CLI's TLS flags and the environment variables they default from (Nomad's meta.go).
TLS_FLAGS = {"-ca-cert": "NOMAD_CACERT", "-client-cert": "NOMAD_CLIENT_CERT",
             "-client-key": "NOMAD_CLIENT_KEY"}
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


def create_ca(directory: str = "", *, days: int = CA_DAYS, domain: str = DOMAIN,
              common_name: str = "") -> tuple[str, str]:
    """A self-signed CA for the cluster; returns (cert path, key path)."""
    cert_path, key_path = os.path.join(directory, CA_FILE), os.path.join(directory, CA_KEY_FILE)
    for p in (cert_path, key_path):
        if os.path.exists(p):
            raise _cli_error(f"{p} already exists.")
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = common_name or f"Nomad Agent CA {os.urandom(4).hex()}"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp Inc.")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
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


def tls_ca_create(addr: str, args: list[str]) -> str:
    opts = _options(args, (), ("-days", "-domain", "-common-name"))
    cert, key = create_ca(days=_int(opts, "-days", CA_DAYS), domain=opts.get("-domain", [DOMAIN])[-1],
                          common_name=opts.get("-common-name", [""])[-1])
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


TLS_COMMANDS = {
    ("tls", "ca", "create"): tls_ca_create,
    ("tls", "cert", "create"): tls_cert_create,
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
    try:
        ctx = ssl.create_default_context(cafile=ca or None)
        if cert or key:
            ctx.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as e:
        raise _cli_error(f"Error loading TLS files: {getattr(e, 'strerror', None) or e}") from None
    return [urllib.request.HTTPSHandler(context=ctx)]
