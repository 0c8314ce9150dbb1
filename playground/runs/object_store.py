"""Run store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW): the store of several machines.

Same public interface and semantics as ``store.RunStore`` (what persist, watch and ray_backend
call), selected by ``RNN_PLAYGROUND_STORE_URL=s3://bucket/prefix`` (``store.open_store``). Each run
is the object ``<prefix>/<run_id>.npz``; watch links (``<watch_id>.watch``, ``<run_id>.watching``)
and live-actor markers (``<run_id>.actor``) are small objects beside it.

There is no rename and no lock: an S3 PUT replaces an object whole (readers see the old or the
new object, never a mix), and the version check is the bucket's own conditional write. A run's
version is its object's ETag; ``save_unless_changed`` puts with ``If-Match: <etag>`` (overwrite only
the version read) or ``If-None-Match: *`` (create only if absent), and the bucket refuses a stale
write (HTTP 412, or 409 ConditionalRequestConflict for a concurrent one), which is RunChanged.
An ETag names content (an MD5 for plain uploads): rewriting the very same bytes keeps it, which
is harmless, since a writer holding that version holds what is stored.

boto3 is imported only when such a store is made (requirements-s3.txt). The endpoint (MinIO, Ceph)
comes from boto3's own ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, credentials from its
standard chain (environment, ``~/.aws``, instance role): never from the URL. Failures of the
bucket other than a refused precondition raise ``ObjectStoreError``, an OSError, so the callers'
handling of a failing disk applies unchanged.
"""

from __future__ import annotations

import re
import time
from typing import Iterable
from urllib.parse import urlsplit

from playground.runs.store import (
    ACTOR_SUFFIX,
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_TOTAL_BYTES,
    ENV_MAX_AGE_DAYS,
    ENV_MAX_TOTAL_MB,
    ENV_STORE_URL,
    RUN_FILE_SUFFIX,
    WATCH_SUFFIX,
    WATCHING_SUFFIX,
    RunChanged,
    RunInfo,
    _check_run_id,
    _setting,
    is_valid_run_id,
    new_run_id,
)

SCHEME = "s3"
PAGE_SIZE = 1000                 # list_objects_v2's own maximum
WATCH_LINK_TRIES = 8             # new_watch_link retries a lost race for the run's .watching
_SMALL_LIMIT = 128               # an id is at most 64 characters: a longer small object is not ours
# Bucket names as S3 defines them for new buckets (MinIO and Ceph follow): 3-63 characters,
# lowercase letters, digits, "." and "-", starting and ending with a letter or digit.
_BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_PATTERN = re.compile(r"\d+\.\d+\.\d+\.\d+")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_REFUSED_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


class ObjectStoreError(OSError):
    """The bucket could not be read or written (unreachable, no credentials, access denied...)."""


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; ValueError with a sentence naming the value (its
    credentials, if any, left out) for anything else."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"{ENV_STORE_URL}: an object store URL is s3://bucket/prefix, got {_shown(text)}")
    if "@" in parts.netloc:
        raise ValueError(f"{ENV_STORE_URL}: credentials do not go in the URL ({_shown(text)}); give them the "
                         "way boto3 finds them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials "
                         "or an instance role), and the URL as s3://bucket/prefix")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(f"{ENV_STORE_URL}: an s3:// URL takes no query or fragment, got {_shown(text)}")
    bucket = parts.netloc
    if ":" in bucket:
        raise ValueError(f"{ENV_STORE_URL}: {_shown(text)} names a port; an S3-compatible server's address "
                         "(MinIO, Ceph) goes in AWS_ENDPOINT_URL, and the URL is s3://bucket/prefix")
    if (_BUCKET_PATTERN.fullmatch(bucket) is None or ".." in bucket or ".-" in bucket or "-." in bucket
            or _IP_PATTERN.fullmatch(bucket)):
        raise ValueError(f"{ENV_STORE_URL}: {bucket!r} in {_shown(text)} is not a bucket name (3-63 characters: "
                         "lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)")
    prefix = parts.path.strip("/")
    if prefix and any(_PREFIX_SEGMENT.fullmatch(seg) is None or seg in (".", "..") for seg in prefix.split("/")):
        raise ValueError(f"{ENV_STORE_URL}: the prefix {prefix!r} in {_shown(text)} must be folder names of "
                         "A-Z a-z 0-9 _ . - separated by single '/'")
    return bucket, prefix


