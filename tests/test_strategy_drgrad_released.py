"""The released DRGrad (model/strategies/drgrad_released.py), in the style of the router tests:
2-D gradients, every expected vector computed by hand in the comments.

Shared: G_A = [3, 4] (unit [0.6, 0.8], element sum 1.4). Routed A = G_A + w·(1 − 1{c≤0}·c)·G_B
with w = clip(Σunit(G_A) / Σunit(G_B), 0.1, 5), both read from the unrouted gradients. The
+1e-8 in the norm moves nothing at atol 1e-6.
"""
import numpy as np
import pytest
import tensorflow as tf

from drgrad.model import build_model
from drgrad.model.config import FeatureConfig
from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.drgrad_released import route_released

G_A = [3.0, 4.0]

CASES = {
    # G_B = [0, 2]: unit [0, 1], sum 1; c = 0.8 > 0 (factor 1).
    # A: w = 1.4 / 1 = 1.4 -> [3, 4] + 1.4·[0, 2] = [3, 6.8].
    # B: w = 1 / 1.4 -> [0, 2] + [3, 4] / 1.4 = [2.142857, 4.857143].
    "agreeing": ([0.0, 2.0], [3.0, 6.8], [15 / 7, 34 / 7]),
    # G_B = [0, -2]: unit [0, -1], sum -1; c = -0.8 (factor 1 + 0.8 = 1.8).
    # A: w = 1.4 / -1 -> clipped to 0.1 -> [3, 4] + 0.18·[0, -2] = [3, 3.64].
    # B: w = -1 / 1.4 -> 0.1 -> [0, -2] + 0.18·[3, 4] = [0.54, -1.28].
    "conflicting": ([0.0, -2.0], [3.0, 3.64], [0.54, -1.28]),
    # G_B = [-0.6, 0.8]: unit itself, sum 0.2; c = -0.18 + 0.64 = 0.46 > 0 (factor 1).
    # A: w = 1.4 / 0.2 = 7 -> clipped to 5 -> [3, 4] + 5·[-0.6, 0.8] = [0, 8].
    # B: w = 0.2 / 1.4 = 1/7 -> [-0.6, 0.8] + [3, 4] / 7 = [-0.171429, 1.371429].
    "clipped_at_five": ([-0.6, 0.8], [0.0, 8.0], [-0.6 + 3 / 7, 0.8 + 4 / 7]),
    # G_B = [1, -1]: unit [1, -1]/√2, sum exactly 0; c = (0.6 − 0.8)/√2 = −0.141421
    # (factor 1.141421). A: 1.4 / 0 counts as 0 -> w = 0.1 -> [3, 4] + 0.1141421·[1, -1].
    # B: 0 / 1.4 = 0 -> w = 0.1 -> [1, -1] + 0.1141421·[3, 4].
    "zero_denominator": ([1.0, -1.0], [3.1141421, 3.8858579], [1.3424264, -0.5434315]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pairs(case):
    g_b, expected_a, expected_b = CASES[case]
    routed = route_released({"a": G_A, "b": g_b})
    np.testing.assert_allclose(routed["a"].numpy(), expected_a, atol=1e-6)
    np.testing.assert_allclose(routed["b"].numpy(), expected_b, atol=1e-6)


def test_zero_gradient_receives_a_tenth_of_the_other():
    # G_A = 0: unit 0, sum 0, c = 0 (≤ 0, factor 1 − 0 = 1).
    # A: 0 / 1.4 = 0 -> w = 0.1 -> 0 + 0.1·[3, 4] = [0.3, 0.4].
    # B: 1.4 / 0 counts as 0 -> w = 0.1, times the zero gradient: B unchanged.
    routed = route_released({"a": [0.0, 0.0], "b": G_A})
    np.testing.assert_allclose(routed["a"].numpy(), [0.3, 0.4], atol=1e-6)
    np.testing.assert_allclose(routed["b"].numpy(), G_A, atol=1e-6)


def test_three_tasks_add_every_pairwise_term():
    # A = [3, 4], B = [0, 2], C = [0, -2] (units [0.6, 0.8], [0, 1], [0, -1]).
    # A: + 1.4·1·B (c 0.8) + 0.1·1.8·C (c −0.8, ratio −1.4) = [3, 4 + 2.8 − 0.36] = [3, 6.44].
    # B: + (1/1.4)·1·A (c 0.8) + 0.1·2·C (c −1, ratio −1) = [15/7, 2 + 20/7 − 0.4].
    # C: + 0.1·1.8·A (c −0.8) + 0.1·2·B (c −1) = [0.54, −2 + 0.72 + 0.4] = [0.54, −0.88].
    routed = route_released({"a": G_A, "b": [0.0, 2.0], "c": [0.0, -2.0]})
    np.testing.assert_allclose(routed["a"].numpy(), [3.0, 6.44], atol=1e-6)
    np.testing.assert_allclose(routed["b"].numpy(), [15 / 7, 2 + 20 / 7 - 0.4], atol=1e-6)
    np.testing.assert_allclose(routed["c"].numpy(), [0.54, -0.88], atol=1e-6)


def test_kernel_shapes_kept_and_cosine_on_the_flattened_kernel():
    # The agreeing pair laid out as [2, 1] kernels: same numbers, same shapes.
    routed = route_released({"a": [[3.0], [4.0]], "b": [[0.0], [2.0]]})
    assert routed["a"].shape == (2, 1)
    np.testing.assert_allclose(routed["a"].numpy(), [[3.0], [6.8]], atol=1e-6)


def test_one_task_refused():
    with pytest.raises(ValueError, match="two or more"):
        route_released({"a": G_A})


def test_runs_in_tf_function():
    fn = tf.function(lambda a, b: route_released({"a": a, "b": b})["a"])
    np.testing.assert_allclose(fn(tf.constant(G_A), tf.constant([0.0, -2.0])).numpy(),
                               [3.0, 3.64], atol=1e-6)


TASKS = ("click", "like")
BATCH = 32
LR = 0.5


def _feature_config():
    return FeatureConfig(categorical={"user": 10}, numeric=("age",), embedding_dim=3)


def _batch():
    rng = np.random.default_rng(1)
    features = {"user": rng.integers(0, 10, BATCH),
                "age": rng.normal(size=BATCH).astype(np.float32)}
    labels = {"click": (features["age"] > 0).astype(np.float32),
              "like": (features["user"] % 2).astype(np.float32)}
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH)


def _one_sgd_step(strategy):
    model = build_model(_feature_config(), TASKS, backbone="mmoe", strategy=strategy,
                        backbone_args={"num_experts": 2, "expert_units": 4, "tower_units": [3]},
                        seed=0, compile_model=False)
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=LR))
    model(next(iter(_batch()))[0])
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.fit(_batch(), epochs=1, verbose=0)
    return model, before


