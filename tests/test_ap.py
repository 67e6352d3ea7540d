"""Exact AP equals sklearn's average_precision_score, also with ties and weights."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from core.ap import average_precision


@pytest.mark.parametrize("seed", range(5))
def test_random_scores(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(2000) < 0.05
    s = rng.random(2000) + 0.5 * y
    assert abs(average_precision(y, s) - average_precision_score(y, s)) < 1e-6


@pytest.mark.parametrize("levels", [2, 5, 20])
def test_tied_scores(levels):
    rng = np.random.default_rng(levels)
    y = rng.random(3000) < 0.1
    s = np.round(rng.random(3000) * levels) / levels + 0.2 * y
    assert abs(average_precision(y, s) - average_precision_score(y, s)) < 1e-6


def test_weights():
    rng = np.random.default_rng(9)
    y = rng.random(1000) < 0.2
    s = rng.random(1000)
    w = rng.random(1000)
    assert abs(average_precision(y, s, w) - average_precision_score(y, s, sample_weight=w)) < 1e-6


def test_not_interpolated():
    # one positive ranked second: AP = 1/2 exactly (interpolated PR-AUC differs)
    assert average_precision([0, 1, 0, 0], [0.9, 0.8, 0.1, 0.05]) == pytest.approx(0.5)


def test_no_positive_is_nan_and_bad_labels_raise():
    assert np.isnan(average_precision([0, 0], [0.3, 0.2]))
    with pytest.raises(ValueError, match="0 or 1"):
        average_precision([0, 2], [0.1, 0.2])
