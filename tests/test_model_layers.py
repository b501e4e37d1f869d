"""Layers, backbones and configs: hand-computed outputs, variable groups, argument checks."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from drgrad.model import PRESETS, FeatureConfig, ModelConfig  # noqa: E402
from drgrad.model.backbones import get_backbone  # noqa: E402
from drgrad.model.config import resolve_preset  # noqa: E402
from drgrad.model.layers import (CGC, MLP, Experts, FeatureEmbedding, PersonalizedGate,  # noqa: E402
                          SoftmaxGate, Tower, TowerMixer, mix_experts)

FC = FeatureConfig(categorical={"c": 4, "user": 6}, numeric=("x",), personalization=("user",),
                   embedding_dim=2)
FEATURES = {"c": tf.constant([0, 3, 1], tf.int64), "user": tf.constant([5, 0, 2], tf.int64),
            "x": tf.constant([0.5, -1.0, 2.0])}


def test_personalized_gate_by_hand():
    gate = PersonalizedGate()
    v = tf.constant([[1.0, -2.0]])
    p = tf.constant([[3.0]])
    np.testing.assert_allclose(gate([v, p]).numpy(), v.numpy())  # zero kernel: identity
    gate.dense.kernel.assign([[1.0, -1.0]])
    gate.dense.bias.assign([0.0, 1.0])
    # 2·v·sigmoid(p·W + b) = 2·[1, -2]·[σ(3), σ(-2)]
    sig = 1.0 / (1.0 + np.exp(-np.array([3.0, -2.0])))
    np.testing.assert_allclose(gate([v, p]).numpy(), [2 * np.array([1.0, -2.0]) * sig],
                               rtol=1e-6)


def test_experts_and_gate_mix_by_hand():
    experts = Experts(num_experts=2, units=1, activation="linear")
    experts.build((None, 2))
    experts.kernel.assign([[[1.0], [0.0]], [[0.0], [2.0]]])  # e0 = x0, e1 = 2·x1
    out = experts(tf.constant([[3.0, 4.0]]))
    np.testing.assert_allclose(out.numpy(), [[[3.0], [8.0]]])
    np.testing.assert_allclose(mix_experts(tf.constant([[0.25, 0.75]]), out).numpy(), [[6.75]])
    gate = SoftmaxGate(3)
    g = gate(tf.ones([2, 5]))
    np.testing.assert_allclose(tf.reduce_sum(g, -1).numpy(), [1.0, 1.0], rtol=1e-6)


def test_tower_mixer_and_tower():
    mixer = TowerMixer()
    np.testing.assert_allclose(mixer(tf.constant([2.0]), tf.constant([4.0])).numpy(), [3.0])
    mixer.mu.assign([0.9, 0.1])
    np.testing.assert_allclose(mixer(tf.constant([2.0]), tf.constant([4.0])).numpy(), [2.2])
    assert not mixer.trainable_weights
    assert Tower((4,))(tf.ones([5, 3])).shape == (5,)
    assert MLP((6, 2))(tf.ones([5, 3])).shape == (5, 2)


def test_embedding_maps_bad_ids_to_unknown():
    layer = FeatureEmbedding(FC)
    out = layer(FEATURES)
    assert out.shape == (3, layer.output_dim) == (3, 2 * 2 + 1)
    bad = dict(FEATURES, c=tf.constant([-1, 99, 0], tf.int64))
    rows = layer.lookup(bad)["c"].numpy()
    np.testing.assert_allclose(rows[0], layer.tables["c"].embeddings.numpy()[0])
    np.testing.assert_allclose(rows[1], layer.tables["c"].embeddings.numpy()[0])
    with pytest.raises(ValueError, match="missing model inputs"):
        layer({"c": FEATURES["c"]})


@pytest.mark.parametrize("layer", [
    MLP((3, 2)), Tower((3,)), Experts(2, 3), SoftmaxGate(2), PersonalizedGate(), TowerMixer(),
    CGC(2, 1, 2, 3), FeatureEmbedding(FC)])
def test_get_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("make", [
    lambda: MLP((0,)), lambda: MLP((3,), dropout=1.0), lambda: Experts(0, 3),
    lambda: SoftmaxGate(-1), lambda: CGC(0, 1, 1, 1), lambda: TowerMixer((0.5,)),
    lambda: FeatureConfig(categorical={"a": 0}),
    lambda: FeatureConfig(categorical={"a": 2}, personalization=("b",)),
    lambda: FeatureConfig(categorical={"a": 2}, numeric=("a",)),
    lambda: FeatureConfig(), lambda: FeatureConfig(categorical={"a": 2}, embedding_dim=0),
    lambda: get_backbone("split_mmoe", FC, ["only"]),
    lambda: get_backbone("nope", FC, ["a", "b"]),
    lambda: get_backbone("split_mmoe", FC.without_personalization(), ["a", "b"], ppnet=True),
    lambda: ModelConfig(feature_config=FC, tasks=["a", "a"]),
])
def test_argument_checks(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("name,kwargs", [
    ("shared_bottom", {"bottom_units": [4], "tower_units": [2]}),
    ("mmoe", {"num_experts": 2, "expert_units": 3, "tower_units": [2]}),
    ("split_mmoe", {"num_experts": 2, "expert_units": 3, "tower_units": [2]}),
    ("ple", {"num_levels": 2, "specific_experts": 1, "shared_experts": 2, "expert_units": 3}),
])
def test_backbone_outputs_and_groups(name, kwargs):
    tasks = ["t1", "t2", "t3"]
    backbone = get_backbone(name, FC, tasks, **kwargs)
    out = backbone(FEATURES)
    assert tuple(out) == backbone.output_names
    assert all(v.shape == (3,) for v in out.values())
    groups = backbone.variable_groups()
    covered = groups["embeddings"] + groups["shared"] + groups["towers"]
    assert len(covered) == len(backbone.trainable_variables)
    assert {id(v) for v in covered} == {id(v) for v in backbone.trainable_variables}
    assert groups["aux_towers"] == groups["tower/t2"] + groups["tower/t3"]
    if name == "split_mmoe":
        assert backbone.split_primary and len(groups["ppnet"]) == 2  # PPNet kernel + bias
        assert len(groups["gates"]) == 4  # 2 gates (v1 and vs) whatever the task count
        shapes = [[v.shape for v in groups[g]] for g in ("t1_dedicated", "t1_shared", "tower/t2")]
        assert shapes[0] == shapes[1] == shapes[2]
        clone = type(backbone).from_config(backbone.get_config())
        assert clone.get_config() == backbone.get_config()
    else:
        assert "t1_dedicated" not in groups and not groups["ppnet"]


def test_split_mmoe_without_personalization_has_no_ppnet():
    backbone = get_backbone("split_mmoe", FC.without_personalization(), ["a", "b"])
    backbone(FEATURES)
    assert backbone.ppnet is None and backbone.variable_groups()["ppnet"] == []


def test_configs_round_trip_and_presets():
    config = ModelConfig(feature_config=FC, tasks=["a", "b"], strategy_args={"gamma": 2.0},
                         task_weights={"a": 1.0, "b": 0.5}, seed=3)
    again = ModelConfig.from_json(config.to_json())
    assert again.to_dict() == config.to_dict() and again.feature_config == FC
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        ModelConfig.from_dict({**config.to_dict(), "extra": 1})
    assert set(PRESETS) == {"mmoe", "split_mmoe", "split_mmoe_router", "drgrad_no_ppnet",
                            "drgrad"}
    assert resolve_preset("drgrad", FC)[3].personalization == ("user",)
    backbone, strategy, args, fc = resolve_preset("drgrad_no_ppnet", FC)
    assert (backbone, strategy, fc.personalization) == ("split_mmoe", "drgrad", ())
    assert resolve_preset("split_mmoe_router", FC)[2] == {"router": True, "updater": "none"}
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_preset("nope", FC)