def test_train_step_routes_only_the_first_tower_kernels():
    plain, start = _one_sgd_step("equal_weight")
    released, same_start = _one_sgd_step("drgrad_released")
    for a, b in zip(start, same_start):
        np.testing.assert_array_equal(a, b)
    groups = released.backbone.variable_groups()
    kernels = {id(groups[f"first_kernel/{t}"][0]): t for t in TASKS}
    assert len(kernels) == 2
    # The summed-loss gradient of each first kernel, read back from the plain SGD step.
    index = {id(v): i for i, v in enumerate(released.trainable_variables)}
    summed = {t: (start[index[k]] - plain.trainable_variables[index[k]].numpy()) / LR
              for k, t in kernels.items()}
    routed = route_released(summed)
    for i, (p, r) in enumerate(zip(plain.trainable_variables, released.trainable_variables)):
        task = kernels.get(id(r))
        if task is None:    # every other variable: the summed-gradient step, bit for bit
            np.testing.assert_allclose(r.numpy(), p.numpy(), rtol=0, atol=1e-7)
        else:
            assert not np.allclose(r.numpy(), p.numpy())
            np.testing.assert_allclose(r.numpy(), start[i] - LR * routed[task].numpy(),
                                       atol=1e-6)


def test_split_backbone_refused():
    with pytest.raises(ValueError, match="one tower per task"):
        build_model(_feature_config(), TASKS, backbone="split_mmoe",
                    strategy="drgrad_released", seed=0)


def test_registered_without_arguments():
    strategy = get_strategy("drgrad_released")
    assert strategy.get_config() == {}
    assert strategy.stat_names(("a", "b", "c")) == ("cosine/a/b", "cosine/a/c", "cosine/b/c")
