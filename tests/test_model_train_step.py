"""`MultiTaskModel.train_step` on a tiny Split-MMoE with SGD(lr=1): every variable group must
change by exactly the gradient DRGrad prescribes (Alg. 1, Eq. 4–5), computed here
independently with separate per-task tapes; μ must follow the updater (Eq. 7)."""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from drgrad.model import build_model  # noqa: E402
from drgrad.model.strategies import get_strategy, register  # noqa: E402
from drgrad.model.strategies.base import GradientStrategy, flatten, unflatten  # noqa: E402
from drgrad.model.strategies.drgrad import route  # noqa: E402

from tiny_split_mmoe import FC, TASKS, TINY  # noqa: E402
from tiny_split_mmoe import batch as _batch  # noqa: E402


def batch(seed=0, n=8):
    return _batch(seed, n, conflicting=True)


def tiny_model(strategy="drgrad", strategy_args=None, backbone="split_mmoe", seed=3, lr=1.0):
    model = build_model(FC, TASKS, backbone=backbone, strategy=strategy, backbone_args=TINY,
                        strategy_args=strategy_args, seed=seed)
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=lr))
    return model


def values(variables):
    return [tf.convert_to_tensor(v).numpy().copy() for v in variables]


def independent_gradients(model, features, labels):
    """Per-task tapes, no model code beyond the forward pass."""
    groups = model.backbone.variable_groups()
    with tf.GradientTape(persistent=True) as tape:
        logits = model.task_logits({k: tf.constant(v) for k, v in features.items()},
                                   training=True)
        losses = {t: tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.constant(labels[t]), logits=logits[t])) for t in TASKS}
        total = losses["a"] + losses["b"]
    g1_ded = tape.gradient(losses["a"], groups["t1_dedicated"])
    g1_sh = tape.gradient(losses["a"], groups["t1_shared"])
    g2 = tape.gradient(losses["b"], groups["tower/b"])
    # Each tower only touches its own task's loss: the other task's gradient is None.
    assert all(g is None for g in tape.gradient(losses["b"], groups["t1_dedicated"]))
    assert all(g is None for g in tape.gradient(losses["a"], groups["tower/b"]))
    summed = tape.gradient(total, model.trainable_variables)
    return groups, g1_ded, g1_sh, g2, summed


def check_step(model, features, labels, variant="literal", gamma=1.0, router=True):
    groups, g1_ded, g1_sh, g2, summed = independent_gradients(model, features, labels)
    before = values(model.trainable_variables)
    f1, f1s, f2 = flatten(g1_ded), flatten(g1_sh), flatten(g2)
    r_ded, r_sh, _ = route(f1, f1s, f2[tf.newaxis], gamma=gamma, variant=variant)
    if not router:
        r_ded, r_sh = tf.zeros_like(r_ded), tf.zeros_like(r_sh)
    expected_update = {}
    for v, g in zip(groups["t1_dedicated"], unflatten(f1 + r_ded, groups["t1_dedicated"])):
        expected_update[id(v)] = g.numpy()
    for v, g in zip(groups["t1_shared"], unflatten(f1s + r_sh, groups["t1_shared"])):
        expected_update[id(v)] = g.numpy()
    for v, g in zip(groups["tower/b"], g2):
        expected_update[id(v)] = g.numpy()
    model.train_on_batch(features, labels)
    after = values(model.trainable_variables)
    tower_ids = {id(v) for v in groups["towers"]}
    for variable, old, new, grad in zip(model.trainable_variables, before, after, summed):
        if id(variable) in tower_ids:
            expected = old - expected_update[id(variable)]
        else:  # experts, gates, embeddings: plain summed-loss gradient (Alg. 1 line 6)
            expected = old - tf.convert_to_tensor(grad).numpy()
        np.testing.assert_allclose(new, expected, rtol=1e-5, atol=1e-6, err_msg=variable.name)
    return r_ded, r_sh


