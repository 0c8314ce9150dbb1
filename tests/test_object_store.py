"""Tests for playground.runs.object_store: the run store in an S3-compatible bucket.

Against moto's in-process S3 (``mock_aws``), which enforces put_object's IfMatch / IfNoneMatch
(HTTP 412 PreconditionFailed, checked in test_moto_enforces_the_preconditions_the_store_relies_on),
and once over HTTP against moto's server on a loopback port, reached through AWS_ENDPOINT_URL as a
MinIO would be. No sleep: ages are set on moto's objects, and ``now`` is passed to prune.
"""

import datetime
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")
from botocore.exceptions import ClientError  # noqa: E402
from botocore.stub import Stubber  # noqa: E402
from moto import mock_aws  # noqa: E402

from playground.runs import store as store_module  # noqa: E402
from playground.runs.object_store import ObjectRunStore, ObjectStoreError, parse_url  # noqa: E402
from playground.runs.store import RunChanged, RunStore, new_run_id, open_store, store_location  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUCKET = "rnn-runs"
URL = f"s3://{BUCKET}/class/runs"
DAY = 86400.0


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch):
    """Credentials and region for moto; no endpoint (mock_aws intercepts AWS's own), no store env."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", store_module.ENV_STORE_URL,
                 store_module.ENV_DATA_DIR, store_module.ENV_MAX_AGE_DAYS, store_module.ENV_MAX_TOTAL_MB):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def bucket():
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield BUCKET


@pytest.fixture
def s3(bucket):
    return ObjectRunStore(URL)


def set_age(store: ObjectRunStore, name: str, now: float, age_seconds: float) -> None:
    """Make moto's object ``<prefix>/<name>`` look last written ``age_seconds`` before ``now``."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    key = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(store.bucket, store._key(name))
    key.last_modified = datetime.datetime.fromtimestamp(now - age_seconds, datetime.timezone.utc).replace(tzinfo=None)


def keys(store: ObjectRunStore) -> list[str]:
    return sorted(store._name_of(obj["Key"]) for obj in store._listing())


