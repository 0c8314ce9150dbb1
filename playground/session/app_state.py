"""The app's state for one browser session: one typed object, and the widget keys pages share.

Streamlit keeps both in ``st.session_state``; this module is the only code that reads or writes
them. ``app()`` is the session's AppState (under ``APP_KEY``). Widget values stay under Streamlit's
own keys, since a widget owns its key: the Train page's draft settings ``cfg_<field>`` (one per
RunConfig field), the chart's ``loss_unit`` and ``loss_smoothing`` and the sidebar's ``stop_at`` are
named here and read through the functions below. Keys used by one page only belong to that page,
mostly with its prefix (``hs_``, ``smp_``, ``bp_``, ``guess_``, ``files_``, ``data_``, ``present_``,
``timeline_``, ``lesson``; the sidebar's buttons ``btn_``).
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import streamlit as st

from playground.runs.run import RunConfig

if TYPE_CHECKING:
    from playground.runs.run import Run
    from playground.runs.saver import SessionPersist
    from playground.runs.trainers import TrainerHandle
    from playground.runs.watch import WatchHandle
    from playground.views.compare import KeptCurve

APP_KEY = "app"
DRAFT_PREFIX = "cfg_"              # + a RunConfig field: the Train page's draft of that setting
LOSS_UNIT_KEY = "loss_unit"        # the loss chart's unit (figures' UNITS)
SMOOTHING_KEY = "loss_smoothing"   # the loss chart's smoothing (None: min-char-rnn's own)
STOP_AT_KEY = "stop_at"            # the sidebar's "Pause at iteration" (0: never)
DEFAULT_LOSS_UNIT = "window"


@dataclass(eq=False)
class AppState:
    """What one browser session holds besides its widget values."""
    # The run the pages read: a snapshot from the trainer (never trained in this process).
    run: Run | None = None
    # The run's handle in the trainer pool, or a WatchHandle in a watch session.
    trainer: TrainerHandle | WatchHandle | None = None
    # The snapshot last taken from ``trainer``: a ``run`` that is not this one was put in from
    # outside (a test, say) and becomes the trainer's run.
    trainer_view: Run | None = None
    running: bool = False
    # The uploaded or pasted corpus, once accepted (set with set_custom_text, which counts versions).
    custom_text: str | None = None
    custom_label: str | None = None
    custom_text_version: int = 0
    kept_curves: tuple[KeptCurve, ...] = ()   # other runs' loss curves on the Train chart
    flash: tuple[str, str] | None = None  # (kind, message): shown once at the top of the next script run
    flash_shown: str | None = None        # the message shown at the top of this script run
    sent_stop_at: int | None = None       # the "Pause at iteration" the trainer was last given
    presenting: bool | None = None        # presenter mode; None until read from the URL
    page_path: str = ""                   # the URL path of the page this script run shows ("" = start)
    persist: SessionPersist | None = None # this session's save record (playground.session.persist)
    # Around every use of the run (see state.run_lock for the rule).
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


def app() -> AppState:
    """The session's AppState, made on first use."""
    ss = st.session_state
    if APP_KEY not in ss:
        ss[APP_KEY] = AppState()
    return ss[APP_KEY]


def flash(kind: str, message: str) -> None:
    """Leave a message ("error", "warning", "success" or "info") for the top of the next script run."""
    app().flash = (kind, message)


def set_custom_text(text: str, label: str) -> None:
    """The session's own text (accepted from an upload, a paste, a lesson or a loaded run)."""
    state = app()
    state.custom_text, state.custom_label = text, label
    state.custom_text_version += 1


def adopt_text(run: Run) -> None:
    """A run on custom text brings its text along, so Reset with unchanged settings works."""
    if run.config.corpus == "custom":
        set_custom_text(run.whole_text(), run.corpus_label)


# ---------------------------------------------------------------- the draft settings (Train page widgets)
def draft_key(name: str) -> str:
    """The widget key of RunConfig field ``name``'s draft."""
    return DRAFT_PREFIX + name


def draft(name: str, default: Any = None) -> Any:
    return st.session_state.get(draft_key(name), default)


def set_draft(name: str, value: Any) -> None:
    st.session_state[draft_key(name)] = value


def draft_config() -> RunConfig:
    """The draft settings as a RunConfig (not validated: the widgets bound most values)."""
    ss = st.session_state
    return RunConfig(**{f.name: ss[draft_key(f.name)] for f in fields(RunConfig)})


def load_draft(config: RunConfig) -> None:
    """Put ``config`` into the draft widgets (a loaded run, a preset, a lesson)."""
    for name, value in asdict(config).items():
        set_draft(name, value)


def default_drafts(config: RunConfig) -> None:
    """Drafts missing from the session (a brand-new one) take ``config``'s values. The Train page's
    widgets keep theirs with persist_state="session", so one survives while that page is not shown."""
    for name, value in asdict(config).items():
        st.session_state.setdefault(draft_key(name), value)


# ---------------------------------------------------------------- the loss chart's view, "Pause at"
def loss_unit() -> str:
    return st.session_state.get(LOSS_UNIT_KEY) or DEFAULT_LOSS_UNIT


def smoothing(default: float | None = None) -> float | None:
    return st.session_state.get(SMOOTHING_KEY, default)


def set_chart_view(view: dict) -> None:
    """Set the chart's unit and smoothing from ``view`` ({LOSS_UNIT_KEY: ..., SMOOTHING_KEY: ...},
    either key optional), as an experiment link gives them."""
    for key in (LOSS_UNIT_KEY, SMOOTHING_KEY):
        if key in view:
            st.session_state[key] = view[key]


def default_chart_view(unit: str, smoothing_value: float | None) -> None:
    st.session_state.setdefault(LOSS_UNIT_KEY, unit)
    st.session_state.setdefault(SMOOTHING_KEY, smoothing_value)


def stop_at() -> int | None:
    """The sidebar's "Pause at iteration", or None for never."""
    return st.session_state.get(STOP_AT_KEY) or None
