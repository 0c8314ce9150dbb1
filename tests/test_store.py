"""Tests for playground.runs.store: the on-disk run store (no server, no sleep)."""

import hashlib
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from playground.runs import store
from playground.runs.store import (
    RunInfo,
    RunStore,
    SaveThrottle,
    default_data_dir,
    is_valid_run_id,
    new_run_id,
)

NOW = 1_800_000_000.0  # a fixed "current time" so ages are exact
DAY = 86400.0

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (store.ENV_DATA_DIR, store.ENV_MAX_AGE_DAYS, store.ENV_MAX_TOTAL_MB):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run_store(tmp_path):
    return RunStore(tmp_path / "runs")


def save_aged(run_store, run_id, payload, mtime):
    path = run_store.save(run_id, payload)
    os.utime(path, (mtime, mtime))
    return path


def self_checking_payload(tag: int, size: int) -> bytes:
    """Payload whose last 32 bytes are the SHA-256 of the rest, so truncation/mixing is detectable."""
    body = bytes([tag % 256]) * size + tag.to_bytes(8, "big")
    return body + hashlib.sha256(body).digest()


def is_complete(payload: bytes) -> bool:
    return len(payload) > 32 and hashlib.sha256(payload[:-32]).digest() == payload[-32:]


def temp_files(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ---- run ids ----------------------------------------------------------------------------------

def test_new_run_ids_are_valid_and_distinct():
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(is_valid_run_id(run_id) for run_id in ids)
    assert all(len(run_id) >= 22 for run_id in ids)


@pytest.mark.parametrize("bad", [
    "", "../x", "../../etc/passwd", "/etc/passwd", "..", ".", "a" * 15, "a" * 65,
    "aaaaaaaaaaaaaaaa/..", "aaaaaaaaaaaaaaaa\n", "aaaaaaaaaaaaaaaa.npz", "aaaaaaaa\x00aaaaaaaa",
    "aaaaaaaa aaaaaaaa", "aaaaaaaa\\aaaaaaaa", "ааааааааааааааааа",  # Cyrillic look-alikes
    "%2e%2e%2fetc%2fpasswd", None, 12345678901234567890, b"aaaaaaaaaaaaaaaa",
])
def test_invalid_run_ids_are_rejected_everywhere(run_store, tmp_path, bad):
    assert not is_valid_run_id(bad)
    for call in (run_store.load, run_store.version, run_store.delete, run_store.path_for):
        with pytest.raises(ValueError, match="run_id"):
            call(bad)
    with pytest.raises(ValueError, match="run_id"):
        run_store.save(bad, b"x")
    # Nothing was written anywhere, inside or outside the data dir.
    assert list(run_store.data_dir.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_valid_run_id_charset_and_length():
    assert is_valid_run_id("a" * 16)
    assert is_valid_run_id("A-z_09" * 10 + "abcd")  # 64 characters
    assert is_valid_run_id("-leading-dash-is-fine")


# ---- save / load / delete / exists ------------------------------------------------------------

def test_round_trip_overwrite_and_delete(run_store):
    run_id = new_run_id()
    assert run_store.load(run_id) is None
    assert run_store.version(run_id) is None

    path = run_store.save(run_id, b"\x00first\xff")
    assert path == run_store.data_dir / f"{run_id}.npz"
    assert run_store.version(run_id) is not None
    assert run_store.load(run_id) == b"\x00first\xff"

    run_store.save(run_id, bytearray(b"second"))
    assert run_store.load(run_id) == b"second"
    run_store.save(run_id, b"")
    assert run_store.load(run_id) == b""

    assert run_store.delete(run_id) is True
    assert run_store.delete(run_id) is False
    assert run_store.load(run_id) is None
    assert temp_files(run_store.data_dir) == []


def test_save_rejects_non_bytes_payload(run_store):
    with pytest.raises(TypeError, match="payload"):
        run_store.save(new_run_id(), "text is not bytes")
    assert list(run_store.data_dir.iterdir()) == []


def test_survives_a_new_store_instance(tmp_path):
    """A server restart builds a new RunStore on the same directory."""
    run_id = new_run_id()
    RunStore(tmp_path / "runs").save(run_id, b"checkpoint")
    assert RunStore(tmp_path / "runs").load(run_id) == b"checkpoint"


def test_failed_save_keeps_old_file_and_leaves_no_temp(run_store, monkeypatch):
    run_id = new_run_id()
    run_store.save(run_id, b"old complete payload")

    def failing_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(store.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        run_store.save(run_id, b"new payload")
    monkeypatch.undo()
    assert run_store.load(run_id) == b"old complete payload"
    assert temp_files(run_store.data_dir) == []


def test_load_of_unreadable_entry_raises_oserror(run_store, tmp_path):
    dir_id, link_id = new_run_id(), new_run_id()
    (run_store.data_dir / f"{dir_id}.npz").mkdir()
    with pytest.raises(OSError):
        run_store.load(dir_id)

    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"not yours")
    try:
        (run_store.data_dir / f"{link_id}.npz").symlink_to(outside)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not available")
    if hasattr(os, "O_NOFOLLOW"):
        with pytest.raises(OSError):
            run_store.load(link_id)


@posix_only
def test_permissions_are_private(tmp_path):
    old_umask = os.umask(0o022)
    before = stat.S_IMODE(os.stat(tmp_path).st_mode)
    try:
        # A directory that exists already (a shared one, like /tmp) keeps its mode: locking it
        # would lock every other user out. The run files in it are private.
        existing = tmp_path / "shared"
        existing.mkdir(mode=0o1777)
        os.chmod(existing, 0o1777)
        run_store = RunStore(existing)
        assert stat.S_IMODE(os.stat(existing).st_mode) == 0o1777

        run_id = new_run_id()
        path = run_store.save(run_id, b"payload")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        os.chmod(path, 0o644)
        run_store.save(run_id, b"payload 2")  # a rewrite is private again
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

        assert stat.S_IMODE(os.stat(existing).st_mode) == 0o1777   # saving did not change it either

        nested = RunStore(tmp_path / "a" / "b" / "runs")   # what the store creates is private
        for created in (tmp_path / "a", tmp_path / "a" / "b", nested.data_dir):
            assert stat.S_IMODE(os.stat(created).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(tmp_path).st_mode) == before      # a parent it did not create
    finally:
        os.umask(old_umask)


# ---- list_runs ----------------------------------------------------------------------------------

def test_list_runs_newest_first_and_ignores_foreign_files(run_store):
    old_id, new_id = new_run_id(), new_run_id()
    save_aged(run_store, old_id, b"12345", NOW - 100)
    save_aged(run_store, new_id, b"123", NOW - 10)
    (run_store.data_dir / "notes.txt").write_text("ignored")
    (run_store.data_dir / "bad.id.npz").write_bytes(b"ignored: invalid id")
    (run_store.data_dir / f".{new_run_id()}.abc.tmp").write_bytes(b"temp")
    (run_store.data_dir / f"{new_run_id()}.npz").mkdir()  # not a regular file

    runs = run_store.list_runs()
    assert runs == [RunInfo(new_id, 3, NOW - 10), RunInfo(old_id, 5, NOW - 100)]
    assert runs[0].run_id == new_id and runs[0][1] == 3  # plain tuple access works too


def test_list_runs_of_missing_dir_is_empty(run_store):
    run_store.data_dir.rmdir()
    assert run_store.list_runs() == []
    assert run_store.prune(now=NOW) == []


def test_listing_and_prune_tolerate_files_vanishing_after_listing(run_store, monkeypatch):
    """Another session deletes a file after the directory was read but before it is statted."""
    kept_id = new_run_id()
    run_store.save(kept_id, b"b")
    vanishing = []
    original_entries = run_store._entries

    def entries_then_another_session_deletes():
        entries = original_entries()
        while vanishing:
            (run_store.data_dir / f"{vanishing.pop()}.npz").unlink()
        return entries

    monkeypatch.setattr(run_store, "_entries", entries_then_another_session_deletes)

    vanishing.append(new_run_id())
    run_store.save(vanishing[0], b"a")
    assert [run.run_id for run in run_store.list_runs()] == [kept_id]

    expired_id = new_run_id()
    vanishing.append(new_run_id())
    save_aged(run_store, vanishing[0], b"a", NOW - 30 * DAY)
    save_aged(run_store, expired_id, b"c", NOW - 30 * DAY)
    assert run_store.prune(now=NOW, keep=[kept_id]) == [expired_id]
    assert [run.run_id for run in run_store.list_runs()] == [kept_id]


def test_prune_tolerates_run_removed_between_stat_and_unlink(run_store, monkeypatch):
    gone_id, expired_id = new_run_id(), new_run_id()
    save_aged(run_store, gone_id, b"a", NOW - 30 * DAY)
    save_aged(run_store, expired_id, b"b", NOW - 30 * DAY)
    original_stat_entries = run_store._stat_entries

    def stat_then_another_session_deletes():
        listed = original_stat_entries()
        run_store.delete(gone_id)
        return listed

    monkeypatch.setattr(run_store, "_stat_entries", stat_then_another_session_deletes)
    # Only files this prune actually removed are reported.
    assert run_store.prune(now=NOW) == [expired_id]
    assert run_store.list_runs() == []


# ---- prune ----------------------------------------------------------------------------------------

def test_prune_by_age_respects_keep(tmp_path):
    run_store = RunStore(tmp_path / "runs", max_age_seconds=7 * DAY)
    expired, expired_kept, fresh, boundary = (new_run_id() for _ in range(4))
    save_aged(run_store, expired, b"x", NOW - 8 * DAY)
    save_aged(run_store, expired_kept, b"x", NOW - 30 * DAY)
    save_aged(run_store, fresh, b"x", NOW - 6 * DAY)
    save_aged(run_store, boundary, b"x", NOW - 7 * DAY)  # exactly max age: not older, stays

    assert run_store.prune(now=NOW, keep=[expired_kept]) == [expired]
    assert {run.run_id for run in run_store.list_runs()} == {expired_kept, fresh, boundary}
    assert run_store.prune(now=NOW, keep=[expired_kept]) == []


def test_prune_by_size_removes_oldest_first_and_never_kept(tmp_path):
    run_store = RunStore(tmp_path / "runs", max_total_bytes=250)
    ids = [new_run_id() for _ in range(4)]
    for age, run_id in zip((40, 30, 20, 10), ids):  # ids[0] is the oldest
        save_aged(run_store, run_id, b"x" * 100, NOW - age)

    # 400 bytes > 250: the oldest go first, but ids[0] is the current session's run.
    removed = run_store.prune(now=NOW, keep=ids[0])  # a bare str counts as one id
    assert removed == [ids[1], ids[2]]
    assert {run.run_id for run in run_store.list_runs()} == {ids[0], ids[3]}
    assert sum(run.size for run in run_store.list_runs()) <= 250


def test_prune_cannot_go_below_kept_runs(tmp_path):
    run_store = RunStore(tmp_path / "runs", max_total_bytes=10)
    big, other = new_run_id(), new_run_id()
    save_aged(run_store, big, b"x" * 50, NOW - 50)
    save_aged(run_store, other, b"x" * 5, NOW - 5)
    assert run_store.prune(now=NOW, keep={big}) == [other]
    assert run_store.load(big) == b"x" * 50


def test_prune_age_then_size(tmp_path):
    run_store = RunStore(tmp_path / "runs", max_age_seconds=DAY, max_total_bytes=150)
    expired, older, newer = new_run_id(), new_run_id(), new_run_id()
    save_aged(run_store, expired, b"x" * 100, NOW - 2 * DAY)
    save_aged(run_store, older, b"x" * 100, NOW - 200)
    save_aged(run_store, newer, b"x" * 100, NOW - 100)
    assert run_store.prune(now=NOW) == [expired, older]
    assert [run.run_id for run in run_store.list_runs()] == [newer]


def test_prune_removes_only_stale_temp_files(run_store):
    stale = run_store.data_dir / f".{new_run_id()}.crashed.tmp"
    in_progress = run_store.data_dir / f".{new_run_id()}.writing.tmp"
    for path, age in ((stale, store.STALE_TEMP_SECONDS + 1), (in_progress, 5)):
        path.write_bytes(b"partial")
        os.utime(path, (NOW - age, NOW - age))
    assert run_store.prune(now=NOW) == []  # temp files are not runs: not in the returned ids
    assert not stale.exists()
    assert in_progress.exists()


def test_prune_default_now_uses_wall_clock(run_store):
    run_id = new_run_id()
    save_aged(run_store, run_id, b"x", 1_000.0)  # 1970: far older than 7 days
    assert run_store.prune() == [run_id]


# ---- configuration ------------------------------------------------------------------------------

def test_defaults(run_store):
    assert run_store.max_age_seconds == 7 * DAY
    assert run_store.max_total_bytes == 500 * 2**20


def test_env_vars_override_defaults_but_not_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_MAX_AGE_DAYS, "1.5")
    monkeypatch.setenv(store.ENV_MAX_TOTAL_MB, " 2 ")
    from_env = RunStore(tmp_path / "runs")
    assert from_env.max_age_seconds == 1.5 * DAY
    assert from_env.max_total_bytes == 2 * 2**20

    explicit = RunStore(tmp_path / "runs", max_age_seconds=60, max_total_bytes=1000)
    assert (explicit.max_age_seconds, explicit.max_total_bytes) == (60, 1000)


def test_empty_env_var_means_default(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ENV_MAX_AGE_DAYS, "")
    assert RunStore(tmp_path / "runs").max_age_seconds == 7 * DAY


@pytest.mark.parametrize("env_name", ["RNN_PLAYGROUND_MAX_AGE_DAYS", "RNN_PLAYGROUND_MAX_TOTAL_MB"])
@pytest.mark.parametrize("bad", ["abc", "0", "-3", "nan", "inf", "1e400", "7 days"])
def test_bad_env_values_raise_naming_the_variable(tmp_path, monkeypatch, env_name, bad):
    monkeypatch.setenv(env_name, bad)
    with pytest.raises(ValueError, match=env_name) as error:
        RunStore(tmp_path / "runs")
    assert repr(bad) in str(error.value)


@pytest.mark.parametrize("keyword", ["max_age_seconds", "max_total_bytes"])
@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "many", True])
def test_bad_arguments_raise_naming_the_argument(tmp_path, keyword, bad):
    with pytest.raises(ValueError, match=keyword):
        RunStore(tmp_path / "runs", **{keyword: bad})


