"""Task artifacts (Nomad's ``artifact`` block): fetched into the task's directory before it first starts.

As Nomad's artifact hook (``client/allocrunner/taskrunner/artifact_hook.go``):
before a task's first start the AllocRunner records a "Downloading
Artifacts" event and has each artifact fetched, in order, into the task's
directory at its destination; one that fails records "Failed Artifact
Download" (``failed to download artifact "<source>": <why>``) and counts
against the restart policy as a failed start (a recoverable error).  The
artifacts fetched stay fetched: a retry fetches only those still missing,
and a restarted task fetches nothing again.

The fetching is an edge: a *fetcher* object, ``fetch(artifacts, limits,
notify)``, starts fetching and calls ``notify(fetched, error)`` once, when
it ends -- how many of *artifacts* it fetched, in order, and "" or the
error that stopped it.  :class:`runtime.artifacts.HttpArtifactFetcher`
fetches http and https sources into real directories;
:class:`SimArtifactFetcher` stands in for it in the simulator.  The
AllocRunner never waits: it goes on when :class:`ArtifactsFetched` arrives.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Nomad's task event types (structs.TaskDownloadingArtifacts, TaskArtifactDownloadFailed).
EV_DOWNLOADING = "Downloading Artifacts"
EV_DOWNLOAD_FAILED = "Failed Artifact Download"
DOWNLOADING_MESSAGE = "Client is downloading artifacts"

GETTER_MODES = ("any", "file", "dir")


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactSpec:
    """One artifact of a task as the job gives it (before the task's environment is interpolated)."""

    source: str
    options: tuple[tuple[str, str], ...] = ()  # GetterOptions, sorted
    headers: tuple[tuple[str, str], ...] = ()  # GetterHeaders, sorted
    mode: str = "any"
    dest: str = "local/"  # RelativeDest: relative to the task's directory
    insecure: bool = False  # GetterInsecure: an https source's certificate is not verified
    chown: bool = False  # Chown: what is fetched is made the task user's (a root agent, a task with a user)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactFetch:
    """One artifact to fetch now: its fields interpolated, its destination an absolute path.

    *root* is the allocation's directory: neither the destination nor
    anything unpacked into it may end up outside it.
    """

    source: str
    options: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    mode: str
    dest: str
    root: str
    insecure: bool = False  # an https source's certificate is not verified (the artifact's insecure)
    chown_user: str = ""  # the destination is chowned to this user (the artifact's chown; "": not)


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchLimits:
    """What one fetch may take (from AllocRunnerConfig, where each is documented)."""

    max_bytes: int
    timeout_s: float
    max_unpacked_bytes: int
    max_unpacked_files: int


@dataclass(frozen=True, slots=True)
class ArtifactsFetched:
    """A fetcher -> AllocRunner: a fetch of a task's artifacts ended (local only).

    *fetched* of the artifacts asked for were fetched, in order; *error* is ""
    when all were, else why the next one was not.
    """

    alloc_id: str
    task: str
    run: int
    fetched: int
    error: str


def parse_artifacts(raw: Any, where: str) -> tuple[ArtifactSpec, ...]:
    """A task's ``Artifacts`` (the servers validated them; ValueError names a malformed one)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{where}.Artifacts must be a list")
    out = []
    for i, a in enumerate(raw):
        w = f"{where}.Artifacts[{i}]"
        if not isinstance(a, dict):
            raise ValueError(f"{w} must be an object")
        source, mode, dest = a.get("GetterSource"), a.get("GetterMode") or "any", a.get("RelativeDest")
        if not isinstance(source, str) or not source:
            raise ValueError(f"{w}.GetterSource must be a non-empty string")
        if mode not in GETTER_MODES:
            raise ValueError(f"{w}.GetterMode {mode!r} is not one of {', '.join(GETTER_MODES)}")
        if dest is None:
            dest = default_dest(source, mode)
        if not isinstance(dest, str):
            raise ValueError(f"{w}.RelativeDest must be a string")
        out.append(ArtifactSpec(source=source, mode=mode, dest=dest,
                                options=_pairs(a.get("GetterOptions"), f"{w}.GetterOptions"),
                                headers=_pairs(a.get("GetterHeaders"), f"{w}.GetterHeaders"),
                                insecure=a.get("GetterInsecure") is True, chown=a.get("Chown") is True))
    return tuple(out)


def _pairs(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in raw.items()):
        raise ValueError(f"{where} must map strings to strings")
    return tuple(sorted(raw.items()))


def default_dest(source: str, mode: str) -> str:
    """Nomad's api TaskArtifact.Canonicalize: ``local/<file name>`` in file mode, else ``local/``."""
    if mode == "file":
        path = source.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        return posixpath.join("local", posixpath.basename(path) or "artifact")
    return "local/"


def escapes(root: str, path: str) -> bool:
    """*path* (absolute, or relative to *root*) is not inside *root*, lexically (PathEscapesAllocDir)."""
    full = posixpath.normpath(posixpath.join(root, path))
    root = posixpath.normpath(root)
    return full != root and not full.startswith(root.rstrip("/") + "/")


def failure_message(source: str, why: str) -> str:
    """Nomad's DownloadError: ``failed to download artifact "<source>": <why>``."""
    return f'failed to download artifact "{source}": {why}'


# ------------------------------------------------------------ the simulator's fetcher
SIM_FAIL_MARKER = "sim-fail"


class SimArtifactFetcher:
    """Artifacts in the simulator: fetched *latency_s* later, through the simulator's event queue.

    A source containing ``sim-fail`` fails ("simulated download failure");
    every other is fetched.  Nothing is written anywhere; ``fetched`` lists
    the (source, destination) pairs fetched, in order.
    """

    def __init__(self, clock: Callable[[], float], schedule: Callable[[float, Callable[[], None]], None],
                 latency_s: float = 0.05) -> None:
        self.clock = clock
        self.schedule = schedule
        self.latency_s = latency_s
        self.fetched: list[tuple[str, str]] = []

    def fetch(self, artifacts: tuple[ArtifactFetch, ...], limits: FetchLimits,
              notify: Callable[[int, str], None]) -> None:
        done, error = 0, ""
        for a in artifacts:
            if SIM_FAIL_MARKER in a.source:
                error = failure_message(a.source, "simulated download failure")
                break
            self.fetched.append((a.source, a.dest))
            done += 1
        self.schedule(self.clock() + self.latency_s * max(1, len(artifacts)), lambda: notify(done, error))
