"""Nash-MTL: multi-task learning as a bargaining game.

Reference:
    Navon, A., Shamsian, A., Achituve, I., Maron, H., Kawaguchi, K., Chechik, G., Fetaya, E.
    "Multi-Task Learning as a Bargaining Game." ICML 2022. arXiv:2202.01017.

The Nash bargaining update is ``d = sum_i alpha_i g_i`` with ``alpha > 0`` solving (paper, Eq. 3)

    (G G^T) alpha = 1 / alpha      (elementwise),

i.e. every task's directional derivative times its weight is 1. It is the unique stationary
point of the strictly convex ``f(alpha) = 1/2 alpha^T M alpha - sum_i log(alpha_i)``,
``M = G G^T`` (its gradient is ``M alpha - 1/alpha``). The official code approximates it with a
sequence of convex programs in cvxpy (CCP, ``optim_niter = 20``) on the CPU; here ``f`` is
minimized by ``optim_niter`` damped Newton steps (``f`` is self-concordant, so the step
``1 / (1 + lambda)``, lambda the Newton decrement, keeps ``alpha > 0`` and converges; full steps
once ``lambda < 1/4``), TF ops on a K x K system only. As in the official code ``M`` is first
normalized by its Frobenius norm ``s`` and the solution mapped back (``alpha = alpha' / sqrt(s)``,
the exact rescaling of the condition). A non-finite solution (e.g. exactly opposite gradients,
where no solution exists) keeps the previous weights.

Hyperparameters (official defaults): update_weights_every = 1 (solve every step; larger values
reuse ``alpha`` for that many steps, as the reference implementation's option), optim_niter = 20,
max_norm = 1.0 (the combined shared gradient is clipped to this norm; 0 disables).

Variable group: ``shared`` (experts, gates, PPNet, bottom). The reference back-propagates
``sum_i alpha_i l_i`` so task heads see ``alpha_i``-scaled gradients; here towers and embeddings
keep the plain summed-loss gradient (one backward pass; Adam is invariant to a per-tower
constant scale, so with the default optimizer the difference is limited to the first moments).
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (GradientStrategy, count_conflicting_pairs, split_by_groups,
                                   stack_task_gradients)

_RIDGE = 1e-12  # keeps the Newton system solvable when G G^T is singular


def nash_weights(gram, optim_niter=20):
    """``alpha > 0`` with ``gram @ alpha = 1 / alpha`` (float64 ``[K]``), by damped Newton."""
    gram = tf.cast(tf.convert_to_tensor(gram), tf.float64)
    k = gram.shape[0]
    if k is None:
        raise ValueError("the number of tasks must be static")
    scale = tf.maximum(tf.norm(gram), 1e-300)
    m = gram / scale + _RIDGE * tf.eye(k, dtype=tf.float64)
    alpha = 1.0 / tf.sqrt(tf.linalg.diag_part(m))       # exact when the gradients are orthogonal
    for _ in range(optim_niter):
        grad = tf.linalg.matvec(m, alpha) - 1.0 / alpha
        hessian = m + tf.linalg.diag(1.0 / tf.square(alpha))
        step = tf.squeeze(tf.linalg.solve(hessian, grad[:, tf.newaxis]), axis=1)
        decrement = tf.sqrt(tf.maximum(tf.reduce_sum(step * grad), 0.0))
        t = tf.where(decrement < 0.25, tf.constant(1.0, tf.float64), 1.0 / (1.0 + decrement))
        alpha = alpha - t * step
    return alpha / tf.sqrt(scale)


def clip_to_norm(vector, max_norm):
    """``vector`` scaled down to norm ``max_norm`` if longer (no-op for ``max_norm <= 0``)."""
    if max_norm <= 0:
        return vector
    return tf.clip_by_norm(vector, max_norm)


@register("nash_mtl")
class NashMTL(GradientStrategy):
    """Nash-MTL (Navon et al., ICML 2022) on the ``shared`` group.

    Args:
        update_weights_every: solve for ``alpha`` every this many steps (>= 1).
        optim_niter: Newton iterations per solve (>= 1).
        max_norm: clip norm of the combined shared gradient (0 disables).
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True

    def __init__(self, update_weights_every=1, optim_niter=20, max_norm=1.0, name=None):
        for arg, value in (("update_weights_every", update_weights_every),
                           ("optim_niter", optim_niter)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be an int >= 1, got {value!r}")
        if not float(max_norm) >= 0.0:
            raise ValueError(f"max_norm must be >= 0, got {max_norm}")
        super().__init__(name=name)
        self.update_weights_every = update_weights_every
        self.optim_niter = optim_niter
        self.max_norm = float(max_norm)
        self._alpha = None
        self._solves = None

    def build(self, model):
        self._alpha = self.add_state("alpha", shape=(len(model.task_names),), initial_value=1.0)
        self._solves = self.add_state("steps_seen", dtype=tf.int64, initial_value=0)
        super().build(model)

    def stat_names(self, tasks):
        return ("conflicting_pairs",) + tuple(f"alpha/{t}" for t in tasks)

    def _current_alpha(self, grads):
        def solve():
            gram = tf.matmul(grads, grads, transpose_b=True)
            alpha = tf.cast(nash_weights(gram, self.optim_niter), tf.float32)
            ok = tf.reduce_all(tf.math.is_finite(alpha)) & tf.reduce_all(alpha > 0.0)
            return tf.where(ok, alpha, tf.convert_to_tensor(self._alpha))

        due = tf.equal(self._solves % self.update_weights_every, 0)
        return tf.cond(due, solve, lambda: tf.convert_to_tensor(self._alpha))

    def combine(self, inputs):
        groups = tuple(inputs.variables)
        grads = stack_task_gradients(inputs, groups)
        alpha = self._current_alpha(grads)
        combined = clip_to_norm(tf.linalg.matvec(grads, alpha, transpose_a=True), self.max_norm)
        stats = {"conflicting_pairs": count_conflicting_pairs(grads)}
        stats.update({f"alpha/{t}": alpha[i] for i, t in enumerate(inputs.per_task)})
        self._alpha.assign(alpha)  # a cache: a rejected solve already fell back to the old value
        return split_by_groups(combined, inputs, groups), stats

    def after_apply(self, inputs, grads):
        del inputs, grads
        self._solves.assign_add(1)

    def get_config(self):
        return {"update_weights_every": self.update_weights_every,
                "optim_niter": self.optim_niter, "max_norm": self.max_norm}