def test_default_data_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv(store.ENV_DATA_DIR, str(tmp_path / "custom"))
    assert default_data_dir() == tmp_path / "custom"
    monkeypatch.setenv(store.ENV_DATA_DIR, "~/rnn-runs")
    assert default_data_dir() == Path.home() / "rnn-runs"


def test_default_data_dir_per_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir("linux") == tmp_path / "xdg" / "rnn-playground" / "runs"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    home = Path.home()
    assert default_data_dir("linux") == home / ".cache" / "rnn-playground" / "runs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir("linux") == home / ".cache" / "rnn-playground" / "runs"
    assert default_data_dir("darwin") == home / "Library" / "Caches" / "rnn-playground" / "runs"
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_data_dir("win32") == tmp_path / "local" / "rnn-playground" / "runs"
    if sys.platform.startswith("linux"):
        assert default_data_dir() == default_data_dir("linux")


# ---- concurrency ----------------------------------------------------------------------------------

def run_threads(workers):
    errors = []

    def guarded(worker):
        try:
            worker()
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_concurrent_saves_to_different_ids_and_the_same_id(run_store):
    own_ids = [new_run_id() for _ in range(6)]
    shared_id = new_run_id()
    start = threading.Barrier(len(own_ids))
    written_to_shared = set()

    def worker(index):
        def body():
            start.wait()
            for round_number in range(15):
                tag = index * 100 + round_number
                payload = self_checking_payload(tag, 20_000 + 1000 * index)
                run_store.save(own_ids[index], payload)
                run_store.save(shared_id, payload)
                written_to_shared.add(payload)
                assert is_complete(run_store.load(shared_id))
        return body

    run_threads([worker(i) for i in range(len(own_ids))])

    for index, run_id in enumerate(own_ids):
        assert run_store.load(run_id) == self_checking_payload(index * 100 + 14, 20_000 + 1000 * index)
    final_shared = run_store.load(shared_id)
    assert is_complete(final_shared) and final_shared in written_to_shared
    assert temp_files(run_store.data_dir) == []
    assert len(run_store.list_runs()) == len(own_ids) + 1


