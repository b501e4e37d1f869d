"""A NaN in one training batch, through `model.fit` (not only `train_step`): that step is
skipped and counted, the weights stay finite, and the other batches are applied."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from drgrad.model import build_model  # noqa: E402

from tiny_split_mmoe import FC, TASKS, TINY  # noqa: E402
from tiny_split_mmoe import batch  # noqa: E402

BATCHES = 4
BATCH_SIZE = 8
BAD_BATCH = 2


def _dataset(nan_in):
    """`BATCHES` batches of `BATCH_SIZE`; batch `BAD_BATCH` has a NaN in feature `x`
    (`nan_in="feature"`) or in label `a` (`nan_in="label"`)."""
    features, labels = batch(seed=1, n=BATCHES * BATCH_SIZE)
    row = BAD_BATCH * BATCH_SIZE + 3
    if nan_in == "feature":
        features["x"][row] = np.nan
    else:
        labels["a"][row] = np.nan
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH_SIZE)


def _fit(nan_in):
    model = build_model(FC, TASKS, backbone="split_mmoe", backbone_args=TINY, seed=0)  # Adam
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.01))
    model(batch(seed=0, n=2)[0])  # build the weights before taking the snapshot
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(_dataset(nan_in), epochs=1, verbose=0)
    return model, before, history


def _check(nan_in):
    model, before, history = _fit(nan_in)
    assert int(model.skipped_steps.numpy()) == 1
    assert history.history["skipped_steps"] == [1]
    # The three finite batches were applied (Adam counts applied steps only).
    assert int(model.optimizer.iterations.numpy()) == BATCHES - 1
    for variable in model.trainable_variables:
        assert np.isfinite(variable.numpy()).all(), variable.name
    changed = [not np.array_equal(v.numpy(), old)
               for v, old in zip(model.trainable_variables, before)]
    assert any(changed)
    # Metrics see applied steps only, so the epoch's loss is finite.
    assert np.isfinite(history.history["loss"][0])


def test_fit_skips_the_batch_with_a_nan_feature():
    _check("feature")


def test_fit_skips_the_batch_with_a_nan_label():
    _check("label")