def _shown(text: str) -> str:
    """The URL for a message: user information (a key, a secret) replaced by ***, and cut short."""
    parts = urlsplit(text)
    if "@" in parts.netloc:
        text = text.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1], 1)
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


class ObjectRunStore:
    """Run payloads (opaque bytes) as objects under ``s3://bucket/prefix``, with age/size pruning.

    ``client``: a boto3 S3 client (default: ``boto3.client("s3")``, which reads the endpoint and the
    credentials itself). ``max_age_seconds`` / ``max_total_bytes`` as for RunStore (arguments, then
    RNN_PLAYGROUND_MAX_AGE_DAYS / RNN_PLAYGROUND_MAX_TOTAL_MB, then 7 days / 500 MiB).
    """

    def __init__(self, url: str, *, client=None, max_age_seconds: float | None = None,
                 max_total_bytes: int | None = None, page_size: int = PAGE_SIZE) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.url = f"{SCHEME}://{self.bucket}/{self.prefix}".rstrip("/")
        # What persist keys its prune clock by (RunStore's is the directory): the store's URL.
        self.data_dir = self.url
        self.max_age_seconds = _setting(max_age_seconds, "max_age_seconds", "seconds",
                                        ENV_MAX_AGE_DAYS, "days", 86400.0, DEFAULT_MAX_AGE_SECONDS)
        self.max_total_bytes = int(_setting(max_total_bytes, "max_total_bytes", "bytes",
                                            ENV_MAX_TOTAL_MB, "MiB", float(2**20), DEFAULT_MAX_TOTAL_BYTES))
        self.page_size = int(page_size)
        if client is None:
            try:
                import boto3
            except ImportError:
                raise ValueError(f"{ENV_STORE_URL}: an s3:// store needs boto3 (pip install -r "
                                 "requirements-s3.txt)") from None
            from botocore.exceptions import BotoCoreError
            try:
                client = boto3.session.Session().client("s3")
            except BotoCoreError as exc:     # a bad endpoint URL, an unreadable config file
                raise ValueError(f"{ENV_STORE_URL}: no S3 client for {self.url}: {exc}") from None
        self.client = client

    def __repr__(self) -> str:
        return f"ObjectRunStore({self.url!r})"

    # ------------------------------------------------------------ keys and requests
    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _name_of(self, key: str) -> str:
        return key[len(self.prefix) + 1:] if self.prefix else key

    def _call(self, operation: str, key: str | None = None, **kwargs):
        """One request; a refused precondition is RunChanged, any other failure ObjectStoreError."""
        from botocore.exceptions import BotoCoreError, ClientError
        if key is not None:
            kwargs["Key"] = key
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _error_code(exc) in _REFUSED_CODES or _status(exc) == 412:
                raise RunChanged(f"{key or self.url} was written by another session") from None
            if _error_code(exc) in _MISSING_CODES or _status(exc) == 404:
                raise _Missing() from None
            raise ObjectStoreError(f"{operation} on {self.url} failed: {_error_code(exc) or exc}") from exc
        except BotoCoreError as exc:      # unreachable endpoint, no credentials, a read timeout
            raise ObjectStoreError(f"{operation} on {self.url} failed: {exc}") from exc

    def _get(self, key: str, limit: int | None = None) -> tuple[bytes, str] | None:
        try:
            response = self._call("get_object", key)
        except _Missing:
            return None
        body = response["Body"]
        try:
            data = body.read() if limit is None else body.read(limit)
        finally:
            body.close()
        return data, response["ETag"]

    def _head(self, key: str) -> dict | None:
        try:
            return self._call("head_object", key)
        except _Missing:
            return None

    def _put(self, key: str, body: bytes, **conditions) -> str:
        return self._call("put_object", key, Body=body, **conditions)["ETag"]

    def _delete(self, key: str, etag: str | None = None) -> None:
        """Delete the object (only at this ETag, if given: RunChanged when it was rewritten)."""
        try:
            self._call("delete_object", key, **({"IfMatch": etag} if etag is not None else {}))
        except _Missing:     # a conditional delete of an object already gone
            pass

    # ------------------------------------------------------------ runs
    def run_url(self, run_id: str) -> str:
        """``s3://bucket/prefix/<run_id>.npz``; ValueError for an invalid id (before any request)."""
        return f"{SCHEME}://{self.bucket}/{self._run_key(run_id)}"

    def _run_key(self, run_id: str) -> str:
        return self._key(_check_run_id(run_id) + RUN_FILE_SUFFIX)

    def save(self, run_id: str, payload: bytes) -> str:
        """Write ``payload`` as the run's object (one PUT: readers see the old or the new object)
        and return its URL."""
        self._write(run_id, payload, {})
        return self.run_url(run_id)

    def save_unless_changed(self, run_id: str, payload: bytes, expected_version: str | None) -> str:
        """Like ``save``, only if the stored run is still at ``expected_version`` (None: there must
        be no stored run); returns the new version. RunChanged (nothing written) if another session
        or process wrote it meanwhile: the bucket checks, in the same request."""
        if expected_version is None:
            return self._write(run_id, payload, {"IfNoneMatch": "*"})
        if not isinstance(expected_version, str) or not expected_version:
            raise TypeError(f"expected_version must be a version string or None, got {expected_version!r}")
        return self._write(run_id, payload, {"IfMatch": expected_version})

    def _write(self, run_id: str, payload: bytes, conditions: dict) -> str:
        key = self._run_key(run_id)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        try:
            return self._put(key, bytes(payload), **conditions)
        except _Missing:     # If-Match on a run deleted meanwhile (S3 says 404 NoSuchKey)
            raise RunChanged(f"run {run_id[:6]} was deleted by another session") from None

    def load(self, run_id: str) -> bytes | None:
        """The run's payload, or None if there is no such run (invalid id -> ValueError)."""
        found = self.load_with_version(run_id)
        return None if found is None else found[0]

    def load_with_version(self, run_id: str) -> tuple[bytes, str] | None:
        """(payload, version) of the run from one GET, so the two agree; None if there is none."""
        return self._get(self._run_key(run_id))

    def version(self, run_id: str) -> str | None:
        """The stored run's version (its ETag), None if there is none."""
        head = self._head(self._run_key(run_id))
        return None if head is None else head["ETag"]

    def saved_at(self, run_id: str) -> float | None:
        """When the run was last written (seconds since the epoch), None if there is no such run."""
        head = self._head(self._run_key(run_id))
        return None if head is None else head["LastModified"].timestamp()

    def delete(self, run_id: str) -> bool:
        """Remove the run (and its watch link and actor marker); True if there was a run to remove
        (two concurrent deletes may both say True: S3's DELETE does not tell)."""
        key = self._run_key(run_id)
        existed = self._head(key) is not None
        self._remove_links(run_id)
        self._delete(key)
        return existed

    # ------------------------------------------------------------ watch links
    # As in RunStore: ``<watch_id>.watch`` holds the run id, ``<run_id>.watching`` the current watch
    # id, and a watch id opens the run only while the run's .watching names it. A new link replaces
    # .watching with a conditional PUT, so of two links made at once one wins and the other retries
    # on top of it: the last link made is the only one that works.
    def watch_id_of(self, run_id: str) -> str | None:
        watch_id = self._read_small(_check_run_id(run_id) + WATCHING_SUFFIX)
        return watch_id if is_valid_run_id(watch_id) else None

    def run_of_watch(self, watch_id: str) -> str | None:
        run_id = self._read_small(_check_run_id(watch_id) + WATCH_SUFFIX)
        if not is_valid_run_id(run_id) or self.watch_id_of(run_id) != watch_id:
            return None
        return run_id

    def new_watch_link(self, run_id: str) -> str:
        """A fresh watch id for the run; its previous watch id (if any) stops working."""
        watching = self._key(_check_run_id(run_id) + WATCHING_SUFFIX)
        for _ in range(WATCH_LINK_TRIES):
            found = self._get(watching, _SMALL_LIMIT)
            old = _ascii(found[0]) if found is not None else None
            watch_id = new_run_id()
            self._put(self._key(watch_id + WATCH_SUFFIX), run_id.encode("ascii"))
            condition = {"IfMatch": found[1]} if found is not None else {"IfNoneMatch": "*"}
            try:
                self._put(watching, watch_id.encode("ascii"), **condition)
            except (RunChanged, _Missing):   # another link was made (or the run deleted) meanwhile
                self._delete(self._key(watch_id + WATCH_SUFFIX))
                continue
            if is_valid_run_id(old):
                self._delete(self._key(old + WATCH_SUFFIX))
            return watch_id
        raise ObjectStoreError(f"a watch link for run {run_id[:6]} lost {WATCH_LINK_TRIES} races in a row")

    # ------------------------------------------------------------ live actors (ray_backend)
    def mark_actor(self, run_id: str) -> None:
        self._put(self._key(_check_run_id(run_id) + ACTOR_SUFFIX), run_id.encode("ascii"))

    def unmark_actor(self, run_id: str) -> None:
        self._delete(self._key(_check_run_id(run_id) + ACTOR_SUFFIX))

    def actor_marked(self, run_id: str) -> bool:
        return self._read_small(_check_run_id(run_id) + ACTOR_SUFFIX) == run_id

    def _read_small(self, name: str) -> str | None:
        found = self._get(self._key(name), _SMALL_LIMIT)
        return None if found is None else _ascii(found[0])

    def _remove_links(self, run_id: str) -> None:
        """The run's watch link (both objects) and actor marker."""
        watch_id = self.watch_id_of(run_id)
        self._delete(self._key(run_id + WATCHING_SUFFIX))
        if watch_id is not None:
            self._delete(self._key(watch_id + WATCH_SUFFIX))
        self._delete(self._key(run_id + ACTOR_SUFFIX))

    # ------------------------------------------------------------ listing and pruning
    def _listing(self) -> list[dict]:
        """Every object directly under the prefix (list_objects_v2, page by page)."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._key(""), Delimiter="/",
                                   PaginationConfig={"PageSize": self.page_size})
        objects: list[dict] = []
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            for page in pages:
                objects.extend(page.get("Contents", ()))
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(f"listing {self.url} failed: {_error_code(exc) or exc}") from exc
        return objects

    def _runs(self, objects: Iterable[dict]) -> list[tuple[RunInfo, str]]:
        runs = []
        for obj in objects:
            name = self._name_of(obj["Key"])
            run_id = name[: -len(RUN_FILE_SUFFIX)]
            if name.endswith(RUN_FILE_SUFFIX) and is_valid_run_id(run_id):
                runs.append((RunInfo(run_id, int(obj["Size"]), obj["LastModified"].timestamp()), obj["ETag"]))
        return runs

    def list_runs(self) -> list[RunInfo]:
        """Stored runs as RunInfo(run_id, size, mtime), newest first."""
        runs = [info for info, _ in self._runs(self._listing())]
        return sorted(runs, key=lambda run: run.mtime, reverse=True)

    def prune(self, now: float | None = None, keep: Iterable[str] = ()) -> list[str]:
        """Remove expired runs, then the oldest runs until the total size fits; return their ids.

        As RunStore.prune (LastModified is the mtime). Each run is deleted only at the ETag the
        listing showed, so a run saved after the listing is kept. Link objects older than the age
        limit whose run is gone (left by a crash between two requests) are removed too.
        """
        now = time.time() if now is None else float(now)
        keep_ids = {keep} if isinstance(keep, str) else set(keep)
        objects = self._listing()
        runs = sorted(self._runs(objects), key=lambda pair: pair[0].mtime)
        removed: list[str] = []

        def remove(info: RunInfo, etag: str) -> bool:
            try:
                self._delete(self._key(info.run_id + RUN_FILE_SUFFIX), etag)
            except RunChanged:     # saved again since the listing: it stays
                return False
            removed.append(info.run_id)
            self._remove_links(info.run_id)
            return True

        survivors = []
        for info, etag in runs:
            if info.run_id not in keep_ids and now - info.mtime > self.max_age_seconds:
                if not remove(info, etag):
                    survivors.append((info, etag))
            else:
                survivors.append((info, etag))
        total = sum(info.size for info, _ in survivors)
        for info, etag in survivors:   # oldest first
            if total <= self.max_total_bytes:
                break
            if info.run_id in keep_ids:
                continue
            if remove(info, etag):
                total -= info.size
        self._prune_orphans(objects, {info.run_id for info, _ in runs}, now)
        return removed

    def _prune_orphans(self, objects: list[dict], listed_runs: set[str], now: float) -> None:
        for obj in objects:
            if now - obj["LastModified"].timestamp() <= self.max_age_seconds:
                continue
            name = self._name_of(obj["Key"])
            for suffix in (WATCHING_SUFFIX, ACTOR_SUFFIX, WATCH_SUFFIX):
                owner = name[: -len(suffix)]
                if not name.endswith(suffix) or not is_valid_run_id(owner):
                    continue
                if suffix == WATCH_SUFFIX:
                    if self.run_of_watch(owner) is None:    # no run names it as its watch link
                        self._delete(obj["Key"])
                elif owner not in listed_runs:
                    self._delete(obj["Key"])
                break


class _Missing(Exception):
    """(Internal.) The object does not exist."""


def _ascii(data: bytes) -> str | None:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return None
