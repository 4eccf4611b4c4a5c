"""The artifacts' edge: http and https downloads into task directories (see ``actors.client.artifacts``).

``HttpArtifactFetcher.fetch(artifacts, limits, notify)`` fetches the
artifacts, in order, in a greenlet of its own and returns at once; the
greenlet calls ``notify(fetched, error)`` once, when it ends.  The agent
process is monkey-patched, so the download yields to the other greenlets;
unpacking (CPU and disk work) runs in gevent's threadpool.

One artifact, as go-getter fetches an http source for Nomad:

* the artifact's options go on the URL's query; ``checksum`` (``type:hex``,
  md5/sha1/sha256/sha512) and ``archive`` (``false``: never unpack; or the
  archive type to unpack as) are taken off it and used here;
* a plain GET with the artifact's headers, following redirects (up to 10);
  any answer but 200 fails (``bad response code: 404``); more than
  ``max_bytes`` fails, as does taking longer than ``timeout_s``;
* the checksum, when given, must match what was downloaded;
* mode ``any``: an archive -- by the URL path's extension, ``.tar.gz``/
  ``.tgz``, ``.tar.bz2``/``.tbz2``, ``.tar.xz``/``.txz``, ``.tar``, ``.zip``
  -- is unpacked into the destination directory, a ``.gz``/``.bz2``/``.xz``
  file is decompressed into it, and anything else is written there under
  its URL's file name; mode ``dir``: the same, an archive only; mode
  ``file``: the download is written, as it is, at the destination path.

Nothing lands outside the allocation's directory: the destination is
checked after the directories on its way are made (a task may have left a
symbolic link there), an archive member whose path or link leaves the
destination fails the artifact, and what an archive unpacks to is bounded
in bytes and in files (a zip bomb fails, it does not fill the disk).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.client
import lzma
import os
import posixpath
import pwd
import ssl
import stat
import tarfile
import tempfile
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any

import gevent

from actors.client.artifacts import ArtifactFetch, FetchLimits, failure_message
from runtime.probes import net_error_text

_TLS = ssl.create_default_context()  # made once: building one per download reads the CA bundle each time
_TLS_NO_VERIFY = ssl.create_default_context()  # an artifact's insecure (go-getter's): no certificate check
_TLS_NO_VERIFY.check_hostname = False
_TLS_NO_VERIFY.verify_mode = ssl.CERT_NONE
MAX_REDIRECTS = 10  # Go's http.Client follows at most 10 redirects
_REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024
# go-getter's decompressors, by extension (longest first).
ARCHIVES = (("tar.gz", "tar.gz"), ("tgz", "tar.gz"), ("tar.bz2", "tar.bz2"), ("tbz2", "tar.bz2"),
            ("tar.xz", "tar.xz"), ("txz", "tar.xz"), ("tar", "tar"), ("zip", "zip"), ("gz", "gz"),
            ("bz2", "bz2"), ("xz", "xz"))
_TAR_MODES = {"tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz", "tar": "r:"}
_SINGLE = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}


class ArtifactError(Exception):
    """The artifact could not be fetched; the message says why (Nomad's DownloadError then names it)."""


def fetch_artifact(a: ArtifactFetch, limits: FetchLimits, *,
                   unpack: Callable[..., None] | None = None) -> None:
    """Fetch one artifact (blocking; bounded by *limits* but for the time, which the caller bounds).

    *unpack* runs :func:`place` -- the disk work -- (the fetcher passes its threadpool's ``apply``).
    """
    url, checksum, archive = _url(a)
    os.makedirs(a.root, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=a.root, prefix=".artifact-")
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(url, dict(a.headers), limits, out, checksum[0] if checksum else "sha256",
                               tls=_TLS_NO_VERIFY if a.insecure else _TLS)
        if checksum and digest != checksum[1].lower():
            raise ArtifactError(f"checksums did not match: expected {checksum[0]}:{checksum[1].lower()}, "
                                f"got {checksum[0]}:{digest}")
        name = posixpath.basename(urllib.parse.urlsplit(url).path.rstrip("/")) or "artifact"
        if unpack is None:
            place(a, tmp, name, archive, limits)
        else:
            unpack(place, (a, tmp, name, archive, limits))
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _url(a: ArtifactFetch) -> tuple[str, tuple[str, str] | None, str]:
    """(URL to GET, (checksum type, hex) or None, archive type or "" or "false")."""
    u = urllib.parse.urlsplit(a.source)
    if u.scheme.lower() not in ("http", "https") or not u.hostname:
        raise ArtifactError("only http and https URLs are fetched by this agent")
    query = urllib.parse.parse_qsl(u.query, keep_blank_values=True) + list(a.options)
    checksum, archive, rest = "", "", []
    for k, v in query:
        if k == "checksum":
            checksum = v.strip()
        elif k == "archive":
            archive = v.strip().lower()
        else:
            rest.append((k, v))
    url = urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, urllib.parse.urlencode(rest), ""))
    pair = None
    if checksum:
        kind, _, value = checksum.partition(":")
        if kind not in ("md5", "sha1", "sha256", "sha512") or not value:
            raise ArtifactError(f'checksum must be given as "type:value" (md5, sha1, sha256 or sha512); '
                                f'got "{checksum}"')
        pair = (kind, value)
    if archive in ("", "false"):
        kind = archive
    else:
        kind = next((k for ext, k in ARCHIVES if archive == ext), "")
        if not kind:
            raise ArtifactError(f'unknown archive type "{archive}"')
    if not kind:
        path = u.path.lower()
        kind = next((k for ext, k in ARCHIVES if path.endswith("." + ext)), "")
    return url, pair, kind


