"""MGDA: the minimum-norm point of the convex hull of the task gradients.

Reference:
    Sener, O., Koltun, V. "Multi-Task Learning as Multi-Objective Optimization." NeurIPS 2018.
    arXiv:1810.04650.

The update is ``d = sum_t a_t g_t`` with ``a`` on the simplex minimizing ``||d||^2`` (paper,
Eq. 3): a common descent direction of every task, or 0 at a Pareto-stationary point. Solver
(paper, Alg. 2), TF ops on the ``K x K`` Gram matrix ``M = G G^T`` only: Frank-Wolfe from the
uniform point; each iteration moves towards the vertex ``e_r``, ``r = argmin_r (M a)_r``, with
the exact line search of Alg. 1 (for points ``p``, ``q``:
``argmin_gamma ||(1 - gamma) p + gamma q||^2 = clip((<p,p> - <p,q>) / ||p - q||^2, 0, 1)``),
for a FIXED number of iterations (no tolerance test under `tf.function`). With two tasks the
first iteration is already the closed form
``a_1 = clip(<g_2 - g_1, g_2> / ||g_1 - g_2||^2, 0, 1)``.

Upper-bound variant (MGDA-UB, paper Section 3.3), ``upper_bound=True``: ``a`` is solved on the
per-task gradients w.r.t. the shared representation instead of the shared parameters (one cheap
backward per task, through the towers only), and the representation receives
``sum_t a_t dL_t/dZ``, which the model back-propagates into everything upstream (embeddings,
experts, gates). This uses the model's representation routing, so it needs a backbone that
exposes representations (Split-MMoE's ``v1`` and ``vs``; their gradients are concatenated as
one ``Z`` per task, over the whole batch, as in the authors' code).

Defaults: iterations = 20 (the authors' solver instead stops at a 1e-5 change or after 250
iterations; raise ``iterations`` for a tighter solution, at K x K cost per iteration);
upper_bound = False. No gradient normalization (the authors' code offers 'l2', 'loss' and
'loss+' as options; LibMTL's default is none too).

Variable groups: ``shared`` (experts, gates, PPNet, bottom). The authors scale the *losses* by
``a``; here the shared parameters get the min-norm point and towers and embeddings keep the
plain summed-loss gradient (embedding gradients stay sparse; with the default Adam a constant
per-tower scale hardly matters).
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (GradientStrategy, count_conflicting_pairs, split_by_groups,
                                   stack_task_gradients)

_TINY = 1e-30


def min_norm_weights(gram, iterations=20):
    """Frank-Wolfe for ``argmin_{a in simplex} a^T M a``: float64 ``[K]`` from ``M = G G^T``."""
    gram = tf.cast(tf.convert_to_tensor(gram), tf.float64)
    k = gram.shape[0]
    if k is None:
        raise ValueError("the number of tasks must be static")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
    a = tf.fill([k], tf.constant(1.0 / k, tf.float64))
    for _ in range(iterations):
        ma = tf.linalg.matvec(gram, a)
        vertex = tf.argmin(ma, output_type=tf.int32)
        pp = tf.reduce_sum(a * ma)
        pq = tf.gather(ma, vertex)
        qq = gram[vertex, vertex]
        distance = pp - 2.0 * pq + qq
        gamma = tf.where(distance > _TINY,
                         tf.clip_by_value((pp - pq) / tf.maximum(distance, _TINY), 0.0, 1.0),
                         tf.constant(0.0, tf.float64))
        a = (1.0 - gamma) * a + gamma * tf.one_hot(vertex, k, dtype=tf.float64)
    return a


def mgda_combine(grads, iterations=20):
    """The min-norm point ``sum_t a_t g_t`` of ``[K, d]`` gradients (shape ``[d]``), and ``a``."""
    grads = tf.convert_to_tensor(grads)
    if grads.shape.rank != 2 or grads.shape[0] is None:
        raise ValueError(f"grads must be [K, d] with a static K, got shape {grads.shape}")
    weights = tf.cast(min_norm_weights(tf.matmul(grads, grads, transpose_b=True), iterations),
                      grads.dtype)
    return tf.linalg.matvec(grads, weights, transpose_a=True), weights


@register("mgda")
class MGDA(GradientStrategy):
    """MGDA (Sener & Koltun, NeurIPS 2018) on the shared dense groups, or MGDA-UB on the
    backbone's representations.

    Args:
        iterations: Frank-Wolfe iterations, >= 1.
        upper_bound: solve on the representation gradients (MGDA-UB) instead of the shared
            parameters' gradients.
        name: module name.
    """

    groups = ("shared",)

    def __init__(self, iterations=20, upper_bound=False, name=None):
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
        if not isinstance(upper_bound, bool):
            raise ValueError(f"upper_bound must be a bool, got {upper_bound!r}")
        super().__init__(name=name)
        self.iterations = iterations
        self.upper_bound = upper_bound

    @property
    def needs_task_gradients(self):
        return not self.upper_bound

    @property
    def routes_representations(self):
        return self.upper_bound

    def required_groups(self, model):
        del model
        return () if self.upper_bound else tuple(self.groups)

    def stat_names(self, tasks):
        return ("conflicting_pairs",) + tuple(f"weight/{t}" for t in tasks)

    def _stats(self, grads, weights, tasks):
        stats = {"conflicting_pairs": count_conflicting_pairs(grads)}
        stats.update({f"weight/{t}": weights[i] for i, t in enumerate(tasks)})
        return stats

    def combine(self, inputs):
        if self.upper_bound:
            return super().combine(inputs)
        groups = tuple(inputs.variables)
        grads = stack_task_gradients(inputs, groups)
        combined, weights = mgda_combine(grads, self.iterations)
        return split_by_groups(combined, inputs, groups), self._stats(grads, weights,
                                                                      inputs.per_task)

    def route_representations(self, rep_grads):
        tasks = list(rep_grads)
        names = list(rep_grads[tasks[0]])
        grads = tf.stack([tf.concat([tf.reshape(rep_grads[t][n], [-1]) for n in names], axis=0)
                          for t in tasks])
        weights = tf.cast(min_norm_weights(tf.matmul(grads, grads, transpose_b=True),
                                           self.iterations), grads.dtype)
        routed = {n: tf.add_n([tf.cast(weights[i], rep_grads[t][n].dtype) * rep_grads[t][n]
                               for i, t in enumerate(tasks)]) for n in names}
        return routed, self._stats(grads, weights, tasks)

    def get_config(self):
        return {"iterations": self.iterations, "upper_bound": self.upper_bound}
