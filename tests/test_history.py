"""rnn_core.history.BoundedHistory: bounded memory at even resolution over the whole run, bucket
summaries (mean, min, max, last), equivalence of append and extend, and reading saved matrices."""

import math

import numpy as np
import pytest

from rnn_core.history import BoundedHistory
from rnn_core.trainer import HISTORY_COLUMNS, VAL_COLUMNS

COLS = ("iteration", "loss", "smooth_loss", "loss_min", "loss_max")
MILLION = 10**6


def loss_rows(n: int, start: int = 1, seed: int = 0, spike_at: int | None = None) -> np.ndarray:
    """(n, 5) rows of COLS for iterations start .. start+n-1: a falling noisy loss, loss_min = loss_max
    = loss as the trainer appends them, and smooth_loss an arbitrary running state."""
    it = np.arange(start, start + n, dtype=np.float64)
    loss = 40.0 * np.exp(-it / 50_000.0) + 30.0 + np.random.default_rng(seed).random(n)
    if spike_at is not None:
        loss[spike_at - start] = 500.0
    return np.column_stack([it, loss, np.sqrt(it), loss, loss])


def trainer_rows(n: int) -> np.ndarray:
    """(n, len(HISTORY_COLUMNS)) rows as the trainer appends them, iterations 1..n."""
    base = loss_rows(n)
    rows = np.zeros((n, len(HISTORY_COLUMNS)))
    for name, col in (("iteration", 0), ("loss", 1), ("smooth_loss", 2), ("loss_min", 1), ("loss_max", 1)):
        rows[:, HISTORY_COLUMNS.index(name)] = base[:, col]
    rows[:, HISTORY_COLUMNS.index("learning_rate")] = 0.1
    return rows


def buckets_of(iterations: np.ndarray, stride: float) -> np.ndarray:
    return np.ceil(iterations / stride)


# ---------------------------------------------------------------- resolution and memory


def test_a_million_iterations_keep_even_resolution_in_bounded_memory():
    hist = BoundedHistory(HISTORY_COLUMNS)
    rows = trainer_rows(MILLION)
    for chunk in np.array_split(rows, 7):
        hist.extend(chunk)
        assert len(hist) <= hist.capacity
        assert hist._buf.nbytes <= hist.capacity * len(HISTORY_COLUMNS) * 8
    it = hist.as_arrays("iteration")["iteration"]
    assert hist.capacity // 2 <= len(it) <= hist.capacity
    assert it[-1] == MILLION
    gaps = np.diff(np.concatenate(([0.0], it)))
    # Every row covers the same span, the first ones as much as the last: <= 2 * run / capacity.
    assert gaps.max() == hist.stride <= 2 * MILLION / hist.capacity
    assert (gaps[:-1] == hist.stride).all()
    assert it[0] == hist.stride                                  # the run's start is there


def test_the_old_geometric_thinning_is_gone_early_rows_are_as_dense_as_late_ones():
    hist = BoundedHistory(COLS, capacity=64)
    hist.extend(loss_rows(100_000))
    it = hist.as_arrays("iteration")["iteration"]
    early = it[it <= 50_000]
    late = it[it > 50_000]
    assert abs(len(early) - len(late)) <= 1


def test_validation_history_stays_bounded_and_keeps_real_measurements():
    # Validations every ~4 s: irregular iterations, the untrained one at iteration 0.
    rng = np.random.default_rng(1)
    it = np.concatenate(([0], np.cumsum(rng.integers(500, 1500, size=30_000))))
    bits = rng.random(len(it)) + 1.0
    hist = BoundedHistory(VAL_COLUMNS, capacity=4_000)
    for i, b in zip(it.tolist(), bits.tolist()):
        hist.append((i, b))
        assert len(hist) <= 4_000
    kept = hist.to_matrix()
    assert kept[0, 0] == 0 and kept[0, 1] == bits[0]          # the untrained model's point stays
    assert kept[-1, 0] == it[-1]
    # No companion columns: each row is one validation as measured (the last of its bucket).
    index = np.searchsorted(it, kept[:, 0])
    np.testing.assert_array_equal(bits[index], kept[:, 1])
    assert np.diff(kept[1:, 0]).max() <= hist.stride + 1500      # even over the run
    assert 2_000 <= len(hist)


def test_short_histories_allocate_little():
    hist = BoundedHistory(HISTORY_COLUMNS)
    hist.extend(trainer_rows(10))
    assert hist._buf.nbytes < 0.1 * hist.capacity * len(HISTORY_COLUMNS) * 8
    assert hist.copy()._buf.nbytes <= hist._buf.nbytes