def _download(url: str, headers: dict[str, str], limits: FetchLimits, out: IO[bytes], algo: str,
              tls: ssl.SSLContext = _TLS) -> str:
    """GET *url* into *out*, following redirects; the hex digest of what was written."""
    for _ in range(MAX_REDIRECTS + 1):
        u = urllib.parse.urlsplit(url)
        if u.scheme.lower() not in ("http", "https") or not u.hostname:
            raise ArtifactError(f"redirected to {url!r}: only http and https URLs are fetched")
        conn: http.client.HTTPConnection
        if u.scheme.lower() == "https":
            conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=limits.timeout_s,
                                               context=tls)
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=limits.timeout_s)
        try:
            try:
                conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""), headers=headers)
                resp = conn.getresponse()
                location = resp.getheader("Location") or ""
                if resp.status in _REDIRECTS and location:
                    url = urllib.parse.urljoin(url, location)
                    continue
                if resp.status != 200:
                    raise ArtifactError(f"bad response code: {resp.status}")
                return _body(resp, limits.max_bytes, out, algo)
            except (OSError, http.client.HTTPException) as e:
                raise ArtifactError(f'GET "{url}": {net_error_text(e)}') from None
        finally:
            conn.close()
    raise ArtifactError(f'GET "{url}": stopped after {MAX_REDIRECTS} redirects')


