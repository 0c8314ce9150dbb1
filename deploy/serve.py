#!/usr/bin/env python3
"""Serve a class from several UI replicas: a Ray head (if asked), N Streamlit replicas on loopback
ports and HAProxy in front of them with cookie-inserted sticky sessions.

    .venv/bin/python deploy/serve.py --replicas 2 --port 8500 --ray-head
    .venv/bin/python deploy/serve.py --replicas 4 --port 80 --bind 0.0.0.0 --ray-address auto \\
        --store-url file:///srv/rnn-playground/runs

Every replica gets the same Ray address (its runs are named actors there), the same run store
(RNN_PLAYGROUND_STORE_URL) and the same Streamlit cookie secret (so a browser moved to another
replica when its own stopped keeps a valid XSRF cookie). Ctrl-C or SIGTERM stops HAProxy, then
the replicas (each saves its sessions' runs as it exits), then the Ray head if this script
started it. Importable: tests/browser/test_deploy_replicas.py drives a Deployment directly.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "haproxy.cfg.template"
HAPROXY = "/usr/sbin/haproxy"
START_SECONDS = 90.0          # a replica or Ray head not up by then is reported with its log
STOP_SECONDS = 45.0           # a Ray head drains for up to 30 s after SIGTERM


# `ray start` runs a cluster with token authentication and refuses to start without a token
# (RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, or ~/.ray/auth_token), while a process
# joining it with ray.init assumes no authentication unless told: the replicas are told. Set
# RAY_AUTH_MODE yourself to override.
RAY_TOKEN_FILE = "ray-auth-token"     # in the work directory, when a head is started and no token exists


def ray_auth_env(work_dir: Path, start_head: bool, environ=os.environ, home: Path | None = None) -> dict:
    """The environment a Ray head this script starts, and every process joining it, needs to agree
    on authentication. With token authentication and no token anywhere, a head started here gets
    a new one in ``work_dir`` (readable by this user only); joining a cluster someone else started,
    the token must be theirs, so none is made up."""
    mode = environ.get("RAY_AUTH_MODE", "token")
    if mode.lower() != "token" or "RAY_AUTH_TOKEN" in environ or "RAY_AUTH_TOKEN_PATH" in environ:
        return {"RAY_AUTH_MODE": mode}
    if ((home or Path.home()) / ".ray" / "auth_token").is_file() or not start_head:
        return {"RAY_AUTH_MODE": mode}
    token = work_dir / RAY_TOKEN_FILE
    if not token.is_file():
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))     # Ray's own format: 256 random bits in hex
    return {"RAY_AUTH_MODE": mode, "RAY_AUTH_TOKEN_PATH": str(token)}


class DeployError(RuntimeError):
    """A part of the deployment did not start; the message says which, with its log's end."""


def find_haproxy() -> str | None:
    """Debian's /usr/sbin/haproxy, else `haproxy` on PATH; None if neither exists."""
    if os.access(HAPROXY, os.X_OK):
        return HAPROXY
    return shutil.which("haproxy")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _log_tail(path: Path, limit: int = 4000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-limit:]


def _until(condition, what: str, log: Path, deadline_seconds: float = START_SECONDS, process=None) -> None:
    """Poll ``condition()`` until true; DeployError with ``log``'s end if ``process`` exits first
    or the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DeployError(f"{what} exited (code {process.returncode}):\n{_log_tail(log)}")
        if condition():
            return
        time.sleep(0.2)   # poll interval of a readiness check with a deadline
    raise DeployError(f"{what} was not up after {deadline_seconds:.0f} s:\n{_log_tail(log)}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
            return resp.read().decode().strip() == "ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _stop(process: subprocess.Popen | None, seconds: float = 15.0) -> None:
    """SIGTERM to the process's group (it was started in a session of its own), then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass
    try:   # what is left of the group (a Ray head's own daemons)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@dataclass
