"""`drgrad.training.metrics.gauc` against hand-computed values."""
import numpy as np
import pytest

from drgrad.training.metrics import gauc, roc_auc


def test_gauc_weights_users_by_count_and_skips_one_class_users():
    # User "a" (4 rows): positives 0.9, 0.4 vs negatives 0.2, 0.5 -> 3 of 4 pairs = 0.75.
    # User "b" (3 rows): positive 0.6 vs negatives 0.7 (0) and 0.6 (tie, ½) -> 0.25.
    # User "c" (2 rows): positives only -> left out (AUC undefined).
    # GAUC = (4 · 0.75 + 3 · 0.25) / (4 + 3) = 3.75 / 7.
    rows = [("a", 1, 0.9), ("b", 0, 0.7), ("c", 1, 0.1), ("a", 0, 0.2), ("b", 1, 0.6),
            ("a", 1, 0.4), ("c", 1, 0.8), ("b", 0, 0.6), ("a", 0, 0.5)]
    users, labels, scores = zip(*rows)
    assert gauc(labels, scores, users) == pytest.approx(3.75 / 7, abs=1e-12)


def test_gauc_of_one_user_is_that_users_auc():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200), 1)          # many ties
    assert gauc(labels, scores, np.full(200, 7)) == pytest.approx(roc_auc(labels, scores),
                                                                  abs=1e-12)


def test_gauc_refuses_bad_input():
    with pytest.raises(ValueError, match="both positive and negative"):
        gauc([1, 0], [0.5, 0.4], [1, 2])           # each user has one class only
    with pytest.raises(ValueError, match="differ in shape"):
        gauc([1, 0], [0.5, 0.4], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        gauc([2, 0], [0.5, 0.4], [1, 1])
