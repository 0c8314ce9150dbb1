"""Ray actors on the bucket store: runs trained in actors, saved to and marked in an S3 bucket.

An actor is a process of its own, so the bucket is moto's server on a loopback port, reached
through AWS_ENDPOINT_URL as a MinIO would be. The variables (the store URL, the endpoint, dummy
credentials) are set before the module's local Ray starts: its node, and so every actor, has them,
as each node of a cluster has its own (docs/scaling.md). The runs go through the handle API the
app uses, the store through ``store_location()``; what the actors wrote is read from the bucket
itself. Skipped without moto's server extra; waits poll a condition with a deadline.
"""
from __future__ import annotations

import os

import pytest

boto3 = pytest.importorskip("boto3", reason="the bucket store needs boto3 (pip install -r requirements-s3.txt)")
pytest.importorskip("moto.server", reason="moto's server extra is not installed (pip install 'moto[s3,server]')")
from moto.server import ThreadedMotoServer  # noqa: E402

from playground.runs import store as store_module  # noqa: E402
from playground.runs import trainers  # noqa: E402
from playground.runs.object_store import ObjectRunStore  # noqa: E402
from playground.runs.run import Run  # noqa: E402
from playground.runs.store import new_run_id, open_store, store_location  # noqa: E402
from tests.test_ray_backend import local_ray, ray, trained_past  # noqa: E402
from tests.test_trainers import small_run, wait_for  # noqa: E402

BUCKET = "rnn-ray-runs"
PREFIX = "runs"
URL = f"s3://{BUCKET}/{PREFIX}"


@pytest.fixture(scope="module")
def bucket():
    """moto's server on 127.0.0.1 (a free port) with the bucket, and this process's environment
    pointing the store at it; yields an S3 client for reading what the actors wrote."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        with pytest.MonkeyPatch.context() as env:
            for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", store_module.ENV_MAX_AGE_DAYS,
                         store_module.ENV_MAX_TOTAL_MB):
                env.delenv(name, raising=False)
            env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
            env.setenv("AWS_ACCESS_KEY_ID", "testing")
            env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            env.setenv("AWS_CONFIG_FILE", os.devnull)
            env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
            env.setenv(store_module.ENV_STORE_URL, URL)
            client = boto3.client("s3")
            client.create_bucket(Bucket=BUCKET)
            yield client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(bucket):
    if ray is not None and ray.is_initialized():
        pytest.fail("a Ray already runs in this process: its actors would not have the bucket's variables",
                    pytrace=False)
    yield from local_ray()


@pytest.fixture
def store(bucket):
    opened = open_store(store_location())     # what the app opens: the bucket, from the env var
    assert isinstance(opened, ObjectRunStore) and opened.url == URL
    return opened


@pytest.fixture
def pool(cluster, store):
    pool = cluster.RayPool(max_training=16, idle_seconds=600)    # its store: store_location(), as the app's
    assert pool.store_dir == URL
    yield pool
    pool.close()


def objects_of(client, run_id: str) -> list[str]:
    """The names of the bucket's objects of ``run_id`` under the prefix (``<run_id>.npz``, ...)."""
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{run_id}.").get("Contents", [])
    return sorted(obj["Key"][len(PREFIX) + 1:] for obj in listed)


def stored_run(client, run_id: str) -> Run:
    return Run.from_bytes(client.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{run_id}.npz")["Body"].read())


def test_an_actor_marks_its_run_in_the_bucket_while_it_lives_and_unmarks_it_on_release(cluster, pool, bucket,
                                                                                       store):
    handle = pool.handle(small_run())
    run_id = new_run_id()
    handle.bind(run_id)
    handle.start()
    assert handle.worker_pid not in (None, os.getpid())
    assert objects_of(bucket, run_id) == [f"{run_id}.actor"]     # written by the actor's process
    assert store.actor_marked(run_id)
    trained_past(handle, 50)
    assert objects_of(bucket, run_id) == [f"{run_id}.actor"]     # while it trains
    run = handle.release()                                       # the last lease: the actor ends
    assert run.iteration >= 50
    wait_for(lambda: cluster.lookup(run_id) is None, "the actor to end with its last lease")
    assert objects_of(bucket, run_id) == [] and not store.actor_marked(run_id)


def test_an_actor_nobody_calls_saves_its_run_to_the_bucket_and_ends(cluster, bucket, store):
    idle_pool = cluster.RayPool(max_training=16, idle_seconds=1.0)
    handle = idle_pool.handle(small_run())
    run_id = new_run_id()
    handle.bind(run_id)
    handle.start()
    reached = trained_past(handle, 20).iteration
    assert objects_of(bucket, run_id) == [f"{run_id}.actor"]     # nothing saved from this process
    # The UI process goes away without a word: no more calls. The actor saves, unmarks, then ends.
    wait_for(lambda: cluster.lookup(run_id) is None, "the idle actor to end")
    assert objects_of(bucket, run_id) == [f"{run_id}.npz"]
    assert stored_run(bucket, run_id).iteration >= reached
    assert Run.from_bytes(store.load(run_id)).iteration == stored_run(bucket, run_id).iteration
    idle_pool.close()


def test_a_run_whose_actor_died_is_restored_from_the_bucket_with_the_restart_sentence(cluster, pool, bucket,
                                                                                     store, monkeypatch):
    """persist.restore_from_url's step on another replica: the bucket says the run had an actor,
    none lives, so the session gets the last save with the restarted-worker sentence."""
    from playground.session import persist
    handle = pool.handle(small_run())
    run_id = new_run_id()
    handle.bind(run_id)
    handle.start()
    trained_past(handle, 20)
    handle.pause()
    store.save(run_id, handle.snapshot().to_bytes())             # the session's save
    saved = stored_run(bucket, run_id).iteration
    ray.kill(cluster.lookup(run_id), no_restart=True)           # its node died
    wait_for(lambda: cluster.lookup(run_id) is None, "the killed actor to be gone")
    assert objects_of(bucket, run_id) == [f"{run_id}.actor", f"{run_id}.npz"]   # the marker stays

    other_replica = cluster.RayPool(max_training=16)
    monkeypatch.setattr(trainers, "get_pool", lambda: other_replica)
    stored = Run.from_bytes(store.load(run_id))
    run, sentence = persist._live_copy(run_id, store, stored)
    assert run is stored and run.iteration == saved
    assert sentence == trainers.restarted_sentence(saved)
    assert objects_of(bucket, run_id) == [f"{run_id}.npz"]       # the marker is taken away
    assert persist._live_copy(run_id, store, stored) == (stored, None)   # said once
    assert cluster.lookup(run_id) is None                        # no actor was made for it
    handle.release()                                             # its actor is gone: nothing to end
    other_replica.close()
