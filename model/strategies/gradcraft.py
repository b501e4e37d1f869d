"""GradCraft: magnitude alignment, then a global projection against all conflicting tasks.

Reference:
    Bai, Y., Zhang, Y., Feng, F., Lu, J., Zang, X., Lei, C., Song, Y. "GradCraft: Elevating
    Multi-task Recommendations through Holistic Gradient Crafting." KDD 2024. arXiv:2407.19682.

One step, on the per-task gradients ``g_1 .. g_K`` of the shared parameters:

1. Magnitude alignment (norms optionally smoothed by an EMA ``n_i`` with decay ``b``)::

       g^_i = tau * (max_j n_j / n_i) * g_i + (1 - tau) * g_i

   ``tau = 0`` keeps the magnitudes, ``tau = 1`` lifts every norm to the largest.
2. Global direction deconfliction. For each task ``i`` let ``C_i = {j : <g^_i, g^_j> < 0}`` and
   ``A`` the matrix whose rows are ``g^_j, j in C_i``. Solve the ``|C_i| x |C_i|`` system

       (A A^T) w = -A g^_i + eps * ||g^_i|| * [||g^_j||]_j

   and set ``g~_i = g^_i + A^T w``. Afterwards ``<g~_i, g^_j> = eps * ||g^_i|| * ||g^_j||`` for
   every ``j`` in ``C_i`` at once (PCGrad handles them one at a time; with two tasks and
   ``eps = 0`` both coincide).
3. The update is the **mean** ``(1/K) sum_i g~_i``.

Hyperparameters (defaults: the authors' released single-run configuration, ``r = 0.1`` and
``e = 1e-10``; their search grids are tau in {0, 0.1, ..., 1} and eps in {1e-10, 1e-9, 1e-8}):
    tau = 0.1: the ablation (slides, Table "GradCraft-fix tau": tau = 1, "GradCraft-ori":
        tau = 0) shows an intermediate value beats both ends.
    epsilon = 1e-10: a small positive target cosine ("GradCraft-fix eps", eps = 0, is worse).
    norm_decay = 0.0: EMA decay ``b`` of the norms (the released code runs with 0).

The linear system is solved with fixed-size tensors so it runs under `tf.function`: rows of
non-conflicting tasks are masked to the identity (their ``w`` is 0), and a pseudo-inverse
handles linearly dependent conflicting gradients.

Variable groups: ``shared`` (experts, gates, PPNet, bottom); the
authors' code also flattens the embedding tables, which we keep sparse with the summed-loss
gradient (dense K-fold copies of the tables would dominate step cost and memory).
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (GradientStrategy, count_conflicting_pairs, split_by_groups,
                                   stack_task_gradients)

_TINY = 1e-20


def align_magnitudes(grads, tau, norms=None):
    """``g^_i = tau * (max_j n_j / n_i) g_i + (1 - tau) g_i``; ``n`` defaults to ``||g_i||``.

    Args:
        grads: ``[K, d]``.
        tau: float in [0, 1].
        norms: optional ``[K]`` norms to use instead of the current ones (EMA).
    """
    grads = tf.convert_to_tensor(grads)
    if norms is None:
        norms = tf.norm(grads, axis=1)
    norms = tf.cast(norms, grads.dtype)
    ratio = tf.math.divide_no_nan(tf.reduce_max(norms), norms)
    # A zero gradient stays zero (ratio 0 would otherwise shrink it: harmless either way).
    scale = tau * ratio + (1.0 - tau)
    return grads * scale[:, tf.newaxis]


def global_project(grads, epsilon):
    """Step 2 above for every task at once: ``[K, d] -> [K, d]``."""
    grads = tf.convert_to_tensor(grads)
    if grads.shape.rank != 2 or grads.shape[0] is None:
        raise ValueError(f"grads must be [K, d] with a static K, got shape {grads.shape}")
    k = grads.shape[0]
    gram = tf.cast(tf.matmul(grads, grads, transpose_b=True), tf.float64)
    norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 0.0))
    eye = tf.eye(k, dtype=tf.float64)
    projected = []
    for i in range(k):
        mask = tf.cast(gram[i] < 0.0, tf.float64)  # the conflicting set C_i (never i itself)
        outer = mask[:, tf.newaxis] * mask[tf.newaxis, :]
        system = gram * outer + eye * (1.0 - mask)[:, tf.newaxis]
        rhs = mask * (-gram[i] + epsilon * norms[i] * norms)
        w = tf.linalg.matvec(tf.linalg.pinv(system), rhs) * mask
        projected.append(grads[i] + tf.linalg.matvec(grads, tf.cast(w, grads.dtype),
                                                     transpose_a=True))
    return tf.stack(projected)


def gradcraft_combine(grads, tau=0.1, epsilon=1e-10, norms=None):
    """The GradCraft update: mean of the aligned, globally projected gradients, shape ``[d]``."""
    return tf.reduce_mean(global_project(align_magnitudes(grads, tau, norms), epsilon), axis=0)


@register("gradcraft")
class GradCraft(GradientStrategy):
    """GradCraft (Bai et al., KDD 2024) on the backbone's shared dense groups.

    Args:
        tau: magnitude-alignment strength in [0, 1].
        epsilon: target positive cosine after projection, >= 0.
        norm_decay: EMA decay of the per-task norms in [0, 1); 0 uses the current norms.
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True

    def __init__(self, tau=0.1, epsilon=1e-10, norm_decay=0.0, name=None):
        if not 0.0 <= float(tau) <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau}")
        if not float(epsilon) >= 0.0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        if not 0.0 <= float(norm_decay) < 1.0:
            raise ValueError(f"norm_decay must be in [0, 1), got {norm_decay}")
        super().__init__(name=name)
        self.tau = float(tau)
        self.epsilon = float(epsilon)
        self.norm_decay = float(norm_decay)
        self._norm_ema = None
        self._ema_started = None

    def build(self, model):
        num_tasks = len(model.task_names)
        self._norm_ema = self.add_state("norm_ema", shape=(num_tasks,))
        self._ema_started = self.add_state("ema_started", initial_value=0.0)
        super().build(model)

    def stat_names(self, tasks):
        return ("conflicting_pairs",)

    def _norms(self, grads):
        current = tf.norm(grads, axis=1)
        if self.norm_decay == 0.0:
            return current
        b = self.norm_decay * self._ema_started
        return b * self._norm_ema + (1.0 - b) * current

    def combine(self, inputs):
        groups = tuple(inputs.variables)
        grads = stack_task_gradients(inputs, groups)
        combined = gradcraft_combine(grads, self.tau, self.epsilon, self._norms(grads))
        return split_by_groups(combined, inputs, groups), {
                "conflicting_pairs": count_conflicting_pairs(grads)}

    def after_apply(self, inputs, grads):
        del grads
        if self.norm_decay == 0.0:
            return
        task_grads = stack_task_gradients(inputs, tuple(inputs.variables))
        self._norm_ema.assign(self._norms(task_grads))
        self._ema_started.assign(1.0)

    def get_config(self):
        return {"tau": self.tau, "epsilon": self.epsilon, "norm_decay": self.norm_decay}
