"""The population stability index, on values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fraud_pipeline.model.psi import EPSILON, bin_edges, psi, shares


def test_identical_distributions_have_no_drift():
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_is_the_sum_of_share_differences_times_their_log_ratio():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5 = ln 3 / 4
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(math.log(3) / 4, abs=1e-12)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.27465307, abs=1e-8)
    # symmetric in its arguments
    assert psi([0.25, 0.75], [0.5, 0.5]) == pytest.approx(math.log(3) / 4, abs=1e-12)


def test_an_empty_bin_counts_as_epsilon_so_the_index_stays_finite():
    expected = 0.5 * math.log(2) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected, abs=1e-12)
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(4.6043, abs=1e-4)


def test_bins_come_from_the_reference_quantiles_and_hold_their_upper_edge():
    assert bin_edges(range(1, 11), bins=2) == [5.5]
    assert bin_edges(range(1, 11), bins=5) == [2.8, 4.6, 6.4, 8.2]
    assert bin_edges([0, 0, 0, 0, 1], bins=4) == [0.0]  # ties merged: two bins, not four
    assert shares([1, 2, 5.5, 6, 100], [5.5]) == [0.6, 0.4]  # 5.5 falls in (-inf, 5.5]
    assert shares([-1e9, 1e9], [0.0, 1.0]) == [0.5, 0.0, 0.5]  # open first and last bins
    assert shares([], [1.0]) == [0.0, 0.0]


def test_a_shift_of_the_whole_distribution_is_measured_on_the_reference_bins():
    reference = list(range(100))
    edges = bin_edges(reference, bins=4)  # quartiles: 24.75, 49.5, 74.25
    expected = shares(reference, edges)
    assert expected == [0.25, 0.25, 0.25, 0.25]
    shifted = shares([v + 50 for v in reference], edges)
    assert shifted == [0.0, 0.0, 0.25, 0.75]
    value = 2 * (EPSILON - 0.25) * math.log(EPSILON / 0.25) + 0.5 * math.log(3)
    assert psi(expected, shifted) == pytest.approx(value, abs=1e-12)


def test_shares_of_different_bin_counts_are_refused():
    with pytest.raises(ValueError, match="2 expected shares but 3"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_edges_do_not_depend_on_the_last_bit_of_the_values():
    """numpy's vectorised log gives another last bit on another CPU: the reference rebuilt there
    must keep its bytes (a committed reference differed in edges[0] of log_amt by one bit)."""
    values = np.log1p(np.random.default_rng(7).gamma(2.0, 40.0, 10_000))
    nudged = np.nextafter(values, np.inf)
    assert bin_edges(nudged) == bin_edges(values)
    assert shares(values, bin_edges(values)) == shares(nudged, bin_edges(nudged))
