"""CAGrad: conflict-averse gradient descent.

Reference:
    Liu, B., Liu, X., Jin, X., Stone, P., Liu, Q. "Conflict-Averse Gradient Descent for
    Multi-task Learning." NeurIPS 2021. arXiv:2110.14048.

With ``g_0 = (1/K) sum_i g_i`` the update maximizes the worst task improvement in a ball around
``g_0``: ``max_d min_i <g_i, d>`` s.t. ``||d - g_0|| <= c ||g_0||``. Its dual is a K-dimensional
problem over the simplex (paper, Eq. 4)::

    w* = argmin_{w in simplex}  <g_w, g_0> + c ||g_0|| ||g_w||,     g_w = sum_i w_i g_i
    d  = g_0 + (c ||g_0|| / ||g_w*||) g_w*

and the update is ``d / (1 + c^2)`` (``rescale = 1`` in the official code, its default).

Solver, TF ops only: Frank-Wolfe over the simplex from the uniform point, with an *exact* line
search (on a segment the objective is ``linear + C * sqrt(quadratic)``, minimized in closed
form), for ``solver_steps`` iterations. With two tasks the simplex is a segment, so the first
step is already the exact optimum; with more tasks Frank-Wolfe converges at rate O(1/steps).
Everything operates on the ``K x K`` Gram matrix, never on the d-dimensional gradients. (The
official code runs scipy's SLSQP on the CPU each step, or 20 SGD steps on softmax logits.)

Hyperparameters (paper defaults): c = 0.4 (the value used in the paper's multi-task supervised
experiments; LibMTL's default ``calpha`` 0.5), rescale = 1, solver_steps = 20.

Variable groups: ``shared`` (experts, gates, PPNet, bottom); towers and
embeddings get the plain summed-loss gradient.
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (GradientStrategy, count_conflicting_pairs, split_by_groups,
                                   stack_task_gradients)

_TINY = 1e-30


def _segment_argmin(pp, pq, qq, bp, bq, scale):
    """argmin over t in [0, 1] of ``(1-t) bp + t bq + scale * ||(1-t) p + t q||``.

    The points enter only through their inner products ``pp = <p,p>``, ``pq``, ``qq``. With
    ``u = q - p``, ``e = ||u||^2``, ``f = <p, u>``, ``y = f + t e`` the norm is
    ``sqrt(y^2 / e + h)``, ``h = pp - f^2 / e``; setting the derivative to zero gives
    ``y^2 (scale^2 - delta^2 / e) = delta^2 h`` with ``sign(y) = -sign(delta)``,
    ``delta = bq - bp``. If ``scale^2 e <= delta^2`` the objective is monotone on the segment.
    """
    e = pp - 2.0 * pq + qq
    f = pq - pp
    delta = bq - bp
    safe_e = tf.maximum(e, _TINY)
    h = tf.maximum(pp - f * f / safe_e, 0.0)
    denom = scale * scale - delta * delta / safe_e
    interior = denom > 0.0
    y = -tf.sign(delta) * tf.sqrt(delta * delta * h / tf.where(interior, denom, 1.0))
    t_interior = tf.clip_by_value((y - f) / safe_e, 0.0, 1.0)
    t_boundary = tf.where(delta > 0.0, tf.zeros_like(delta), tf.ones_like(delta))
    t = tf.where(interior, t_interior, t_boundary)
    return tf.where(e > _TINY, t, tf.zeros_like(t))


def cagrad_weights(gram, c=0.4, solver_steps=20):
    """Solves the CAGrad dual for ``w`` (``[K]`` on the simplex) from the Gram matrix ``G G^T``."""
    gram = tf.cast(tf.convert_to_tensor(gram), tf.float64)
    k = gram.shape[0]
    if k is None:
        raise ValueError("the number of tasks must be static")
    b = tf.reduce_mean(gram, axis=1)                   # <g_i, g_0>
    g0_norm = tf.sqrt(tf.maximum(tf.reduce_mean(b), 0.0))
    scale = c * g0_norm
    w = tf.fill([k], tf.constant(1.0 / k, tf.float64))
    for _ in range(solver_steps):
        mw = tf.linalg.matvec(gram, w)
        ww = tf.maximum(tf.reduce_sum(w * mw), 0.0)
        grad = b + scale * mw / tf.sqrt(tf.maximum(ww, _TINY))
        vertex = tf.argmin(grad, output_type=tf.int32)
        t = _segment_argmin(ww, tf.gather(mw, vertex), gram[vertex, vertex],
                            tf.reduce_sum(w * b), tf.gather(b, vertex), scale)
        w = (1.0 - t) * w + t * tf.one_hot(vertex, k, dtype=tf.float64)
    return w


def cagrad_combine(grads, c=0.4, rescale=1, solver_steps=20):
    """The CAGrad update from per-task gradients ``[K, d]``, shape ``[d]``."""
    grads = tf.convert_to_tensor(grads)
    if grads.shape.rank != 2 or grads.shape[0] is None:
        raise ValueError(f"grads must be [K, d] with a static K, got shape {grads.shape}")
    gram = tf.matmul(grads, grads, transpose_b=True)
    w = cagrad_weights(gram, c, solver_steps)
    gram64 = tf.cast(gram, tf.float64)
    g0_norm = tf.sqrt(tf.maximum(tf.reduce_mean(gram64), 0.0))
    gw_norm = tf.sqrt(tf.maximum(tf.reduce_sum(w * tf.linalg.matvec(gram64, w)), 0.0))
    lam = tf.math.divide_no_nan(c * g0_norm, gw_norm)
    coef = tf.cast(1.0 / grads.shape[0] + lam * w, grads.dtype)  # d = sum_i coef_i g_i
    d = tf.linalg.matvec(grads, coef, transpose_a=True)
    if rescale == 1:
        d = d / (1.0 + c * c)
    elif rescale == 2:
        d = d / (1.0 + c)
    return d


@register("cagrad")
class CAGrad(GradientStrategy):
    """CAGrad (Liu et al., NeurIPS 2021) on the backbone's shared dense groups.

    Args:
        c: radius of the conflict-averse ball, relative to ``||g_0||``; >= 0.
        rescale: 0 (none), 1 (divide by 1 + c^2, default) or 2 (divide by 1 + c).
        solver_steps: Frank-Wolfe iterations, >= 1.
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True

    def __init__(self, c=0.4, rescale=1, solver_steps=20, name=None):
        if not float(c) >= 0.0:
            raise ValueError(f"c must be >= 0, got {c}")
        if rescale not in (0, 1, 2):
            raise ValueError(f"rescale must be 0, 1 or 2, got {rescale!r}")
        if not isinstance(solver_steps, int) or solver_steps < 1:
            raise ValueError(f"solver_steps must be an int >= 1, got {solver_steps!r}")
        super().__init__(name=name)
        self.c = float(c)
        self.rescale = rescale
        self.solver_steps = solver_steps

    def stat_names(self, tasks):
        return ("conflicting_pairs",)

    def combine(self, inputs):
        groups = tuple(inputs.variables)
        grads = stack_task_gradients(inputs, groups)
        combined = cagrad_combine(grads, self.c, self.rescale, self.solver_steps)
        return split_by_groups(combined, inputs, groups), {
                "conflicting_pairs": count_conflicting_pairs(grads)}

    def get_config(self):
        return {"c": self.c, "rescale": self.rescale, "solver_steps": self.solver_steps}
