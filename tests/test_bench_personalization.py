"""The personalization study's grouping and per-group AUCs, against hand-computed values."""
import math

import numpy as np
import pytest

from drgrad.bench import personalization as study


def test_activity_groups_cold_rows_then_warm_rows_by_their_users_train_count():
    train_users = ["a"] * 5 + ["b"] * 2 + ["c"]            # a: 5, b: 2, c: 1, d: 0
    test_users = ["d", "a", "b", "c", "a", "d", "b"]
    group, ranges = study.activity_groups(train_users, test_users, warm_groups=2)
    # Cold: the two d rows. Warm activities 5 2 1 5 2 -> sorted (stable): c(1) b(2) b(2) | a a
    assert group.tolist() == [0, 2, 1, 1, 2, 0, 1]
    assert ranges == [(0, 0, 2), (1, 2, 3), (5, 5, 2)]
    with pytest.raises(ValueError):
        study.activity_groups(train_users, ["a", "d"], warm_groups=2)


def test_grouped_aucs_per_group_and_nan_without_both_classes():
    labels = {"like": np.array([1, 0, 1, 0, 1, 1])}
    scores = {"like": np.array([0.9, 0.1, 0.2, 0.4, 0.3, 0.8])}
    group = np.array([0, 0, 1, 1, 1, 2])
    aucs = study.grouped_aucs(labels, scores, group, groups=3)
    assert aucs[0]["like"] == 1.0
    # group 1: positives 0.2, 0.3 vs negative 0.4 -> 0 of 2 pairs ordered
    assert aucs[1]["like"] == 0.0
    assert math.isnan(aucs[2]["like"])


def test_report_means_over_seeds_and_the_ppnet_delta():
    rows = []
    for seed, (with_ppnet, without) in enumerate([(0.70, 0.60), (0.80, 0.62)]):
        for cell, value in (("drgrad_no_ppnet", without), ("drgrad", with_ppnet)):
            rows.append({"cell": cell, "seed": seed, "group": "Q1", "activity_min": 0,
                         "activity_max": 3, "rows": 10, "test_like": value,
                         "overall_like": value + 0.1})
    text = study.report(rows, ["like"])
    assert "| Q1 | 0–3 | 10 | 0.6100 | 0.7500 | +0.1400 |" in text
    assert "| all |  |  | 0.7100 | 0.8500 | +0.1400 |" in text
