"""Long training series made short for the browser: ``downsample`` keeps at most ``max_points``
points of a series (each bucket's min and max, so spikes stay visible) and ``min_max_band`` gives
the per-bucket (start, min, max) that the loss chart draws as a band, so a figure's payload stays
bounded however long training has run. Draws no figure; used by the loss chart and the Backprop
page's training-series figures. Pure: no streamlit import, tested without a server.
"""

from __future__ import annotations

import numpy as np

from playground.views.style import as_1d, check_positive_int, check_same_length


def check_max_points(max_points) -> int:
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 4:
        raise ValueError(f"max_points must be an integer >= 4, got {max_points!r}")
    return int(max_points)


# ---------------------------------------------------------------- downsampling


def _bucket_matrix(y: np.ndarray, n_buckets: int, fill: float) -> tuple[np.ndarray, int]:
    """y reshaped to (n_buckets, size) with the tail padded by ``fill``; returns (matrix, size)."""
    n = y.shape[0]
    size = -(-n // n_buckets)
    n_buckets = -(-n // size)  # drop buckets that would be pure padding
    padded = np.full(n_buckets * size, fill, dtype=float)
    padded[:n] = y
    return padded.reshape(n_buckets, size), size


def downsample(x, y, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a series to at most ``max_points`` points, keeping spikes visible.

    x, y: (N,). Short series are returned unchanged (as float arrays). Long ones are
    cut into buckets and the min and the max of each bucket are kept (in x order),
    plus the first and the last point. Returns (x_small, y_small), both (M,), M <= max_points.
    """
    max_points = check_max_points(max_points)
    x = as_1d(x, "x")
    y = as_1d(y, "y")
    check_same_length(x, "x", y, "y")
    n = y.shape[0]
    if n <= max_points:
        return x.copy(), y.copy()
    # 2 points per bucket + first + last must fit in max_points.
    n_buckets = (max_points - 2) // 2
    lows, size = _bucket_matrix(y, n_buckets, np.inf)
    highs, _ = _bucket_matrix(y, n_buckets, -np.inf)
    offsets = np.arange(lows.shape[0]) * size
    keep = np.concatenate(
        ([0, n - 1], offsets + np.argmin(lows, axis=1), offsets + np.argmax(highs, axis=1))
    )
    keep = np.unique(keep)  # sorted, so the line is drawn in x order
    return x[keep], y[keep]


def min_max_band(x, y, max_buckets: int = 1000, *, y_max=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket (x_start, y_min, y_max) for drawing a min/max band.

    x, y: (N,). Returns three (B,) arrays with B <= max_buckets; each bucket is a run of
    consecutive points, x_start is the x of its first point. The last bucket's x is
    moved to x[-1] so the band reaches the end of the series. With ``y_max`` (N,), the
    points are themselves ranges (a thinned history's per-row min ``y`` and max ``y_max``):
    the band's minimum comes from y, its maximum from y_max.
    """
    max_buckets = check_positive_int(max_buckets, "max_buckets")
    x = as_1d(x, "x")
    y = as_1d(y, "y")
    check_same_length(x, "x", y, "y")
    upper = y if y_max is None else as_1d(y_max, "y_max")
    check_same_length(x, "x", upper, "y_max")
    if y.shape[0] == 0:
        empty = np.zeros(0)
        return empty, empty.copy(), empty.copy()
    lows, size = _bucket_matrix(y, min(max_buckets, y.shape[0]), np.inf)
    highs, _ = _bucket_matrix(upper, min(max_buckets, y.shape[0]), -np.inf)
    x_start = x[np.arange(lows.shape[0]) * size].copy()
    x_start[-1] = x[-1]
    return x_start, lows.min(axis=1), highs.max(axis=1)
