"""PCGrad (Yu et al., NeurIPS 2020): projections checked against hand-computed vectors."""
import numpy as np
import pytest
import tensorflow as tf

from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.pcgrad import (PCGrad, count_conflicting_pairs, pcgrad_combine,
                                     pcgrad_project, random_task_orders)

G1 = [1.0, 0.0]
G2 = [-1.0, 1.0]   # <G1, G2> = -1: conflict


@pytest.mark.parametrize("orders", [[[0, 1], [0, 1]], [[1, 0], [1, 0]], [[0, 1], [1, 0]]])
def test_two_tasks_both_orders(orders):
    projected = pcgrad_project(tf.constant([G1, G2]), tf.constant(orders)).numpy()
    # g1 - (<g1,g2>/|g2|^2) g2 = (1,0) + 0.5 (-1,1);  g2 - (<g2,g1>/|g1|^2) g1 = (-1,1) + (1,0)
    np.testing.assert_allclose(projected, [[0.5, 0.5], [0.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(pcgrad_combine(tf.constant([G1, G2]), tf.constant(orders)),
                               [0.5, 1.5], atol=1e-6)


def test_no_conflict_is_identity():
    grads = tf.constant([[1.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(pcgrad_project(grads), grads.numpy())


def test_three_tasks_order_matters():
    grads = tf.constant([[1.0, 0.0], [-1.0, 1.0], [-2.0, -1.0]])
    # Task 0 visiting 1 then 2: (0.5, 0.5), then <.,g2> = -1.5, |g2|^2 = 5: + 0.3 * (-2, -1).
    first = pcgrad_project(grads, tf.constant([[1, 2, 0], [0, 1, 2], [0, 1, 2]]))[0]
    # Task 0 visiting 2 then 1: (1,0) + 0.4 * (-2,-1) = (0.2,-0.4); <.,g1> = -0.6: + 0.3 * (-1, 1).
    second = pcgrad_project(grads, tf.constant([[2, 1, 0], [0, 1, 2], [0, 1, 2]]))[0]
    np.testing.assert_allclose(first, [-0.1, 0.2], atol=1e-6)
    np.testing.assert_allclose(second, [-0.1, -0.1], atol=1e-6)


def test_random_orders_are_permutations_seeded_per_step():
    a = random_task_orders(4, seed=3, step=tf.constant(7, tf.int64)).numpy()
    b = random_task_orders(4, seed=3, step=tf.constant(7, tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
    for row in a:
        assert sorted(row) == [0, 1, 2, 3]
    later = [random_task_orders(4, 3, tf.constant(s, tf.int64)).numpy() for s in range(8, 16)]
    assert any(not np.array_equal(a, o) for o in later)
    with pytest.raises(ValueError, match="num_tasks"):
        random_task_orders(0, 0, 0)


def test_runs_in_tf_function():
    fn = tf.function(lambda g, s: pcgrad_combine(g, random_task_orders(2, 0, s)))
    np.testing.assert_allclose(fn(tf.constant([G1, G2]), tf.constant(1, tf.int64)), [0.5, 1.5],
                               atol=1e-6)


def test_conflicting_pairs():
    assert float(count_conflicting_pairs(tf.constant([G1, G2, [0.0, 1.0]]))) == 1.0


def test_registered_and_config():
    strategy = get_strategy("pcgrad", seed=5)
    assert isinstance(strategy, PCGrad) and strategy.groups == ("shared",)
    assert PCGrad.from_config(strategy.get_config()).seed == 5
    with pytest.raises(ValueError, match="seed"):
        PCGrad(seed="x")
    with pytest.raises(ValueError, match="static K"):
        pcgrad_project(tf.zeros([3]))
