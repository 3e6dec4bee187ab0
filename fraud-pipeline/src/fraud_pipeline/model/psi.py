"""The population stability index (PSI): how far a day's distribution moved from the reference.

PSI = sum over bins of (actual - expected) * ln(actual / expected), on the shares of the values
falling in each bin. The bins come from the reference (its quantiles), so a day is always
measured on the same scale; an empty bin counts as EPSILON so that the log stays finite.
Rule of thumb: < 0.1 stable, 0.1-0.2 moving, > 0.2 shifted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

EPSILON: Final = 1e-4
BINS: Final = 10
EDGE_DIGITS: Final = 12


def bin_edges(reference: Sequence[float] | np.ndarray, bins: int = BINS) -> list[float]:
    """The inner edges of up to `bins` quantile bins of `reference` (ties merged).

    Bin i holds values in (edges[i-1], edges[i]]; the first and last bins are open, so values
    beyond the reference's range still land somewhere. Edges keep 12 significant digits: numpy's
    vectorised log/exp differ in the last bit from one CPU to another, and the reference must be
    the same file (and checksum) on every machine that rebuilds it.
    """
    values = np.asarray(reference, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return []
    quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(f"{edge:.{EDGE_DIGITS}g}") for edge in quantiles})


def shares(values: Sequence[float] | np.ndarray, edges: Sequence[float]) -> list[float]:
    """The share of `values` in each bin delimited by `edges` (len(edges) + 1 bins)."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return [0.0] * (len(edges) + 1)
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), data, side="left"),
        minlength=len(edges) + 1,
    )
    return [float(c) for c in counts / data.size]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI between two share vectors over the same bins."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected shares but {len(actual)} actual ones")
    e = np.clip(np.asarray(expected, dtype=float), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=float), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))
