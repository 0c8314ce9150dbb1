"""On-disk run store: lets a user's run survive a browser reload and a server restart.

Each run is one opaque payload (the app passes rnn_core checkpoint bytes) stored as
``<data_dir>/<run_id>.npz``. The run id travels in the URL query string, so it is validated
strictly before it is ever turned into a path.

Pure Python (stdlib only): no streamlit import, so everything here is testable without a server.
Safe for several sessions (threads) and several processes sharing the directory (trainer workers,
server replicas): every write is a rename of a complete file, and writes and pruning take an
exclusive ``flock`` on ``<data_dir>/.lock`` (where ``fcntl`` exists; elsewhere a lock per process).
Each stored file has a version (its inode, mtime and size: a save always makes a new file), so a
writer can save only if nobody else wrote the run since it read it (``save_unless_changed``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, NamedTuple

try:
    import fcntl
except ImportError:   # Windows: no flock; one server process per data directory there
    fcntl = None

ENV_DATA_DIR = "RNN_PLAYGROUND_DATA_DIR"
# Where every UI replica and Ray actor finds the runs, as a URL: file:///srv/runs (or a plain path),
# or s3://bucket/prefix (an S3-compatible bucket: object_store.ObjectRunStore, docs/scaling.md).
# Wins over RNN_PLAYGROUND_DATA_DIR.
ENV_STORE_URL = "RNN_PLAYGROUND_STORE_URL"
ENV_MAX_AGE_DAYS = "RNN_PLAYGROUND_MAX_AGE_DAYS"
ENV_MAX_TOTAL_MB = "RNN_PLAYGROUND_MAX_TOTAL_MB"

DEFAULT_MAX_AGE_SECONDS = 7 * 24 * 3600
DEFAULT_MAX_TOTAL_BYTES = 500 * 2**20
# A temp file this old cannot belong to a save in progress (a save writes one file and returns).
STALE_TEMP_SECONDS = 3600.0

RUN_FILE_SUFFIX = ".npz"
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".tmp"
LOCK_FILE_NAME = ".lock"
WATCH_SUFFIX = ".watch"         # <watch_id>.watch: the run id a watch link shows
WATCHING_SUFFIX = ".watching"   # <run_id>.watching: the run's current watch id
ACTOR_SUFFIX = ".actor"         # <run_id>.actor: the run has a live Ray actor (ray_backend)
_ANY = object()   # save_unless_changed's "whatever is stored"
# ASCII letters, digits, "_" and "-" only: no ".", "/", "\\" or NUL, so no traversal is expressible.
_RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_run_id() -> str:
    """Return a fresh unguessable run id (22 URL-safe characters, 128 random bits)."""
    return secrets.token_urlsafe(16)


def is_valid_run_id(value: object) -> bool:
    """True if ``value`` is a str of 16-64 characters from A-Z a-z 0-9 _ - (nothing else)."""
    # fullmatch, not match with "$": "$" would also accept a trailing newline.
    return isinstance(value, str) and _RUN_ID_PATTERN.fullmatch(value) is not None


def _check_run_id(run_id: object) -> str:
    if not is_valid_run_id(run_id):
        shown = repr(run_id)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        raise ValueError(
            f"run_id must be 16-64 characters from A-Z a-z 0-9 _ -, got {shown}"
        )
    return run_id  # type: ignore[return-value]


def _is_bucket_url(location: object) -> bool:
    return isinstance(location, str) and location.strip().lower().startswith("s3://")


def path_from_url(url: str) -> Path:
    """The directory a store URL names: ``file:///abs/path``, ``file://localhost/abs/path`` or a
    plain path. Another scheme raises ValueError with a sentence saying what to use instead."""
    from urllib.parse import unquote, urlsplit
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{ENV_STORE_URL}: a file:// URL must name a directory on this machine, got "
                             f"host {parts.netloc!r}")
        return Path(unquote(parts.path))
    if _is_bucket_url(text):
        raise ValueError(f"{ENV_STORE_URL}: {parts.scheme}://{parts.hostname or ''} is a bucket, not a directory "
                         "(store.open_store opens it)")
    if "://" in text:
        raise ValueError(f"{ENV_STORE_URL}: runs are stored in a directory (file:///path) or an S3-compatible "
                         f"bucket (s3://bucket/prefix); for a {parts.scheme}:// location, mount it as a directory "
                         "on every machine and give that path")
    return Path(text).expanduser()


def store_location() -> str:
    """Where the runs are: $RNN_PLAYGROUND_STORE_URL when it is an s3:// URL (checked: ValueError
    with a sentence if it is not a usable one), else the directory of ``default_data_dir()``."""
    url = os.environ.get(ENV_STORE_URL, "").strip()
    if _is_bucket_url(url):
        from playground.runs.object_store import parse_url
        parse_url(url)
        return url
    return str(default_data_dir())


def open_store(location: str | os.PathLike[str]):
    """The store at ``location`` (what ``store_location`` returns): an ObjectRunStore for an s3:// URL
    (boto3 is imported then, and only then), else a RunStore in that directory."""
    if _is_bucket_url(location):
        from playground.runs.object_store import ObjectRunStore
        return ObjectRunStore(location)
    return RunStore(location)


def default_data_dir(platform: str | None = None) -> Path:
    """Directory for run files: $RNN_PLAYGROUND_STORE_URL (see path_from_url), else
    $RNN_PLAYGROUND_DATA_DIR if set, else the user's cache dir.

    Cache dir: Linux/other ``$XDG_CACHE_HOME`` (if absolute) or ``~/.cache``; macOS
    ``~/Library/Caches``; Windows ``%LOCALAPPDATA%``. ``platform`` defaults to ``sys.platform``.
    """
    url = os.environ.get(ENV_STORE_URL, "").strip()
    if url:
        return path_from_url(url)
    configured = os.environ.get(ENV_DATA_DIR, "").strip()
    if configured:
        return Path(configured).expanduser()
    platform = sys.platform if platform is None else platform
    if platform == "darwin":
        cache_root = Path.home() / "Library" / "Caches"
    elif platform.startswith("win"):
        local = os.environ.get("LOCALAPPDATA", "")
        cache_root = Path(local) if local else Path.home() / "AppData" / "Local"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        # The XDG spec says relative values are invalid and must be ignored.
        cache_root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return cache_root / "rnn-playground" / "runs"


def _positive_float(name: str, value: object, unit: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0 ({unit}), got {value!r}")
    return number


def _setting(explicit, name: str, unit: str, env_name: str, env_unit: str, env_scale: float,
             default: float) -> float:
    """Explicit argument wins, then the environment variable (times env_scale), then the default."""
    if explicit is not None:
        return _positive_float(name, explicit, unit)
    raw = os.environ.get(env_name, "").strip()
    if raw:
        return _positive_float(env_name, raw, env_unit) * env_scale
    return default


class RunInfo(NamedTuple):
    """One stored run: id, file size in bytes, modification time (seconds since the epoch)."""

    run_id: str
    size: int
    mtime: float


# One lock per directory, shared by every RunStore instance in this process, so that sessions
# that each build their own store still serialise pruning against saves.
# Re-entrant: a thread holding it (pruning) may delete a run, which takes it too.
_DIR_LOCKS: dict[str, threading.RLock] = {}
_DIR_LOCKS_GUARD = threading.Lock()
_FLOCKED = threading.local()   # .dirs: the directories whose flock this thread holds


def _dir_key(directory: Path) -> str:
    return os.path.normcase(os.path.abspath(directory))


def _lock_for(directory: Path) -> threading.RLock:
    with _DIR_LOCKS_GUARD:
        return _DIR_LOCKS.setdefault(_dir_key(directory), threading.RLock())


def _version_of(stat: os.stat_result) -> str:
    """A stored file's version: a save writes a new file (new inode) and renames it into place."""
    return f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"


