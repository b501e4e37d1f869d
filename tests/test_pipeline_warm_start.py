"""Warm start across vocabulary changes (pipeline/warm_start.py): embedding rows follow their
values, every other variable (DRGrad's μ and σ included) is copied, and a different network
falls back to training from scratch."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from drgrad.model import build_model
from drgrad.model import saving
from drgrad.model.config import FeatureConfig
from drgrad.pipeline import warm_start

OOV = 1
TASKS = ("click", "like")


def _model(vocabularies, seed, **backbone_args):
    features = FeatureConfig(
        categorical={column: len(values) + OOV for column, values in vocabularies.items()},
        numeric=("age",))
    return build_model(features, TASKS, backbone="split_mmoe", strategy="drgrad",
                       backbone_args={"num_experts": 2, "expert_units": 4, **backbone_args},
                       seed=seed)


def _save(model, vocabularies, root):
    """The Trainer's layout: <root>/Format-Serving/model_config.json, <root>/trained_model/..."""
    serving = os.path.join(str(root), "Format-Serving")
    os.makedirs(serving)
    saving.write_config(model.model_config, serving)
    saving.save(model, warm_start.trained_model_dir(serving), vocabularies)
    return serving


def _table(model, column):
    [table] = [v for v in model.variables if f"/embedding_{column}/embeddings" in v.name]
    return table.numpy()


def test_remap_rows_by_value_with_oov_buckets():
    old = np.arange(8, dtype=np.float32).reshape(4, 2)           # a b c | oov
    new = -np.ones((5, 2), dtype=np.float32)                     # c x a b | oov
    result = warm_start.remap_rows(old, new, ["a", "b", "c"], ["c", "x", "a", "b"], 1)
    np.testing.assert_array_equal(result, [[4, 5], [-1, -1], [0, 1], [2, 3], [6, 7]])
    with pytest.raises(ValueError, match="do not match"):
        warm_start.remap_rows(old, new, ["a", "b"], ["c", "x", "a", "b"], 1)


def test_warm_start_remaps_embeddings_and_copies_mu_and_sigma(tmp_path):
    old_vocab = {"user": ["u1", "u2", "u3"], "item": ["i1", "i2"]}
    old = _model(old_vocab, seed=1)
    base = _save(old, old_vocab, tmp_path)
    old.strategy.sigma.assign([3.0, 1.0])
    old.mixer.mu.assign(tf.nn.softmax([3.0, 1.0]))
    old.save_weights(saving.weights_prefix(warm_start.trained_model_dir(base)))  # with μ/σ

    new_vocab = {"user": ["u3", "u9", "u1"], "item": ["i1", "i2"]}
    new = _model(new_vocab, seed=2)
    record = warm_start.warm_start(new, new.model_config, base, new_vocab, OOV)
    assert record["mode"] == "remapped" and record["remapped_columns"] == ["item", "user"]
    old_users, new_users = _table(old, "user"), _table(new, "user")
    np.testing.assert_array_equal(new_users[0], old_users[2])         # u3
    np.testing.assert_array_equal(new_users[2], old_users[0])         # u1
    np.testing.assert_array_equal(new_users[3], old_users[3])         # the OOV bucket
    assert not np.allclose(new_users[1], old_users[1])                # u9: fresh, not u2's
    np.testing.assert_array_equal(_table(new, "item"), _table(old, "item"))
    np.testing.assert_allclose(new.strategy.sigma.numpy(), [3.0, 1.0])
    np.testing.assert_allclose(new.mixer.mu.numpy(), tf.nn.softmax([3.0, 1.0]).numpy())
    experts = [v for v in new.variables if "/experts/kernel" in v.name][0]
    old_experts = [v for v in old.variables if "/experts/kernel" in v.name][0]
    np.testing.assert_array_equal(experts.numpy(), old_experts.numpy())


def test_same_vocabularies_load_the_checkpoint_exactly(tmp_path):
    vocab = {"user": ["u1", "u2"], "item": ["i1"]}
    old = _model(vocab, seed=1)
    base = _save(old, vocab, tmp_path)
    new = _model(vocab, seed=2)
    assert warm_start.warm_start(new, new.model_config, base, vocab, OOV)["mode"] == "exact"
    for a, b in zip(old.variables, new.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_different_network_or_no_base_trains_from_scratch(tmp_path):
    vocab = {"user": ["u1", "u2"], "item": ["i1"]}
    base = _save(_model(vocab, seed=1), vocab, tmp_path)
    wider = _model(vocab, seed=2, expert_units=8)
    before = [v.numpy().copy() for v in wider.variables]
    record = warm_start.warm_start(wider, wider.model_config, base, vocab, OOV)
    assert record["mode"] == "none" and "different network" in record["reason"]
    for value, variable in zip(before, wider.variables):
        np.testing.assert_array_equal(value, variable.numpy())
    assert warm_start.warm_start(wider, wider.model_config, None, vocab, OOV)["reason"] == (
        "no blessed model yet")
    os.remove(saving.vocabularies_path(warm_start.trained_model_dir(base)))
    same = _model(vocab, seed=3)
    assert "no model_config.json / vocabularies" in warm_start.warm_start(
        same, same.model_config, base, vocab, OOV)["reason"]
    assert json.loads(json.dumps(record)) == record        # the record is JSON (warm_start.json)
