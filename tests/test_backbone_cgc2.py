"""Backbone ``cgc2`` (model/backbones/ple.py): the released DRGrad's two-level CGC as a named
configuration of PLE."""
import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.backbones import available_backbones, get_backbone, get_backbone_class
from drgrad.model.backbones.ple import CGC2, PLE
from drgrad.model.config import FeatureConfig
from drgrad.model.layers import OneHotEncoder

TASKS = ("income", "marital")
BATCH = 8
VOCAB = {"education": 5, "sex": 2, "year": 1}


def _feature_config():
    return FeatureConfig(categorical=VOCAB, numeric=("age", "weeks"), embedding_dim=4)


def _features():
    rng = np.random.default_rng(0)
    features = {name: rng.integers(0, size, BATCH) for name, size in VOCAB.items()}
    features.update(age=rng.normal(size=BATCH).astype(np.float32),
                    weeks=rng.normal(size=BATCH).astype(np.float32))
    return features


def _built():
    backbone = get_backbone("cgc2", _feature_config(), TASKS)
    return backbone, backbone(_features())


def test_registered_as_a_configuration_of_ple():
    assert "cgc2" in available_backbones()
    assert get_backbone_class("cgc2") is CGC2
    assert issubclass(CGC2, PLE)


def test_output_shapes():
    _, outputs = _built()
    assert set(outputs) == set(TASKS)
    assert all(outputs[t].shape == (BATCH,) for t in TASKS)


def test_released_structure():
    backbone, _ = _built()
    assert [level.output_shared for level in backbone.levels] == [True, False]
    for level in backbone.levels:
        assert level.specific_experts == level.shared_experts == 1
        assert level.common_experts.kernel.shape[-1] == 128
        for gate in level.task_gates:        # own expert + the shared one
            assert gate.num_experts == 2 and gate.hidden.units == (128,)
    assert backbone.levels[0].shared_gate.num_experts == 3    # both task experts + shared
    # Input block: sparse 64 -> 128 and numeric 32, concatenated (160) -> 128.
    encoder = backbone.embedding
    assert isinstance(encoder, OneHotEncoder)
    assert encoder.sparse_mlp.units == (64, 128) and encoder.numeric_mlp.units == (32,)
    assert encoder.output_mlp.dense_layers[0].kernel.shape == (160, 128)
    # Towers 64 relu -> 1.
    assert backbone.towers["income"].units == (64,)
    # mish(1) = tanh(softplus(1)) = tanh(1.3132617) = 0.8650984.
    mish = backbone.levels[0].common_experts.activation
    np.testing.assert_allclose(float(mish(tf.constant(1.0))), 0.8650984, atol=1e-6)


def test_one_hot_width_is_the_vocabulary_size():
    backbone, _ = _built()
    column = backbone.embedding.column_mlps
    # education: one-hot 5 -> 5 // 2 = 2 -> 5; sex: 2 -> 1 -> 2; year (vocab 1): 1 -> 1 -> 1.
    assert [layer.kernel.shape for layer in column["education"].dense_layers] == [(5, 2), (2, 5)]
    assert [layer.kernel.shape for layer in column["sex"].dense_layers] == [(2, 1), (1, 2)]
    assert [layer.kernel.shape for layer in column["year"].dense_layers] == [(1, 1), (1, 1)]
    assert backbone.embedding.sparse_mlp.dense_layers[0].kernel.shape == (5 + 2 + 1, 64)


def test_unknown_ids_encode_as_the_unknown_id():
    backbone, _ = _built()
    features = _features()
    out_of_range = dict(features, education=np.full(BATCH, 99), sex=np.full(BATCH, -3))
    zeros = dict(features, education=np.zeros(BATCH, np.int64), sex=np.zeros(BATCH, np.int64))
    np.testing.assert_allclose(backbone.embedding(out_of_range).numpy(),
                               backbone.embedding(zeros).numpy())


def test_gates_are_softmax_distributions():
    backbone, _ = _built()
    x = backbone.embedding(_features())
    for gate in backbone.levels[0].task_gates + [backbone.levels[0].shared_gate]:
        weights = gate(x).numpy()
        assert weights.shape == (BATCH, gate.num_experts)
        assert np.all(weights > 0)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)


def test_variable_groups():
    backbone, _ = _built()
    groups = backbone.variable_groups()
    assert groups["embeddings"] == []           # one-hot MLPs are dense: in the bottom group
    bottom = {id(v) for v in groups["bottom"]}
    assert bottom == {id(v) for v in backbone.embedding.trainable_variables}
    assert bottom <= {id(v) for v in groups["shared"]}
    # 2 levels x (1 + 1 + 1 experts) kernels + biases; gates 2 + 2 task, 1 shared, 4 vars each.
    assert len(groups["experts"]) == 2 * 3 * 2
    assert len(groups["gates"]) == 5 * 4
    for task in TASKS:
        kernel, = groups[f"first_kernel/{task}"]
        assert kernel.shape == (128, 64)
        assert kernel is backbone.towers[task].body.dense_layers[0].kernel
        assert any(kernel is v for v in groups[f"tower/{task}"])


def test_config_round_trip():
    backbone, _ = _built()
    config = backbone.get_config()
    assert config["input_encoder"] == "one_hot" and config["activation"] == "mish"
    assert config["gate_units"] == [128] and config["num_levels"] == 2
    rebuilt = CGC2.from_config(config)
    rebuilt(_features())
    assert rebuilt.get_config() == config
    assert [v.shape for v in rebuilt.trainable_variables] == [
        v.shape for v in backbone.trainable_variables]
    encoder = OneHotEncoder.from_config(backbone.embedding.get_config())
    assert encoder.get_config() == backbone.embedding.get_config()


def test_ple_defaults_unchanged():
    ple = get_backbone("ple", _feature_config(), TASKS)
    ple(_features())
    assert ple.levels[0].task_gates[0].hidden is None
    assert ple.get_config()["input_encoder"] == "embedding"
    assert len(ple.variable_groups()["embeddings"]) == len(VOCAB)


def test_bad_encoder_refused():
    with pytest.raises(ValueError, match="input_encoder"):
        get_backbone("cgc2", _feature_config(), TASKS, input_encoder="hash")
