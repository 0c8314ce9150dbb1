"""Watch links: a run trained by its owner, followed live by anyone who has its watch link.

A watch session holds a ``WatchHandle`` where an owner's session holds a ``TrainerHandle``. It
reads the owner's run (progress without taking the owner's news, snapshots shared with the owner's
own views) and refuses every control with ``WatchOnly``: the refusal is here, below the page, so a
forged request from a watch session changes nothing however it reaches the server.

When no session of this server holds the run (its owner's tab is gone, the server restarted), the
watcher reads the run's last save from the store and looks for the owner again on every call.
No streamlit import: the permission rules are tested without a server.
"""
from __future__ import annotations

import time
import uuid
from typing import Callable

from playground.runs import trainers
from playground.runs.run import Run
from playground.runs.store import RunStore, is_valid_run_id

STORE_CHECK_SECONDS = 2.0   # without a live owner: how often the stored copy is checked for a newer save
QUERY_KEY = "watch"


class WatchOnly(PermissionError):
    """An action only the run's owner may take, asked for by a watch session."""


class WatchClosed(LookupError):
    """The watch link was revoked by its owner (or never existed)."""


class WatchHandle:
    """A watch session's view of someone else's run: the TrainerHandle's read side only.

    ``find_owner(run_id)`` returns the TrainerHandle of a live session training that run in this
    server, or None. ``latest`` is the newest copy of the run this watcher has seen.
    """

    def __init__(self, store: RunStore, watch_id: str,
                 find_owner: Callable[[str], trainers.TrainerHandle | None]):
        if not is_valid_run_id(watch_id):
            raise WatchClosed("that is not a watch link")
        run_id = store.run_of_watch(watch_id)
        if run_id is None:
            raise WatchClosed("that watch link was closed by its owner, or never existed")
        self.store, self.watch_id, self.run_id, self._find_owner = store, watch_id, run_id, find_owner
        self._stored_version: str | None = None
        self._checked_at = -float("inf")
        self.latest: Run | None = None
        self.snapshot()
        if self.latest is None:
            raise WatchClosed("the run behind that watch link is no longer stored")

    # ---------------------------------------------------------------- what a watcher may do
    @property
    def closed(self) -> bool:
        """True once the owner has revoked this watch link (a new one was made)."""
        return self.store.run_of_watch(self.watch_id) != self.run_id

    def owner(self) -> trainers.TrainerHandle | None:
        return self._find_owner(self.run_id)

    @property
    def running(self) -> bool:
        owner = self.owner()
        return bool(owner is not None and owner.running)

    def progress(self) -> trainers.Progress:
        """The run's progress; the owner's alerts and stops stay the owner's."""
        owner = self.owner()
        if owner is not None:
            return owner.peek()
        self.snapshot()
        return trainers.progress_of(self.latest, False)

    def snapshot(self, max_age: float = 0.0) -> Run:
        """The run as its owner has it (at most ``max_age`` s old while it trains), else its last save."""
        owner = self.owner()
        if owner is not None:
            self.latest = owner.snapshot(max_age=max_age)
            return self.latest
        now = time.monotonic()
        if self.latest is None or now - self._checked_at >= STORE_CHECK_SECONDS:
            self._checked_at = now
            found = self.store.load_with_version(self.run_id)
            if found is not None and found[1] != self._stored_version:
                self.latest, self._stored_version = Run.from_bytes(found[0]), found[1]
        return self.latest

    # ---------------------------------------------------------------- what only the owner may do
    def _refuse(self, action: str):
        raise WatchOnly(f"{action} is for the run's owner; a watch link only shows the run")

    def start(self, stop_at=None):
        self._refuse("Start")

    def pause(self):
        self._refuse("Pause")

    def step(self, n: int = 1):
        self._refuse("Step")

    def apply_live(self, config):
        self._refuse("Changing the settings")

    def set_stop_at(self, stop_at):
        self._refuse("Pause at iteration")

    def replace(self, run):
        self._refuse("Reset or loading a checkpoint")

    def release(self):
        self._refuse("Releasing the trainer")


def fork(run: Run) -> Run:
    """An independent copy of ``run`` (weights, optimizer state, position, samples) as a new run:
    the watcher's own from then on; the original is untouched."""
    mine = run.copy()
    mine.uid = uuid.uuid4().hex          # another run from here on: views and saves tell them apart
    mine._init_runtime()                 # its own guard copy and timers; the samples come along
    mine.samples.extend(run.samples)
    return mine