# ---------------------------------------------------------------- what moto gives
def test_moto_enforces_the_preconditions_the_store_relies_on(bucket):
    client = boto3.client("s3")
    etag = client.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    for conditions in ({"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef0123456789abcdef"'}):
        with pytest.raises(ClientError) as refused:
            client.put_object(Bucket=bucket, Key="k", Body=b"2", **conditions)
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.put_object(Bucket=bucket, Key="k", Body=b"2", IfMatch=etag)["ETag"] != etag
    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=bucket, Key="k", IfMatch=etag)     # conditional delete, stale
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"2"


# ---------------------------------------------------------------- runs
def test_round_trip_overwrite_version_and_delete(s3):
    run_id = new_run_id()
    assert s3.load(run_id) is None and s3.version(run_id) is None
    assert s3.saved_at(run_id) is None
    assert s3.save(run_id, b"first") == f"{URL}/{run_id}.npz"
    payload, version = s3.load_with_version(run_id)
    assert payload == b"first" and version == s3.version(run_id) is not None
    assert isinstance(s3.saved_at(run_id), float)
    s3.save(run_id, bytearray(b"second"))
    assert s3.load(run_id) == b"second" and s3.version(run_id) != version
    assert keys(s3) == [f"{run_id}.npz"]
    assert s3.delete(run_id) and not s3.delete(run_id)
    assert s3.load(run_id) is None and keys(s3) == []
    with pytest.raises(TypeError):
        s3.save(run_id, "text")


def test_a_second_store_instance_sees_the_same_runs(s3):
    run_id = new_run_id()
    s3.save(run_id, b"payload")
    other = ObjectRunStore(URL + "/")       # a trailing slash names the same prefix
    assert other.load(run_id) == b"payload" and other.url == s3.url
    assert ObjectRunStore(f"s3://{BUCKET}/elsewhere").load(run_id) is None


def test_save_unless_changed_refuses_a_stale_version_from_a_second_writer(s3):
    run_id = new_run_id()
    s3.save(run_id, b"start")
    tab_a, tab_b = ObjectRunStore(URL), ObjectRunStore(URL)      # two replicas, say
    _, read_a = tab_a.load_with_version(run_id)
    _, read_b = tab_b.load_with_version(run_id)
    written_a = tab_a.save_unless_changed(run_id, b"from A", read_a)
    with pytest.raises(RunChanged):
        tab_b.save_unless_changed(run_id, b"from B", read_b)     # A wrote since B read
    assert s3.load_with_version(run_id) == (b"from A", written_a)
    assert tab_a.save_unless_changed(run_id, b"A again", written_a) == s3.version(run_id)
    with pytest.raises(RunChanged):
        tab_a.save_unless_changed(run_id, b"A stale", written_a)
    s3.delete(run_id)
    with pytest.raises(RunChanged):        # deleted since it was read: S3 says 404, still "changed"
        tab_a.save_unless_changed(run_id, b"gone", read_a)
    assert s3.load(run_id) is None


def test_create_only_when_absent(s3):
    run_id = new_run_id()
    version = s3.save_unless_changed(run_id, b"new", None)
    assert version == s3.version(run_id)
    with pytest.raises(RunChanged):
        s3.save_unless_changed(run_id, b"clobber", None)
    assert s3.load(run_id) == b"new"


def test_a_concurrent_conditional_write_409_is_run_changed_and_other_errors_are_oserrors():
    client = boto3.client("s3", region_name="us-east-1")
    store = ObjectRunStore(URL, client=client)
    run_id = new_run_id()
    with Stubber(client) as stub:
        stub.add_client_error("put_object", service_error_code="ConditionalRequestConflict",
                              http_status_code=409)
        with pytest.raises(RunChanged):
            store.save_unless_changed(run_id, b"x", '"abc"')
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(ObjectStoreError) as denied:
            store.save(run_id, b"x")
        assert isinstance(denied.value, OSError) and "AccessDenied" in str(denied.value)


def test_persist_splits_two_sessions_on_one_run_in_the_bucket(s3):
    from playground.runs import saver
    run_id = new_run_id()
    s3.save(run_id, b"shared start")
    tab_a, tab_b = saver.SaveStatus(), saver.SaveStatus()
    tab_a.version = tab_b.version = s3.version(run_id)
    for status, iterations in ((tab_a, 2), (tab_b, 3)):
        saver._WORKER.submit(saver._Job(s3, run_id, _small_run(iterations), status))
        assert saver.wait_for_saves()
    assert tab_a.moved_to is None and tab_a.error is None
    moved = tab_b.moved_to
    assert moved and tab_b.error is None
    from playground.runs.run import Run
    assert Run.from_bytes(s3.load(run_id)).iteration == 2 and Run.from_bytes(s3.load(moved)).iteration == 3


def _small_run(iterations):
    from playground.runs.run import Run, RunConfig
    run = Run.from_builtin(RunConfig(corpus="hello", hidden_size=8, seq_length=5))
    if iterations:
        run.step(iterations)
    return run


# ---------------------------------------------------------------- watch links and actor markers
def test_a_new_watch_link_closes_the_old_one(s3):
    run_id = new_run_id()
    s3.save(run_id, b"payload")
    assert s3.watch_id_of(run_id) is None
    first = s3.new_watch_link(run_id)
    assert s3.watch_id_of(run_id) == first and s3.run_of_watch(first) == run_id
    second = ObjectRunStore(URL).new_watch_link(run_id)
    assert second != first and s3.run_of_watch(second) == run_id
    assert s3.run_of_watch(first) is None and s3.run_of_watch(new_run_id()) is None
    assert keys(s3) == sorted([f"{run_id}.npz", f"{second}.watch", f"{run_id}.watching"])
    s3.delete(run_id)
    assert s3.run_of_watch(second) is None and keys(s3) == []


def test_a_watch_link_made_while_another_is_made_still_leaves_one_working_link(s3, monkeypatch):
    run_id = new_run_id()
    s3.save(run_id, b"payload")
    rival = ObjectRunStore(URL)
    real_put, made = s3._put, []

    def put_racing(key, body, **conditions):     # another replica links the run first, once
        if key.endswith(".watching") and not made:
            made.append(rival.new_watch_link(run_id))
        return real_put(key, body, **conditions)

    monkeypatch.setattr(s3, "_put", put_racing)
    mine = s3.new_watch_link(run_id)             # its first .watching PUT is refused, then retried
    assert s3.run_of_watch(mine) == run_id and s3.run_of_watch(made[0]) is None
    assert keys(s3) == sorted([f"{run_id}.npz", f"{mine}.watch", f"{run_id}.watching"])


def test_actor_markers(s3):
    run_id = new_run_id()
    s3.save(run_id, b"payload")
    assert not s3.actor_marked(run_id)
    s3.mark_actor(run_id)
    assert ObjectRunStore(URL).actor_marked(run_id)
    s3.unmark_actor(run_id)
    s3.unmark_actor(run_id)                      # twice is fine
    assert not s3.actor_marked(run_id)
    s3.mark_actor(run_id)
    s3.delete(run_id)                            # the marker goes with its run
    assert not s3.actor_marked(run_id) and keys(s3) == []


# ---------------------------------------------------------------- listing and pruning
def test_prune_by_age_then_size_over_many_pages(bucket):
    now = 1_900_000_000.0
    store = ObjectRunStore(URL, max_age_seconds=7 * DAY, max_total_bytes=10 * 100, page_size=7)
    listings = []
    store.client.meta.events.register("after-call.s3.ListObjectsV2", lambda **kw: listings.append(1))
    old = [new_run_id() for _ in range(12)]
    young = [new_run_id() for _ in range(30)]
    mine = young[0]                              # the oldest young run: size pruning would take it
    for age, run_id in enumerate(old):
        store.save(run_id, b"o" * 100)
        set_age(store, run_id + ".npz", now, 8 * DAY + age)
    for age, run_id in enumerate(young):
        store.save(run_id, b"y" * 100)
        set_age(store, run_id + ".npz", now, 1000.0 - age)      # young[0] oldest, young[-1] newest
    store.new_watch_link(old[0])
    store.mark_actor(old[1])
    ObjectRunStore(f"s3://{BUCKET}/class").save(new_run_id(), b"n" * 5000)   # beside the prefix: not ours

    removed = store.prune(now=now, keep=[mine, old[2]])
    assert len(listings) >= 42 // 7              # the listing went page by page
    survivors = {info.run_id for info in store.list_runs()}
    assert survivors == {mine, old[2], *young[-8:]}      # 10 x 100 bytes fit, the 2 kept among them
    assert sorted(removed) == sorted([r for r in old if r != old[2]] + young[1:-8])
    assert [r for r in removed if r in old] == [r for r in reversed(old) if r != old[2]]   # oldest first
    assert not store.actor_marked(old[1]) and store.watch_id_of(old[0]) is None
    assert all(name.endswith(".npz") for name in keys(store))
    newest = store.list_runs()
    assert [info.mtime for info in newest] == sorted((info.mtime for info in newest), reverse=True)


def test_prune_keeps_a_run_saved_again_after_its_listing(s3, monkeypatch):
    now = 1_900_000_000.0
    run_id = new_run_id()
    s3.save(run_id, b"old")
    set_age(s3, run_id + ".npz", now, 30 * DAY)
    real_listing = s3._listing

    def listing_then_a_save():
        objects = real_listing()
        ObjectRunStore(URL).save(run_id, b"fresh")    # another replica saves it meanwhile
        return objects

    monkeypatch.setattr(s3, "_listing", listing_then_a_save)
    assert s3.prune(now=now) == []
    assert s3.load(run_id) == b"fresh"


def test_prune_removes_old_link_objects_whose_run_is_gone(s3):
    now = 1_900_000_000.0
    gone, alive = new_run_id(), new_run_id()
    s3.save(alive, b"payload")
    live_watch = s3.new_watch_link(alive)
    s3.mark_actor(gone)                                    # a marker left by a crash
    s3._put(s3._key(new_run_id() + ".watch"), gone.encode())   # a link object left by a crash
    for name in keys(s3):       # the run is young, every link object a month old
        set_age(s3, name, now, 60.0 if name.endswith(".npz") else 30 * DAY)
    assert s3.prune(now=now) == []
    assert keys(s3) == sorted([f"{alive}.npz", f"{live_watch}.watch", f"{alive}.watching"])


# ---------------------------------------------------------------- refusals before any request
@pytest.mark.parametrize("bad", ["", "short", "../../etc/passwd", "a" * 65, "abc/def" * 4, "x" * 20 + "\n",
                                 "x" * 20 + ".npz", None, 12345678901234567890])
def test_hostile_run_ids_are_refused_before_any_request(s3, bad):
    sent = []
    s3.client.meta.events.register("before-send.s3", lambda **kw: sent.append(kw))
    calls = [lambda: s3.save(bad, b"x"), lambda: s3.save_unless_changed(bad, b"x", None),
             lambda: s3.load(bad), lambda: s3.load_with_version(bad), lambda: s3.version(bad),
             lambda: s3.saved_at(bad), lambda: s3.delete(bad),
             lambda: s3.watch_id_of(bad), lambda: s3.run_of_watch(bad), lambda: s3.new_watch_link(bad),
             lambda: s3.mark_actor(bad), lambda: s3.unmark_actor(bad), lambda: s3.actor_marked(bad),
             lambda: s3.run_url(bad)]
    for call in calls:
        with pytest.raises(ValueError, match="run_id must be"):
            call()
    assert sent == []


SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCY"


@pytest.mark.parametrize("url, says", [
    (f"s3://AKIAEXAMPLE:{SECRET}@rnn-runs/runs", "credentials do not go in the URL"),
    (f"s3://{SECRET}@rnn-runs/runs", "credentials do not go in the URL"),
    ("s3://Bad_Bucket/runs", "'Bad_Bucket'"),
    ("s3://ab/runs", "'ab'"),
    ("s3://192.168.1.10/runs", "'192.168.1.10'"),
    ("s3://my..bucket/runs", "'my..bucket'"),
    ("s3:///runs", "'' in 's3:///runs' is not a bucket name"),
    ("s3://minio:9000/runs", "AWS_ENDPOINT_URL"),
    ("s3://rnn-runs/runs?versionId=1", "no query"),
    ("s3://rnn-runs/a/../b", "the prefix 'a/../b'"),
    ("s3://rnn-runs/a//b", "the prefix 'a//b'"),
])
def test_refused_urls_say_why_naming_the_value_without_secrets(url, says):
    with pytest.raises(ValueError) as refused:
        parse_url(url)
    sentence = str(refused.value)
    assert sentence.startswith("RNN_PLAYGROUND_STORE_URL: ") and says in sentence
    assert SECRET not in sentence and "AKIAEXAMPLE" not in sentence
    if "@" in url:
        assert "'s3://***@rnn-runs/runs'" in sentence


def test_good_urls():
    assert parse_url("s3://rnn-runs") == ("rnn-runs", "")
    assert parse_url(" s3://rnn-runs/ ") == ("rnn-runs", "")
    assert parse_url("S3://my.bucket-1/Class_2/runs.v1/") == ("my.bucket-1", "Class_2/runs.v1")


# ---------------------------------------------------------------- selection
def test_get_store_returns_an_object_store_for_an_s3_url_and_a_directory_store_otherwise(
        bucket, monkeypatch, tmp_path):
    from playground.runs import saver
    saver._store_at.cache_clear()
    monkeypatch.setenv(store_module.ENV_STORE_URL, URL)
    chosen = saver.get_store()
    assert isinstance(chosen, ObjectRunStore) and chosen.url == URL and store_location() == URL
    run_id = new_run_id()
    chosen.save(run_id, b"payload")
    assert ObjectRunStore(URL).load(run_id) == b"payload"
    with pytest.raises(ValueError, match="is a bucket, not a directory"):
        store_module.default_data_dir()
    monkeypatch.setenv(store_module.ENV_STORE_URL, f"file://{tmp_path}")
    assert isinstance(saver.get_store(), RunStore) and isinstance(open_store(store_location()), RunStore)
    saver._store_at.cache_clear()


def test_get_store_refuses_a_url_with_credentials_in_one_log_line_without_the_secret(monkeypatch, caplog):
    from playground.runs import saver
    monkeypatch.setenv(store_module.ENV_STORE_URL, f"s3://AKIAEXAMPLE:{SECRET}@rnn-runs/runs")
    with caplog.at_level(logging.WARNING, logger=saver.log.name):
        assert saver.get_store() is None
        assert saver.get_store() is None
    lines = [r.getMessage() for r in caplog.records if "credentials do not go in the URL" in r.getMessage()]
    assert len(lines) <= 1 and SECRET not in caplog.text and "AKIAEXAMPLE" not in caplog.text


def test_the_restore_of_a_link_reads_the_bucket(bucket, monkeypatch):
    """persist.restore_from_url through AppTest with the store in the bucket (uses saved_at)."""
    from streamlit.testing.v1 import AppTest

    from playground.runs import saver
    saver._store_at.cache_clear()
    monkeypatch.setenv(store_module.ENV_STORE_URL, URL)
    run_id = new_run_id()
    ObjectRunStore(URL).save(run_id, _small_run(3).to_bytes())
    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    assert at.session_state.app.run.iteration == 3 and "iteration 3" in at.success[0].value
    assert at.session_state.app.persist.status.saved_at == pytest.approx(ObjectRunStore(URL).saved_at(run_id))
    saver.wait_for_saves()
    saver._store_at.cache_clear()


def test_over_http_through_aws_endpoint_url_as_for_minio(monkeypatch):
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        store = open_store(URL)                  # boto3's own client: the endpoint from the env var
        assert isinstance(store, ObjectRunStore)
        run_id = new_run_id()
        first = store.save_unless_changed(run_id, b"one", None)
        store.save_unless_changed(run_id, b"two", first)
        with pytest.raises(RunChanged):
            store.save_unless_changed(run_id, b"stale", first)
        with pytest.raises(RunChanged):
            store.save_unless_changed(run_id, b"create", None)
        assert store.load(run_id) == b"two" and [r.run_id for r in store.list_runs()] == [run_id]
    finally:
        server.stop()


def test_an_unreachable_endpoint_is_an_oserror(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = open_store(URL)
    with pytest.raises(ObjectStoreError):
        store.load(new_run_id())


# ---------------------------------------------------------------- the default install
def test_the_default_install_never_imports_boto3(tmp_path):
    code = textwrap.dedent("""
        import sys
        from playground.runs import saver, store, watch
        from playground.session import persist
        from playground.runs import object_store          # the module alone does not import boto3
        opened = store.open_store(store.store_location())
        assert type(opened).__name__ == "RunStore", opened
        opened.save(store.new_run_id(), b"x")
        print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "moto")))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNN_PLAYGROUND_", "AWS_"))}
    env["RNN_PLAYGROUND_DATA_DIR"] = str(tmp_path / "runs")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "LOADED []" in out.stdout, out.stderr[-2000:]