def test_prune_concurrent_with_saves_from_other_store_instances(tmp_path):
    """Sessions each holding their own RunStore: prune never breaks a save or a kept run."""
    data_dir = tmp_path / "runs"
    kept_ids = [new_run_id() for _ in range(3)]
    start = threading.Barrier(len(kept_ids) + 1)

    def saver(run_id, index):
        def body():
            session_store = RunStore(data_dir, max_total_bytes=1)
            start.wait()
            for round_number in range(20):
                session_store.save(run_id, self_checking_payload(index * 100 + round_number, 5000))
                session_store.prune(keep=kept_ids)
        return body

    def pruner():
        session_store = RunStore(data_dir, max_total_bytes=1)
        start.wait()
        for _ in range(40):
            session_store.prune(keep=kept_ids)

    run_threads([saver(run_id, i) for i, run_id in enumerate(kept_ids)] + [pruner])
    final_store = RunStore(data_dir)
    for index, run_id in enumerate(kept_ids):
        assert final_store.load(run_id) == self_checking_payload(index * 100 + 19, 5000)
    assert temp_files(data_dir) == []


# ---- autosave throttle ----------------------------------------------------------------------------

def saved_at(last_saved_at, interval=30.0) -> SaveThrottle:
    throttle = SaveThrottle(interval)
    if last_saved_at is not None:
        throttle.mark_saved(now=last_saved_at)
    return throttle