class RunChanged(Exception):
    """save_unless_changed found the run written by someone else since it was read."""


class RunStore:
    """Run payloads (opaque bytes) on disk, one file per run id, with age/size pruning.

    ``max_age_seconds`` / ``max_total_bytes``: an explicit argument wins; otherwise the
    environment variables RNN_PLAYGROUND_MAX_AGE_DAYS / RNN_PLAYGROUND_MAX_TOTAL_MB (numbers > 0);
    otherwise 7 days / 500 MiB. Bad values raise ValueError naming the argument or variable.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        max_age_seconds: float | None = None,
        max_total_bytes: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.max_age_seconds = _setting(
            max_age_seconds, "max_age_seconds", "seconds",
            ENV_MAX_AGE_DAYS, "days", 86400.0, DEFAULT_MAX_AGE_SECONDS,
        )
        self.max_total_bytes = int(_setting(
            max_total_bytes, "max_total_bytes", "bytes",
            ENV_MAX_TOTAL_MB, "MiB", float(2**20), DEFAULT_MAX_TOTAL_BYTES,
        ))
        self._lock = _lock_for(self.data_dir)
        self._ensure_dir()

    def _ensure_dir(self) -> None:
        """Create the data directory (and missing parents) private to this user. A directory that
        already exists keeps its mode: it may be shared (say /tmp), and run files are 0600 anyway."""
        if self.data_dir.is_dir():
            return
        missing = [d for d in (self.data_dir, *self.data_dir.parents) if not d.exists()]
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in missing:   # mkdir's mode is filtered by the umask: set it on what we made
            os.chmod(directory, 0o700)

    def path_for(self, run_id: str) -> Path:
        """Path of the run file; raises ValueError for an invalid id (before any file access)."""
        return self.data_dir / (_check_run_id(run_id) + RUN_FILE_SUFFIX)

    @contextlib.contextmanager
    def _exclusive(self):
        """This process's lock for the directory, then (across processes) an flock on its lock file."""
        with self._lock:
            held = _FLOCKED.__dict__.setdefault("dirs", set())
            key = _dir_key(self.data_dir)
            if fcntl is None or key in held:   # no flock here, or this thread has it already
                yield
                return
            self._ensure_dir()
            fd = os.open(self.data_dir / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held.add(key)
                yield
            finally:
                held.discard(key)
                os.close(fd)      # closing releases the flock

    def save(self, run_id: str, payload: bytes) -> Path:
        """Atomically write ``payload`` as the run's file (mode 0o600) and return its path.

        Readers see either the previous complete file or the new complete file, never a mix.
        """
        self._write(run_id, payload, _ANY)
        return self.path_for(run_id)

    def save_unless_changed(self, run_id: str, payload: bytes, expected_version: str | None) -> str:
        """Like ``save``, only if the stored run is still at ``expected_version`` (None: there must
        be no stored run); returns the new version. RunChanged (nothing written) if another session
        or process wrote it meanwhile."""
        return self._write(run_id, payload, expected_version)

    def _write(self, run_id: str, payload: bytes, expected) -> str:
        path = self.path_for(run_id)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        self._ensure_dir()
        # mkstemp creates the file with mode 0o600 in the same directory, so os.replace is atomic.
        fd, temp_name = tempfile.mkstemp(
            prefix=f"{_TEMP_PREFIX}{run_id}.", suffix=_TEMP_SUFFIX, dir=self.data_dir
        )
        try:
            with os.fdopen(fd, "wb") as temp_file:
                temp_file.write(payload)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.chmod(temp_name, 0o600)
            version = _version_of(os.stat(temp_name))   # a rename keeps the inode and the mtime
            # Under the lock so a concurrent prune cannot judge the old file and delete the new one,
            # and no other writer comes between the version check and the rename.
            with self._exclusive():
                if expected is not _ANY and self.version(run_id) != expected:
                    raise RunChanged(f"run {run_id[:6]} was written by another session")
                os.replace(temp_name, path)
        except BaseException:
            try:
                os.unlink(temp_name)
            except FileNotFoundError:
                pass
            raise
        return version

    def load(self, run_id: str) -> bytes | None:
        """The run's payload, or None if there is no such run.

        Invalid id -> ValueError. An unreadable file (a directory, a symlink, no permission)
        raises an OSError subclass.
        """
        found = self.load_with_version(run_id)
        return None if found is None else found[0]

    def load_with_version(self, run_id: str) -> tuple[bytes, str] | None:
        """(payload, version) of the run, read from one open file so the two agree; None if there
        is no such run."""
        path = self.path_for(run_id)
        # O_NOFOLLOW: a symlink planted in the data dir must not make us read a file elsewhere.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as run_file:
            return run_file.read(), _version_of(os.fstat(run_file.fileno()))

    def version(self, run_id: str) -> str | None:
        """The stored run's version, None if there is none."""
        try:
            return _version_of(os.stat(self.path_for(run_id), follow_symlinks=False))
        except FileNotFoundError:
            return None

    def saved_at(self, run_id: str) -> float | None:
        """When the run was last written (seconds since the epoch), None if there is no such run."""
        try:
            return os.stat(self.path_for(run_id), follow_symlinks=False).st_mtime
        except FileNotFoundError:
            return None

    def delete(self, run_id: str) -> bool:
        """Remove the run (and its watch link); True if a file was removed, False if there was none."""
        path = self.path_for(run_id)
        with self._exclusive():
            self._prune_watch_links({run_id})
            return _unlink_quietly(path)

    # ------------------------------------------------------------ watch links
    # A run's watch link has its own id: ``<watch_id>.watch`` holds the run id it shows, and
    # ``<run_id>.watching`` the run's current watch id. A new watch link (revoking the old one)
    # replaces both under the lock, so an old watch id never opens the run again.
    def watch_id_of(self, run_id: str) -> str | None:
        """The run's current watch id, None if it has none."""
        watch_id = self._read_small(self.data_dir / (_check_run_id(run_id) + WATCHING_SUFFIX))
        return watch_id if is_valid_run_id(watch_id) else None

    def run_of_watch(self, watch_id: str) -> str | None:
        """The run a watch id shows, None if there is no such (or no longer any such) watch link."""
        run_id = self._read_small(self.data_dir / (_check_run_id(watch_id) + WATCH_SUFFIX))
        if not is_valid_run_id(run_id) or self.watch_id_of(run_id) != watch_id:
            return None
        return run_id

    def new_watch_link(self, run_id: str) -> str:
        """A fresh watch id for the run; its previous watch id (if any) stops working."""
        _check_run_id(run_id)
        watch_id = new_run_id()
        with self._exclusive():
            old = self.watch_id_of(run_id)
            self._write_small(self.data_dir / (watch_id + WATCH_SUFFIX), run_id)
            self._write_small(self.data_dir / (run_id + WATCHING_SUFFIX), watch_id)
            if old is not None:
                _unlink_quietly(self.data_dir / (old + WATCH_SUFFIX))
        return watch_id

    # ------------------------------------------------------------ live actors (ray_backend)
    def mark_actor(self, run_id: str) -> None:
        """The run has a live actor (written by the actor when it starts)."""
        self._write_small(self.data_dir / (_check_run_id(run_id) + ACTOR_SUFFIX), run_id)

    def unmark_actor(self, run_id: str) -> None:
        """The run's actor ended cleanly (its run saved, or handed to a session to save)."""
        _unlink_quietly(self.data_dir / (_check_run_id(run_id) + ACTOR_SUFFIX))

    def actor_marked(self, run_id: str) -> bool:
        """True while a marker says the run has a live actor: with no such actor, it died."""
        return self._read_small(self.data_dir / (_check_run_id(run_id) + ACTOR_SUFFIX)) == run_id

    def _write_small(self, path: Path, text: str) -> None:
        fd, temp_name = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{path.stem}.", suffix=_TEMP_SUFFIX,
                                         dir=self.data_dir)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(text)
            os.replace(temp_name, path)
        except BaseException:
            _unlink_quietly(Path(temp_name))
            raise

    @staticmethod
    def _read_small(path: Path) -> str | None:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags)
        except OSError:           # missing, a directory, a symlink (O_NOFOLLOW), no permission
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(128)      # an id is at most 64 characters: anything longer is not ours
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            return None

    def _prune_watch_links(self, removed: set[str]) -> None:
        """(Lock held.) Watch links of runs that were removed."""
        try:
            with os.scandir(self.data_dir) as scan:
                names = [e.name for e in scan]
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(ACTOR_SUFFIX) and name[: -len(ACTOR_SUFFIX)] in removed:
                _unlink_quietly(self.data_dir / name)
            if name.endswith(WATCHING_SUFFIX) and name[: -len(WATCHING_SUFFIX)] in removed:
                watch_id = self._read_small(self.data_dir / name)
                _unlink_quietly(self.data_dir / name)
                if is_valid_run_id(watch_id):
                    _unlink_quietly(self.data_dir / (watch_id + WATCH_SUFFIX))

    def _entries(self) -> list[os.DirEntry]:
        """Directory entries of run files and temp files (unstatted)."""
        try:
            with os.scandir(self.data_dir) as scan:
                return [
                    entry for entry in scan
                    if entry.name.endswith(RUN_FILE_SUFFIX) or _is_temp_name(entry.name)
                ]
        except FileNotFoundError:
            return []

    def _stat_entries(self) -> tuple[list[RunInfo], list[tuple[str, float]]]:
        """(runs, temp files as (name, mtime)); files vanishing mid-listing are skipped."""
        runs: list[RunInfo] = []
        temps: list[tuple[str, float]] = []
        for entry in self._entries():
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed by another session between listing and stat
            if _is_temp_name(entry.name):
                temps.append((entry.name, stat.st_mtime))
                continue
            run_id = entry.name[: -len(RUN_FILE_SUFFIX)]
            if is_valid_run_id(run_id):
                runs.append(RunInfo(run_id, stat.st_size, stat.st_mtime))
        return runs, temps

    def list_runs(self) -> list[RunInfo]:
        """Stored runs as RunInfo(run_id, size, mtime), newest first."""
        runs, _ = self._stat_entries()
        return sorted(runs, key=lambda run: run.mtime, reverse=True)

    def prune(self, now: float | None = None, keep: Iterable[str] = ()) -> list[str]:
        """Remove expired runs, then the oldest runs until the total size fits; return their ids.

        Expired: ``now - mtime > max_age_seconds``. Ids in ``keep`` (e.g. the current session's
        run) are never removed, even if that leaves the total above ``max_total_bytes``. Temp
        files older than STALE_TEMP_SECONDS (left by a crashed save) are removed too.
        """
        now = time.time() if now is None else float(now)
        keep_ids = {keep} if isinstance(keep, str) else set(keep)
        removed: list[str] = []
        with self._exclusive():
            runs, temps = self._stat_entries()
            for name, mtime in temps:
                if now - mtime > STALE_TEMP_SECONDS:
                    _unlink_quietly(self.data_dir / name)
            survivors: list[RunInfo] = []
            for run in sorted(runs, key=lambda run: run.mtime):
                if run.run_id not in keep_ids and now - run.mtime > self.max_age_seconds:
                    if _unlink_quietly(self.data_dir / (run.run_id + RUN_FILE_SUFFIX)):
                        removed.append(run.run_id)
                else:
                    survivors.append(run)
            total = sum(run.size for run in survivors)
            for run in survivors:  # oldest first
                if total <= self.max_total_bytes:
                    break
                if run.run_id in keep_ids:
                    continue
                if _unlink_quietly(self.data_dir / (run.run_id + RUN_FILE_SUFFIX)):
                    removed.append(run.run_id)
                total -= run.size
            if removed:
                self._prune_watch_links(set(removed))
        return removed


def _is_temp_name(name: str) -> bool:
    return name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)


def _unlink_quietly(path: Path) -> bool:
    """Unlink; False if another session already removed the file."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class SaveThrottle:
    """Tracks when the run was last saved, so training saves at least every ``interval_seconds``.

    The app saves unconditionally on pause and reset (then calls ``mark_saved``) and, while
    training, saves whenever ``due()`` is True. ``clock`` is injectable so tests need no sleep.
    """

    def __init__(self, interval_seconds: float, clock=time.monotonic):
        self.interval_seconds = _positive_float("interval_seconds", interval_seconds, "seconds")
        self._clock = clock
        self.last_saved_at: float | None = None

    def due(self, now: float | None = None) -> bool:
        """True if an autosave should happen now: never saved yet, ``interval_seconds`` passed, or
        the clock went back (which would otherwise suppress saves until it caught up again)."""
        now = self._clock() if now is None else now
        if self.last_saved_at is None:
            return True
        elapsed = now - self.last_saved_at
        return elapsed < 0 or elapsed >= self.interval_seconds

    def mark_saved(self, now: float | None = None) -> None:
        """Record that a save just happened (any reason: pause, reset or autosave)."""
        self.last_saved_at = self._clock() if now is None else now