def _body(resp: http.client.HTTPResponse, max_bytes: int, out: IO[bytes], algo: str) -> str:
    too_big = f"the download is larger than this client's artifact_max_bytes ({max_bytes} bytes)"
    length = resp.getheader("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise ArtifactError(too_big)
    h = hashlib.new(algo)
    total = 0
    while chunk := resp.read(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise ArtifactError(too_big)
        h.update(chunk)
        out.write(chunk)
    return h.hexdigest()


# ------------------------------------------------------------ placing what was downloaded
def _inside(root: str, path: str) -> bool:
    root, path = os.path.realpath(root), os.path.realpath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _make_dir(root: str, path: str) -> None:
    """*path* and the directories on its way made; none of it may resolve outside *root*."""
    if not _inside(root, path):
        raise ArtifactError("destination escapes allocation directory")
    os.makedirs(path, mode=0o755, exist_ok=True)
    if not _inside(root, path):  # a link on the way (the task's, from before) points out of it
        raise ArtifactError("destination escapes allocation directory")


def place(a: ArtifactFetch, tmp: str, name: str, archive: str, limits: FetchLimits) -> None:
    """Move or unpack the downloaded file *tmp* to the artifact's destination (blocking disk work), then
    chown it to the task's user if the artifact says so."""
    _place(a, tmp, name, archive, limits)
    if a.chown_user:
        chown_destination(a.dest, a.chown_user)


def chown_destination(dest: str, user: str) -> None:
    """Nomad's chownDestination: *dest* and everything under it become *user*'s (uid and primary gid);
    only an agent running as root does it.  Links are changed, never followed."""
    if os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise ArtifactError(f"failed to chown artifact: user: unknown user {user}") from None
    os.chown(dest, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    if os.path.isdir(dest) and not os.path.islink(dest):
        for top, dirs, files in os.walk(dest):
            for name in dirs + files:
                os.chown(os.path.join(top, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def _place(a: ArtifactFetch, tmp: str, name: str, archive: str, limits: FetchLimits) -> None:
    if a.mode == "file":
        _make_dir(a.root, os.path.dirname(a.dest))
        _move(tmp, a.dest)
        return
    if archive in ("", "false"):
        if a.mode == "dir":
            raise ArtifactError('mode "dir" needs an archive (.tar.gz, .tgz, .zip, .tar, ...)')
        _make_dir(a.root, a.dest)
        _move(tmp, os.path.join(a.dest, name))
        return
    _make_dir(a.root, a.dest)
    if archive in _TAR_MODES:
        _untar(tmp, _TAR_MODES[archive], a.dest, limits)
    elif archive == "zip":
        _unzip(tmp, a.dest, limits)
    else:
        base = name[: -len(archive) - 1] if name.lower().endswith("." + archive) else name
        target = os.path.join(a.dest, base or "artifact")
        _decompress(_SINGLE[archive], tmp, target, limits.max_unpacked_bytes)


def _move(tmp: str, target: str) -> None:
    if os.path.isdir(target) and not os.path.islink(target):
        raise ArtifactError(f"{target} is a directory")
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a task running as another user
    os.replace(tmp, target)  # replaces a link there, never writes through it


def _escapes(name: str) -> bool:
    rel = posixpath.normpath(name.replace("\\", "/"))
    return name.startswith(("/", "\\")) or rel == ".." or rel.startswith("../")


def _limits(count: int, size: int, limits: FetchLimits) -> None:
    if count > limits.max_unpacked_files:
        raise ArtifactError(f"the archive holds {count} files, more than this client's "
                            f"artifact_max_unpacked_files ({limits.max_unpacked_files})")
    if size > limits.max_unpacked_bytes:
        raise ArtifactError(f"the archive unpacks to {size} bytes, more than this client's "
                            f"artifact_max_unpacked_bytes ({limits.max_unpacked_bytes})")


def _untar(tmp: str, mode: str, dest: str, limits: FetchLimits) -> None:
    try:
        with tarfile.open(tmp, mode) as tf:  # type: ignore[call-overload]
            members = tf.getmembers()
            for m in members:
                if _escapes(m.name):
                    raise ArtifactError(f"archive member {m.name!r} escapes the destination")
            _limits(len(members), sum(m.size for m in members if m.isreg()), limits)
            # The "data" filter (PEP 706) refuses links leaving the destination, device
            # files, and drops setuid bits; what it refuses fails the artifact.
            tf.extractall(dest, filter="data")
    except tarfile.FilterError as e:
        raise ArtifactError(f"archive member refused: {e}") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ArtifactError(f"cannot unpack the archive: {e}") from None


def _unzip(tmp: str, dest: str, limits: FetchLimits) -> None:
    try:
        with zipfile.ZipFile(tmp) as zf:
            infos = zf.infolist()
            for info in infos:
                if _escapes(info.filename):
                    raise ArtifactError(f"archive member {info.filename!r} escapes the destination")
            _limits(len(infos), sum(i.file_size for i in infos), limits)
            budget = limits.max_unpacked_bytes
            for info in infos:
                target = os.path.join(dest, posixpath.normpath(info.filename.replace("\\", "/")))
                if info.is_dir():
                    _make_dir(dest, target)
                    continue
                _make_dir(dest, os.path.dirname(target))
                if os.path.islink(target):
                    os.unlink(target)  # written as a file, never through a link
                with zf.open(info) as src, open(target, "wb") as out:
                    budget -= _copy(src, out, budget, limits.max_unpacked_bytes)
                perm = (info.external_attr >> 16) & 0o777
                if perm and not stat.S_ISLNK(info.external_attr >> 16):
                    os.chmod(target, perm & 0o755)  # as tar's data filter: no setuid, no group/other write
    except (zipfile.BadZipFile, OSError, zlib.error) as e:
        raise ArtifactError(f"cannot unpack the archive: {e}") from None


def _copy(src: IO[bytes], out: IO[bytes], budget: int, limit: int) -> int:
    """Copy at most *budget* bytes (a member lying about its size is caught here); bytes copied."""
    total = 0
    while chunk := src.read(CHUNK):
        total += len(chunk)
        if total > budget:
            raise ArtifactError(f"the archive unpacks to more than this client's artifact_max_unpacked_bytes "
                                f"({limit})")
        out.write(chunk)
    return total


def _decompress(opener: Callable[..., Any], tmp: str, target: str, limit: int) -> None:
    if os.path.islink(target):
        os.unlink(target)
    try:
        with opener(tmp, "rb") as src, open(target, "wb") as out:
            _copy(src, out, limit, limit)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
        raise ArtifactError(f"cannot decompress the file: {e}") from None


# ------------------------------------------------------------ the agent's fetcher
class HttpArtifactFetcher:
    """Fetches a task's artifacts in a greenlet of its own (the agent's fetcher)."""

    def fetch(self, artifacts: tuple[ArtifactFetch, ...], limits: FetchLimits,
              notify: Callable[[int, str], None]) -> None:
        gevent.spawn(self._run, artifacts, limits, notify)

    @staticmethod
    def _run(artifacts: tuple[ArtifactFetch, ...], limits: FetchLimits,
             notify: Callable[[int, str], None]) -> None:
        pool = gevent.get_hub().threadpool
        done, error = 0, ""
        for a in artifacts:
            try:
                # The socket timeout bounds each read; this bounds the whole artifact (a server
                # that trickles it), so no fetch outlives its timeout.
                with gevent.Timeout(limits.timeout_s, TimeoutError()):
                    fetch_artifact(a, limits, unpack=lambda fn, args: pool.apply(fn, args))
            except TimeoutError:
                error = failure_message(a.source, f"timed out after {limits.timeout_s:g}s")
            except ArtifactError as e:
                error = failure_message(a.source, str(e))
            except Exception as e:  # a fetch never takes the fetcher down: it is a failed download
                error = failure_message(a.source, f"{type(e).__name__}: {e}")
            if error:
                break
            done += 1
        notify(done, error)
