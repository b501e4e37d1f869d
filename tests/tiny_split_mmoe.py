"""A tiny Split-MMoE and a batch for the train-step tests (tensor2robot pcgrad_test style: a
few units, so expected gradients can be computed with independent tapes)."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402

from drgrad.model import FeatureConfig  # noqa: E402

FC = FeatureConfig(categorical={"c": 4}, numeric=("x", "y"), embedding_dim=2)
TASKS = ["a", "b"]
TINY = {"num_experts": 2, "expert_units": 3, "tower_units": [2]}


def batch(seed=0, n=8, conflicting=False):
    """`(features, labels)`: label a = x > 0; label b = y − x > 0 (`conflicting`: y + x > 0 with
    rows 0 and 1 forced to disagree)."""
    rng = np.random.RandomState(seed)
    features = {"c": rng.randint(0, 4, n).astype(np.int64),
                "x": rng.randn(n).astype(np.float32), "y": rng.randn(n).astype(np.float32)}
    sign = 1.0 if conflicting else -1.0
    labels = {"a": (features["x"] > 0).astype(np.float32),
              "b": (features["y"] + sign * features["x"] > 0).astype(np.float32)}
    if conflicting:
        labels["a"][0], labels["b"][0] = 1.0, 0.0
        labels["a"][1], labels["b"][1] = 0.0, 1.0
    return features, labels