def test_save_throttle_is_due_when_never_saved_after_the_interval_and_when_the_clock_went_back():
    assert saved_at(None).due(now=0.0)
    assert not saved_at(100.0).due(now=129.9)
    assert saved_at(100.0).due(now=130.0)
    assert saved_at(100.0).due(now=50.0)  # clock went backwards: save rather than stall
    assert not saved_at(100.0, interval=5).due(now=104.0)
    assert saved_at(100.0, interval=5).due(now=105.0)
    with pytest.raises(ValueError, match="interval"):
        saved_at(None, interval=0)


def test_save_throttle_with_injected_clock():
    clock_now = [1000.0]
    throttle = SaveThrottle(30.0, clock=lambda: clock_now[0])
    assert throttle.interval_seconds == 30
    assert throttle.due()  # never saved

    throttle.mark_saved()
    assert throttle.last_saved_at == 1000.0
    clock_now[0] = 1029.0
    assert not throttle.due()
    clock_now[0] = 1030.0
    assert throttle.due()

    throttle.mark_saved(now=1025.0)  # explicit time wins over the clock (e.g. save on pause)
    assert not throttle.due()
    assert throttle.due(now=1055.0)


def test_save_throttle_rejects_bad_interval():
    with pytest.raises(ValueError, match="interval_seconds"):
        SaveThrottle(interval_seconds=-1)