# ---------------------------------------------------------------- what a bucket keeps


def test_buckets_keep_mean_min_max_of_the_loss_and_the_last_of_the_rest():
    raw = loss_rows(30_000, spike_at=12_345)
    hist = BoundedHistory(COLS, capacity=100)
    hist.extend(raw)
    kept = hist.to_matrix()
    keys = buckets_of(raw[:, 0], hist.stride)
    for row in kept:
        members = raw[keys == math.ceil(row[0] / hist.stride)]
        assert row[0] == members[-1, 0]                      # iteration: the bucket's last
        assert row[2] == members[-1, 2]                      # smooth_loss: its last value
        assert row[1] == pytest.approx(members[:, 1].mean(), rel=1e-12)
        assert row[3] == members[:, 1].min() and row[4] == members[:, 1].max()
    assert kept[:, 4].max() == 500.0                         # one spiking iteration is still seen


def test_append_and_extend_agree():
    rng = np.random.default_rng(2)
    # With gaps: iterations advance by 1..3, as after loading an old, unevenly thinned history.
    it = np.cumsum(rng.integers(1, 4, size=20_000)).astype(float)
    raw = loss_rows(len(it))
    raw[:, 0] = it
    one_by_one = BoundedHistory(COLS, capacity=50)
    for row in raw.tolist():
        one_by_one.append(row)
    at_once = BoundedHistory(COLS, capacity=50)
    at_once.extend(raw[:7_000])
    at_once.extend(raw[7_000:])
    a, b = one_by_one.to_matrix(), at_once.to_matrix()
    assert one_by_one.stride == at_once.stride and a.shape == b.shape
    np.testing.assert_array_equal(a[:, [0, 2, 3, 4]], b[:, [0, 2, 3, 4]])
    np.testing.assert_allclose(a[:, 1], b[:, 1], rtol=1e-12)


def test_iterations_that_go_back_still_keep_memory_bounded():
    hist = BoundedHistory(COLS, capacity=8)
    for n in range(200):
        hist.append((n % 3, 1.0, 1.0, 1.0, 1.0))
        assert len(hist) <= 8


# ---------------------------------------------------------------- matrices (checkpoints, clones)


def test_a_history_read_back_from_its_matrix_continues_identically():
    hist = BoundedHistory(COLS, capacity=40)
    hist.extend(loss_rows(9_999))                           # the newest bucket is still filling
    again = BoundedHistory.from_matrix(COLS, hist.to_matrix(), capacity=40)
    copy = hist.copy()
    assert again.stride == copy.stride == hist.stride > 1
    more = loss_rows(20_000, start=10_000, seed=5)
    for h in (hist, again, copy):
        h.extend(more)
    np.testing.assert_array_equal(again.to_matrix(), hist.to_matrix())
    np.testing.assert_array_equal(copy.to_matrix(), hist.to_matrix())


def test_a_matrix_saved_before_loss_min_and_loss_max_existed_still_loads():
    old_columns = HISTORY_COLUMNS[:-2]
    assert HISTORY_COLUMNS[-2:] == ("loss_min", "loss_max")
    old = np.arange(6 * len(old_columns), dtype=float).reshape(6, len(old_columns))
    old[:, 0] = [1, 2, 3, 4, 6, 8]                           # unevenly thinned, as the old history kept it
    hist = BoundedHistory.from_matrix(HISTORY_COLUMNS, old)
    loss = old[:, old_columns.index("loss")]
    arrays = hist.as_arrays("loss", "loss_min", "loss_max")
    np.testing.assert_array_equal(arrays["loss_min"], loss)
    np.testing.assert_array_equal(arrays["loss_max"], loss)
    np.testing.assert_array_equal(hist.to_matrix()[:, :-2], old)
    assert len(BoundedHistory.from_matrix(HISTORY_COLUMNS, np.empty((0, len(old_columns))))) == 0


def test_bad_matrices_are_refused_with_a_reason():
    with pytest.raises(ValueError, match=r"history must have shape \(n, 5\), got \(3, 2\)"):
        BoundedHistory.from_matrix(COLS, np.zeros((3, 2)))      # smooth_loss missing: not an old layout
    with pytest.raises(ValueError, match="capacity"):
        BoundedHistory.from_matrix(COLS, np.zeros((9, 5)), capacity=8)
    with pytest.raises(ValueError, match="must not decrease"):
        BoundedHistory.from_matrix(COLS, loss_rows(5)[::-1])
    bad = loss_rows(5)
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        BoundedHistory.from_matrix(COLS, bad)
    with pytest.raises(ValueError, match="capacity must be >= 8"):
        BoundedHistory(COLS, capacity=4)