@pytest.mark.parametrize("variant,gamma", [("literal", 1.0), ("paired", 2.0)])
def test_drgrad_step_routes_tower_gradients(variant, gamma):
    model = tiny_model(strategy_args={"variant": variant, "gamma": gamma, "updater": "none"})
    features, labels = batch()
    r_ded, _ = check_step(model, features, labels, variant, gamma)
    assert float(tf.norm(r_ded)) > 1e-4  # the router did add something
    assert int(model.skipped_steps.numpy()) == 0


def test_router_disabled_equals_split_mmoe():
    features, labels = batch()
    plain = tiny_model(strategy="equal_weight")
    no_router = tiny_model(strategy_args={"router": False, "updater": "none"})
    for a, b in zip(plain.trainable_variables, no_router.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    plain.train_on_batch(features, labels)
    no_router.train_on_batch(features, labels)
    for a, b in zip(plain.trainable_variables, no_router.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.name)
    # ... and that step is the plain summed-loss SGD step.
    model = tiny_model(strategy_args={"router": False, "updater": "none"})
    check_step(model, features, labels, router=False)


@pytest.mark.parametrize("updater", ["literal", "ema"])
def test_mu_follows_accumulated_norms(updater):
    decay, temperature = 0.9, 0.5
    model = tiny_model(strategy_args={"updater": updater, "ema_decay": decay,
                                      "temperature": temperature}, lr=0.5)
    np.testing.assert_allclose(model.mixer.mu.numpy(), [0.5, 0.5])
    sigma = np.zeros(2)
    for step in range(3):
        features, labels = batch(seed=step)
        _, g1_ded, g1_sh, g2, _ = independent_gradients(model, features, labels)
        f1, f1s, f2 = flatten(g1_ded), flatten(g1_sh), flatten(g2)
        r_ded, r_sh, _ = route(f1, f1s, f2[tf.newaxis])
        norms = np.array([np.linalg.norm(f1 + r_ded), np.linalg.norm(f1s + r_sh)])
        if updater == "literal":
            sigma = sigma + norms
            logits = sigma
        else:
            sigma = decay * sigma + (1 - decay) * norms
            logits = sigma / temperature
        model.train_on_batch(features, labels)
        expected = np.exp(logits) / np.exp(logits).sum()
        np.testing.assert_allclose(model.mixer.mu.numpy(), expected, rtol=1e-5)
        np.testing.assert_allclose(model.strategy.sigma.numpy(), sigma, rtol=1e-5)
    assert not np.allclose(model.mixer.mu.numpy(), [0.5, 0.5])


def test_mu_is_used_by_call():
    model = tiny_model(strategy_args={"updater": "none"})
    features, _ = batch()
    out = model.backbone(features)
    model.mixer.mu.assign([0.8, 0.2])
    expected = tf.sigmoid(0.8 * out["a/dedicated"] + 0.2 * out["a/shared"])
    np.testing.assert_allclose(model(features)["a"].numpy(), expected.numpy(), rtol=1e-6)
    assert sorted(model(features)) == ["a", "b"]


def test_nan_step_is_skipped():
    model = build_model(FC, TASKS, backbone="split_mmoe", backbone_args=TINY, seed=0)  # Adam
    features, labels = batch()
    model.train_on_batch(features, labels)
    state = (model.trainable_variables + list(model.optimizer.variables())
             + [model.mixer.mu] + model.strategy.weights)
    before = values(state)
    iterations = int(model.optimizer.iterations.numpy())
    bad = dict(features)
    bad["x"] = bad["x"].copy()
    bad["x"][3] = np.nan
    logs = model.train_on_batch(bad, labels, return_dict=True)
    assert logs["skipped_steps"] == 1
    assert int(model.optimizer.iterations.numpy()) == iterations
    for variable, old in zip(state, before):
        np.testing.assert_array_equal(variable.numpy(), old, err_msg=variable.name)
    for variable in model.trainable_variables:
        assert np.isfinite(variable.numpy()).all()
    model.train_on_batch(features, labels)  # a finite step applies again
    assert int(model.optimizer.iterations.numpy()) == iterations + 1
    assert int(model.skipped_steps.numpy()) == 1


@register("test_per_task_sum")
class _PerTaskSum(GradientStrategy):
    """Sums per-task gradients of `shared`: must reproduce the plain step."""
    groups = ("shared",)
    needs_task_gradients = True

    def combine(self, inputs):
        tasks = list(inputs.per_task)
        grads = [tf.add_n([inputs.per_task[t]["shared"][i] for t in tasks])
                 for i in range(len(inputs.variables["shared"]))]
        return {"shared": grads}, {}


@register("test_sparse_probe")
class _SparseProbe(GradientStrategy):
    groups = ("embeddings",)
    seen_types = []

    def combine(self, inputs):
        type(self).seen_types.extend(type(g).__name__ for g in inputs.summed["embeddings"])
        return {"embeddings": list(inputs.summed["embeddings"])}, {}


@pytest.mark.parametrize("backbone", ["mmoe", "split_mmoe"])
def test_per_task_gradient_path_matches_summed(backbone):
    features, labels = batch()
    plain = tiny_model(strategy="equal_weight", backbone=backbone)
    per_task = tiny_model(strategy="test_per_task_sum", backbone=backbone)
    plain.train_on_batch(features, labels)
    per_task.train_on_batch(features, labels)
    for a, b in zip(plain.trainable_variables, per_task.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)


def test_embedding_gradients_stay_sparse():
    model = tiny_model(strategy="test_sparse_probe", backbone="mmoe")
    model.train_on_batch(*batch())
    assert _SparseProbe.seen_types and set(_SparseProbe.seen_types) == {"IndexedSlices"}


def test_bad_strategy_groups():
    class Overlap(GradientStrategy):
        groups = ("towers", "aux_towers")

    class Unknown(GradientStrategy):
        groups = ("no_such_group",)

    from drgrad.model.backbones import get_backbone
    from drgrad.model.multitask_model import MultiTaskModel
    for strategy, match in ((Overlap(), "overlap"), (Unknown(), "does not declare")):
        with pytest.raises(ValueError, match=match):
            MultiTaskModel(get_backbone("mmoe", FC, TASKS, **TINY), strategy)
    with pytest.raises(ValueError, match="split backbone"):
        MultiTaskModel(get_backbone("mmoe", FC, TASKS, **TINY), get_strategy("drgrad"))


def test_positive_weight_scales_positives_in_its_task_loss_only():
    """Logits 0 give every example BCE ln 2; with p = 3 on task a and labels a = [1, 0, 1, 0]
    (b = [0, 0, 1, 1]) the mean loss of a is (3 + 1 + 3 + 1)·ln 2 / 4 = 2 ln 2, b keeps ln 2;
    the AUC metric still counts every example once."""
    model = build_model(FC, TASKS, backbone="split_mmoe", strategy="equal_weight",
                        backbone_args=TINY, positive_weights={"a": 3})
    labels = {"a": tf.constant([1.0, 0.0, 1.0, 0.0]), "b": tf.constant([0.0, 0.0, 1.0, 1.0])}
    logits = {t: tf.zeros([4]) for t in TASKS}
    losses = model._task_losses(labels, logits, None, training=False)
    np.testing.assert_allclose(losses["a"].numpy(), 2 * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(losses["b"].numpy(), np.log(2), rtol=1e-6)
    auc = model.ranking_tasks["a"]._ranking_metrics[0]
    np.testing.assert_allclose(auc.true_positives.numpy()[0], 2.0)  # not 6: unweighted
    assert model.get_config()["model_config"]["positive_weights"] == {"a": 3.0}
    with pytest.raises(ValueError, match="positive weight of 'b' must be finite and > 0"):
        build_model(FC, TASKS, backbone="split_mmoe", strategy="equal_weight",
                    backbone_args=TINY, positive_weights={"b": 0})
