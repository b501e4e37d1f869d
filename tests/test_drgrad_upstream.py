"""DRGrad's upstream routing (`route_level="upstream"`): the router applied to the
gradients w.r.t. the representations v1 and vs (paper Table 1, "for v1" / "for vs") and sent
back into embeddings, experts and gates with ``output_gradients``. tensor2robot pcgrad_test
style: tiny tensors, expectations computed by hand or with independent tapes."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from drgrad.model import build_model  # noqa: E402
from drgrad.model.strategies import get_strategy, register  # noqa: E402
from drgrad.model.strategies.base import flatten, unflatten  # noqa: E402
from drgrad.model.strategies.drgrad import DRGrad, route, route_representations  # noqa: E402

from tiny_split_mmoe import FC, TASKS, TINY, batch  # noqa: E402


def tiny_model(strategy_args=None, strategy="drgrad", optimizer=None):
    model = build_model(FC, TASKS, backbone="split_mmoe", strategy=strategy, backbone_args=TINY,
                        strategy_args=strategy_args, seed=3)
    model.compile(optimizer=optimizer or tf.keras.optimizers.SGD(learning_rate=1.0))
    return model


def values(variables):
    return [tf.convert_to_tensor(v).numpy().copy() for v in variables]


# -- the router on [B, d] ------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["literal", "paired"])
def test_per_example_route_equals_row_loop(variant):
    rng = np.random.RandomState(1)
    g1, g1s = rng.randn(5, 3).astype(np.float32), rng.randn(5, 3).astype(np.float32)
    g_aux = rng.randn(2, 5, 3).astype(np.float32)
    g1[3] = 0.0  # one all-zero row: ξ = 0, λ = 0, no NaN
    r_ded, r_sh, stats = route(g1, g1s, g_aux, gamma=2.0, variant=variant)
    assert r_ded.shape == (5, 3) and stats["xi1"].shape == (2, 5) and stats["xi2"].shape == (5,)
    for b in range(5):
        row_ded, row_sh, row_stats = route(g1[b], g1s[b], g_aux[:, b], gamma=2.0, variant=variant)
        np.testing.assert_allclose(r_ded[b].numpy(), row_ded.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r_sh[b].numpy(), row_sh.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats["xi1"][:, b].numpy(), row_stats["xi1"].numpy(),
                                   rtol=1e-5, atol=1e-6)
    assert np.isfinite(r_ded.numpy()).all() and np.isfinite(r_sh.numpy()).all()


# Row 0 is test_router's "coop_coop" case, row 1 is zero: g1′ = [1, 0], g1″ = [4, 3],
# g2 = [0.6, 0.8]: ξ1 = 0.6, λ1 = 1, ξ2 = 0.8, λ2 = 0.2. Literal: g′R1 = 1·1·g1″ + 0.2·g2 =
# [4.12, 3.16]; g″R1 = 0. dv1 = g1′ + g′R1 = [5.12, 3.16]; dvs = g1″ + 0 + g2 = [4.6, 3.8].
# Flattening the batch (mode "batch") pads every vector with zeros, which changes no norm or
# inner product, so both modes give the same; the zero row routes to zero (ξ = λ = 0).
G1 = [[[1.0, 0.0], [0.0, 0.0]]]
G1S = [[[4.0, 3.0], [0.0, 0.0]]]
G2 = [[[0.6, 0.8], [0.0, 0.0]]]


@pytest.mark.parametrize("mode", ["batch", "example"])
def test_route_representations_by_hand(mode):
    dv1, dvs, stats = route_representations(G1[0], G1S[0], G2, variant="literal", mode=mode)
    np.testing.assert_allclose(dv1.numpy(), [[5.12, 3.16], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(dvs.numpy(), [[4.6, 3.8], [0.0, 0.0]], atol=1e-6)
    expected_xi2 = 0.8 if mode == "batch" else [0.8, 0.0]
    np.testing.assert_allclose(stats["xi2"].numpy(), expected_xi2, atol=1e-6)


def test_batch_mode_is_one_route_over_the_flattened_batch():
    rng = np.random.RandomState(2)
    g1, g1s, g2 = (rng.randn(4, 3).astype(np.float32) for _ in range(3))
    dv1, dvs, _ = route_representations(g1, g1s, g2[None], variant="paired", mode="batch")
    r_ded, r_sh, _ = route(g1.ravel(), g1s.ravel(), g2.ravel(), variant="paired")
    np.testing.assert_allclose(dv1.numpy(), g1 + r_ded.numpy().reshape(4, 3), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(dvs.numpy(), g1s + r_sh.numpy().reshape(4, 3) + g2, rtol=1e-5,
                               atol=1e-6)


def test_zero_gradients_route_to_zero():
    zeros = tf.zeros([3, 4])
    for mode in ("batch", "example"):
        dv1, dvs, stats = route_representations(zeros, zeros, zeros[None], mode=mode)
        assert not np.any(dv1.numpy()) and not np.any(dvs.numpy())
        assert all(np.isfinite(v.numpy()).all() for v in stats.values())


# -- arguments -------------------------------------------------------------------------------
def test_variant_upstream_is_an_alias():
    strategy = get_strategy("drgrad", variant="upstream", updater="ema")
    config = strategy.get_config()
    assert (config["variant"], config["route_level"], config["upstream_mode"]) == (
        "literal", "upstream", "batch")
    assert strategy.routes_representations
    assert DRGrad(**config).get_config() == config
    assert not DRGrad(variant="upstream", router=False).routes_representations
    assert not DRGrad().routes_representations


@pytest.mark.parametrize("kwargs,match", [({"route_level": "gates"}, "route_level"),
                                          ({"upstream_mode": "user"}, "upstream_mode"),
                                          ({"variant": "upstreams"}, "variant")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DRGrad(**kwargs)


# -- train_step ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,variant", [("example", "literal"), ("batch", "paired")])
def test_upstream_step_by_hand(mode, variant):
    """SGD(lr=1): upstream variables move by exactly tape.gradient([v1, vs], vars,
    output_gradients=[dv1, dvs]), towers by the tower-level routing (Eq. 4–5)."""
    model = tiny_model({"variant": variant, "route_level": "upstream", "upstream_mode": mode,
                        "gamma": 1.0})
    features, labels = batch()
    groups = model.backbone.variable_groups()
    upstream = groups["embeddings"] + groups["experts"] + groups["gates"]
    with tf.GradientTape(persistent=True) as tape:
        out, reps = model.backbone({k: tf.constant(v) for k, v in features.items()},
                                   training=True, return_representations=True)
        logits = model._mix(out)  # pylint: disable=protected-access
        losses = {t: tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.constant(labels[t]), logits=logits[t])) for t in TASKS}
    g1 = tape.gradient(losses["a"], reps["v1"])
    g1s = tape.gradient(losses["a"], reps["vs"])
    g2 = tape.gradient(losses["b"], reps["vs"])
    assert tape.gradient(losses["b"], reps["v1"]) is None  # v1 feeds T1′ only
    if mode == "example":
        r_ded, r_sh, _ = route(g1, g1s, g2[None], variant=variant)
    else:
        r_ded, r_sh, _ = route(tf.reshape(g1, [-1]), tf.reshape(g1s, [-1]),
                               tf.reshape(g2, [1, -1]), variant=variant)
        r_ded, r_sh = tf.reshape(r_ded, g1.shape), tf.reshape(r_sh, g1.shape)
    dv1, dvs = g1 + r_ded, g1s + r_sh + g2
    expected = dict(zip(map(id, upstream), tape.gradient(
        [reps["v1"], reps["vs"]], upstream, output_gradients=[dv1, dvs])))
    t1, t1s, t2 = (tape.gradient(losses[t], groups[g]) for t, g in
                   (("a", "t1_dedicated"), ("a", "t1_shared"), ("b", "tower/b")))
    tr_ded, tr_sh, _ = route(flatten(t1), flatten(t1s), flatten(t2), variant=variant)
    for group, grad in (("t1_dedicated", flatten(t1) + tr_ded),
                        ("t1_shared", flatten(t1s) + tr_sh)):
        expected.update(zip(map(id, groups[group]), unflatten(grad, groups[group])))
    expected.update(zip(map(id, groups["tower/b"]), t2))
    assert not np.allclose(tf.convert_to_tensor(r_ded).numpy(), 0.0)  # routing did something
    before = values(model.trainable_variables)
    model.train_on_batch(features, labels)
    assert int(model.skipped_steps.numpy()) == 0
    for variable, old in zip(model.trainable_variables, before):
        want = old - tf.convert_to_tensor(expected[id(variable)]).numpy()
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5, atol=1e-6,
                                   err_msg=variable.name)
    stats = model.read_stats()
    assert -1.0 <= stats["upstream/xi2"] <= 1.0
    assert 0.0 <= stats["upstream/conflict/b"] <= 1.0


@register("test_upstream_identity")
class _UpstreamIdentity(DRGrad):
    """Takes the representation path but returns the plain sums (the base class default)."""

    def route_representations(self, rep_grads):
        return super(DRGrad, self).route_representations(rep_grads)  # pylint: disable=bad-super-call


def test_unrouted_representation_path_equals_plain_step():
    """Sending ∂L/∂v1, ∂L/∂vs back through output_gradients reproduces the summed-loss step
    exactly, embeddings included: the plumbing adds nothing."""
    features, labels = batch()
    plain = tiny_model({"route_level": "towers"})
    identity = tiny_model({"route_level": "upstream"}, strategy="test_upstream_identity")
    plain.train_on_batch(features, labels)
    identity.train_on_batch(features, labels)
    for a, b in zip(plain.trainable_variables, identity.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)


class _RecordingSGD(tf.keras.optimizers.SGD):
    seen = {}

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        grads_and_vars = list(grads_and_vars)
        for g, v in grads_and_vars:
            type(self).seen[v.name] = type(g).__name__
        return super().apply_gradients(grads_and_vars, *args, **kwargs)


def test_upstream_embedding_gradients_stay_sparse():
    model = tiny_model({"variant": "upstream", "upstream_mode": "example"},
                       optimizer=_RecordingSGD(learning_rate=0.1))
    model.train_on_batch(*batch())
    tables = model.backbone.variable_groups()["embeddings"]
    assert tables and all(_RecordingSGD.seen[v.name] == "IndexedSlices" for v in tables)


def test_zero_loss_step_applies_and_changes_nothing():
    """All-zero sample weights: zero losses, zero gradients everywhere; the routed step must
    stay finite (no NaN from the cosines) and leave every weight unchanged."""
    model = tiny_model({"variant": "upstream", "upstream_mode": "example"})
    features, labels = batch()
    before = values(model.trainable_variables)
    model.train_on_batch(features, labels, sample_weight=np.zeros(8, np.float32))
    assert int(model.skipped_steps.numpy()) == 0
    for variable, old in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(variable.numpy(), old)
    assert all(np.isfinite(v) for v in model.read_stats().values())