# ---------------------------------------------------------------- versions and several processes
def test_every_save_makes_a_new_version_and_load_reads_the_one_it_returns(run_store):
    run_id = new_run_id()
    assert run_store.version(run_id) is None
    first = run_store.save_unless_changed(run_id, b"one", None)
    assert run_store.load_with_version(run_id) == (b"one", first) and run_store.version(run_id) == first
    second = run_store.save_unless_changed(run_id, b"one", first)     # same bytes, still a new version
    assert second != first and run_store.load_with_version(run_id) == (b"one", second)
    run_store.save(run_id, b"two")                                    # an unconditional save counts too
    assert run_store.version(run_id) not in (first, second)


def test_a_save_from_a_stale_version_raises_and_writes_nothing(run_store):
    run_id = new_run_id()
    old = run_store.save_unless_changed(run_id, b"theirs", None)
    run_store.save_unless_changed(run_id, b"newer", old)
    with pytest.raises(store.RunChanged):
        run_store.save_unless_changed(run_id, b"mine", old)
    with pytest.raises(store.RunChanged):
        run_store.save_unless_changed(run_id, b"mine", None)          # None: it must not exist yet
    assert run_store.load(run_id) == b"newer"
    assert not [p for p in run_store.data_dir.iterdir() if p.name.endswith(".tmp")]


COUNTER_WRITER = """
import sys
from playground.runs.store import RunChanged, RunStore
store, run_id, times = RunStore(sys.argv[1]), sys.argv[2], int(sys.argv[3])
done = 0
while done < times:   # read, add one, write back unless another process wrote in between
    payload, version = store.load_with_version(run_id)
    try:
        store.save_unless_changed(run_id, str(int(payload) + 1).encode(), version)
        done += 1
    except RunChanged:
        pass
"""


@pytest.mark.skipif(store.fcntl is None, reason="the cross-process lock needs fcntl.flock")
def test_processes_sharing_the_directory_never_lose_a_write(run_store):
    """Two processes each add 150 to a counter stored as a run, by read / modify / save unless
    changed: every increment lands, which needs the version check and the rename to be one step
    for every process."""
    import subprocess
    run_id = new_run_id()
    run_store.save(run_id, b"0")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    writers = [subprocess.Popen([sys.executable, "-c", COUNTER_WRITER, str(run_store.data_dir), run_id, "150"],
                                env=env) for _ in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert run_store.load(run_id) == b"300"