class Replica:
    index: int
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Deployment:
    """The parts this script started; ``stop()`` ends them, proxy first, Ray head last."""

    replicas_wanted: int = 2
    port: int = 8500
    bind: str = "127.0.0.1"
    ray_head: bool = False
    ray_address: str | None = None
    ray_cpus: int | None = None
    store_url: str | None = None
    work_dir: Path | None = None
    python: str = sys.executable
    haproxy: str | None = None
    env: dict = field(default_factory=dict)       # extra environment for the replicas
    replicas: list[Replica] = field(default_factory=list)
    proxy: subprocess.Popen | None = None
    head: subprocess.Popen | None = None
    ray_env: dict = field(default_factory=dict)   # what a process joining this Ray needs (ray_auth_env)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind
        return f"http://{host}:{self.port}"

    def start(self) -> "Deployment":
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="rnn-playground-deploy-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.store_url is None:
            self.store_url = (self.work_dir / "runs").as_uri()
        haproxy = self.haproxy or find_haproxy()
        if haproxy is None:
            raise DeployError("HAProxy is missing: install Debian's haproxy (apt-get install haproxy)")
        try:
            if self.ray_head or self.ray_address:
                self.ray_env = ray_auth_env(self.work_dir, start_head=self.ray_head)
            if self.ray_head:
                self._start_ray_head()
            self._cookie_secret = secrets.token_urlsafe(32)
            for index in range(self.replicas_wanted):
                self.start_replica(index)
            self._start_proxy(haproxy)
        except BaseException:
            self.stop()
            raise
        return self

    # ---------------------------------------------------------------- parts
    def _start_ray_head(self) -> None:
        gcs_port = free_port()
        log = self.work_dir / "ray-head.log"
        ray = str(Path(self.python).with_name("ray"))
        cmd = [ray, "start", "--head", "--block", "--port", str(gcs_port), "--include-dashboard=false",
               "--disable-usage-stats"]
        if self.ray_cpus:
            cmd += ["--num-cpus", str(self.ray_cpus)]
        with open(log, "wb") as out:
            self.head = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, **self.ray_env}, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.ray_address = f"127.0.0.1:{gcs_port}"
        _until(lambda: "will now block" in _log_tail(log, 100_000), "the Ray head", log, process=self.head)

    def start_replica(self, index: int) -> Replica:
        """Start replica ``index`` (again, after stop_replica) on a port of its own."""
        port = free_port()
        log = self.work_dir / f"replica-{index}.log"
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1", "RNN_PLAYGROUND_STORE_URL": self.store_url,
               "STREAMLIT_SERVER_COOKIE_SECRET": self._cookie_secret}   # not allowed on the command line
        if self.ray_address:
            env["RNN_PLAYGROUND_RAY_ADDRESS"] = self.ray_address
            env = {**self.ray_env, **env}
        cmd = [self.python, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none"]
        with open(log, "ab") as out:
            process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        replica = Replica(index, port, process, log)
        _until(lambda: _healthy(replica.url), f"replica {index}", log, process=process)
        self.replicas = [r for r in self.replicas if r.index != index] + [replica]
        self.replicas.sort(key=lambda r: r.index)
        return replica

    def stop_replica(self, index: int) -> None:
        """A graceful stop of one replica (SIGTERM: it saves its sessions' runs as it exits)."""
        for replica in self.replicas:
            if replica.index == index:
                _stop(replica.process, seconds=40.0)

    def haproxy_config(self) -> str:
        servers = "\n".join(f"    server replica{r.index} 127.0.0.1:{r.port} check cookie replica{r.index}"
                            for r in self.replicas)
        return string.Template(TEMPLATE.read_text()).substitute(bind=f"{self.bind}:{self.port}", servers=servers)

    def _start_proxy(self, haproxy: str) -> None:
        config = self.work_dir / "haproxy.cfg"
        config.write_text(self.haproxy_config())
        log = self.work_dir / "haproxy.log"
        check = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise DeployError(f"HAProxy refused its configuration ({config}):\n{check.stdout}{check.stderr}")
        with open(log, "wb") as out:
            # -db: stay in the foreground (this script is its supervisor), no daemon fork.
            self.proxy = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        _until(lambda: _healthy(self.url), "HAProxy", log, process=self.proxy)

    def stop(self) -> None:
        _stop(self.proxy)
        for replica in self.replicas:
            _stop(replica.process, seconds=40.0)
        _stop(self.head, seconds=STOP_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="Streamlit replicas (default 2)")
    parser.add_argument("--port", type=int, default=8500, help="HAProxy's port (default 8500)")
    parser.add_argument("--bind", default="127.0.0.1", help="HAProxy's address (default 127.0.0.1; 0.0.0.0 to serve "
                                                             "a room)")
    ray = parser.add_mutually_exclusive_group()
    ray.add_argument("--ray-head", action="store_true", help="start a Ray head on this machine for the runs")
    ray.add_argument("--ray-address", help="a running Ray cluster (auto, host:6379, ray://host:10001)")
    parser.add_argument("--ray-cpus", type=int, help="cores the Ray head offers (default: all)")
    parser.add_argument("--store-url", help="run store shared by replicas and actors (default: a directory "
                                            "under --work-dir)")
    parser.add_argument("--work-dir", type=Path, help="logs, HAProxy's configuration, the default store")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.replicas > 1 and not (args.ray_head or args.ray_address):
        print("note: without Ray, each replica trains its own sessions' runs; a link opened on another "
              "replica continues from the last save", file=sys.stderr)
    deployment = Deployment(args.replicas, args.port, args.bind, args.ray_head, args.ray_address, args.ray_cpus,
                            args.store_url, args.work_dir)
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        deployment.start()
        print(f"serving {deployment.url} from {len(deployment.replicas)} replicas "
              f"(ports {', '.join(str(r.port) for r in deployment.replicas)})"
              + (f", runs on Ray at {deployment.ray_address}" if deployment.ray_address else "")
              + (f" (its token: {deployment.ray_env['RAY_AUTH_TOKEN_PATH']}; a node joining it needs that"
                 " file as ~/.ray/auth_token)" if "RAY_AUTH_TOKEN_PATH" in deployment.ray_env else "")
              + f"; logs in {deployment.work_dir}. Ctrl-C stops everything.", flush=True)
        while all(r.process.poll() is None for r in deployment.replicas) and deployment.proxy.poll() is None:
            time.sleep(1)   # supervision: this loop only notices a part that exited
        print("a part of the deployment exited; stopping the rest", file=sys.stderr)
        return 1
    except DeployError as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        deployment.stop()


if __name__ == "__main__":
    sys.exit(main())
