"""IMTL: impartial multi-task learning (closed-form gradient balance + learned loss scales).

Reference:
    Liu, L., Li, Y., Kuang, Z., Xue, J.-H., Chen, Y., Yang, W., Liao, Q., Zhang, W. "Towards
    Impartial Multi-task Learning." ICLR 2021. (Algorithm 1: IMTL = IMTL-L + IMTL-G.)

IMTL-G (gradient balance), on the shared parameters: find ``g = sum_t a_t g_t`` with
``sum_t a_t = 1`` whose projections onto every task's unit gradient ``u_t = g_t / ||g_t||``
are equal (``<g, u_1> = <g, u_t>``). With ``D`` the rows ``g_1 - g_t`` and ``U`` the rows
``u_1 - u_t`` (t = 2..K), the closed form (paper, Eq. 5) is

    a_{2:K} = g_1 U^T (D U^T)^{-1},      a_1 = 1 - sum_{t>=2} a_t

computed here from K x K products only, in float64 (a pseudo-inverse handles linearly
dependent gradients).

IMTL-L (loss balance): each task's loss is scaled by a learned ``exp(s_t)`` with the objective
``exp(s_t) L_t - s_t``, whose optimum makes every scaled loss 1 (paper, Eq. 2). ``s`` is a
trainable loss scale (`GradientStrategy.add_loss_scale`) trained by the model's optimizer from
the total loss (the ``- s_t`` term is a Keras callable loss, left out for tasks with weight
0). The per-task gradients IMTL-G balances are those of the scaled losses (as in the paper and
LibMTL), and the towers get the scaled losses' gradients. The reported loss includes
``- sum_t s_t``.

Hyperparameters: none (initial_log_scale = 0.0: the first step starts unscaled).

Variable groups: ``shared`` (experts, gates, PPNet, bottom); the paper's cheaper variant
balances the gradients of the shared *representation* instead (not offered here). Embeddings
get the summed gradient of the scaled losses.
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (GradientStrategy, count_conflicting_pairs, split_by_groups,
                                   stack_task_gradients)

_TINY = 1e-30


def imtl_weights(grads):
    """IMTL-G's ``a`` (``[K]``, summing to 1) from per-task gradients ``[K, d]`` (static K)."""
    grads = tf.convert_to_tensor(grads)
    if grads.shape.rank != 2 or grads.shape[0] is None:
        raise ValueError(f"grads must be [K, d] with a static K, got shape {grads.shape}")
    if grads.shape[0] == 1:
        return tf.ones([1], grads.dtype)
    gram = tf.cast(tf.matmul(grads, grads, transpose_b=True), tf.float64)
    inverse_norms = 1.0 / tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), _TINY))
    # <u_a, g_b> = gram[a, b] / ||g_a||: every product below is a combination of gram entries.
    unit_dot = gram * inverse_norms[:, tf.newaxis]
    u_g = unit_dot[:1] - unit_dot[1:]          # [K-1, K]: <u_1 - u_s, g_b>; column 0 is U g_1
    u_dt = u_g[:, :1] - u_g[:, 1:]             # (U D^T)[s, t] = <u_1 - u_s, g_1 - g_t>
    rest = tf.linalg.matvec(tf.linalg.pinv(u_dt), u_g[:, 0])
    weights = tf.concat([1.0 - tf.reduce_sum(rest, keepdims=True), rest], axis=0)
    return tf.cast(weights, grads.dtype)


@register("imtl")
class IMTL(GradientStrategy):
    """IMTL (Liu et al., ICLR 2021): IMTL-L loss scales and IMTL-G on the shared dense groups.

    Args:
        initial_log_scale: starting value of every ``s_t`` (finite float).
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True

    def __init__(self, initial_log_scale=0.0, name=None):
        if not abs(float(initial_log_scale)) < float("inf"):
            raise ValueError(f"initial_log_scale must be finite, got {initial_log_scale}")
        super().__init__(name=name)
        self.initial_log_scale = float(initial_log_scale)
        self._log_scale = None

    def build(self, model):
        self._log_scale = self.add_loss_scale("log_scale", shape=(len(model.task_names),),
                                              initial_value=self.initial_log_scale)
        trained = tf.constant([float(model.task_weights[t] > 0) for t in model.task_names])
        self.add_loss(lambda: -tf.reduce_sum(trained * self._log_scale))
        super().build(model)

    def stat_names(self, tasks):
        return ("conflicting_pairs",) + tuple(f"weight/{t}" for t in tasks)

    def loss_weights(self, task_losses, alpha):
        scale = tf.exp(self._log_scale)
        return {t: alpha[t] * scale[i] for i, t in enumerate(task_losses)}

    def combine(self, inputs):
        groups = tuple(inputs.variables)
        grads = stack_task_gradients(inputs, groups)
        weights = imtl_weights(grads)
        stats = {"conflicting_pairs": count_conflicting_pairs(grads)}
        stats.update({f"weight/{t}": weights[i] for i, t in enumerate(inputs.per_task)})
        combined = tf.linalg.matvec(grads, weights, transpose_a=True)
        return split_by_groups(combined, inputs, groups), stats

    def get_config(self):
        return {"initial_log_scale": self.initial_log_scale}
