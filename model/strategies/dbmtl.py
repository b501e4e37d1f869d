"""DB-MTL: dual balancing of loss scales (log losses) and gradient magnitudes.

Reference:
    Lin, B., Jiang, W., Ye, F., Zhang, Y., Chen, P., Chen, Y.-C., Liu, S., Kwok, J. T.
    "Dual-Balancing for Multi-Task Learning." arXiv:2308.12029, 2023. (Its LibMTL
    implementation ``DB_MTL`` is the reference for the details below.)

1. Loss-scale balancing: every task trains on ``log L_t`` (gradient ``grad L_t / L_t``), the
   same for a task whose loss is 0.6 or 0.01. Implemented as the weight
   ``alpha_t / (L_t + 1e-8)`` (a constant for the gradient) from `loss_weights`, so towers and
   embeddings get the log-loss gradient too; the reported loss is therefore about
   ``sum_t alpha_t`` and the per-task losses are unweighted.
2. Gradient-magnitude balancing, on the shared parameters: an EMA of each task's (log-loss)
   gradient, ``h_t <- beta h_t + (1 - beta) g_t`` (from zeros, no bias correction, as LibMTL's
   ``DB_beta_sigma = 0``), and the update

       d = max_s ||h_s|| * sum_t h_t / ||h_t||

   i.e. every task's direction with the largest task's magnitude.

Hyperparameters (LibMTL defaults): beta = 0.9.

State: the K EMA gradients of the ``shared`` group (K dense copies of it; non-trainable,
committed in `after_apply`, i.e. applied steps only).

Variable groups: ``shared`` (experts, gates, PPNet, bottom); embeddings and towers get the
summed log-loss gradient (embeddings stay sparse).
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (GradientStrategy, count_conflicting_pairs, split_by_groups,
                                   stack_task_gradients)

_LOSS_EPSILON = 1e-8


def ema_gradients(buffer, grads, beta):
    """``beta * h + (1 - beta) * g`` for ``[K, d]`` buffers and gradients."""
    return beta * buffer + (1.0 - beta) * grads


def balance_magnitudes(grads):
    """``max_s ||g_s|| * sum_t g_t / ||g_t||`` for ``[K, d]`` (a zero row contributes 0)."""
    grads = tf.convert_to_tensor(grads)
    norms = tf.norm(grads, axis=1)
    scale = tf.math.divide_no_nan(tf.reduce_max(norms), norms)
    return tf.linalg.matvec(grads, scale, transpose_a=True)


@register("dbmtl")
class DBMTL(GradientStrategy):
    """DB-MTL (Lin et al., 2023) on the backbone's shared dense groups.

    Args:
        beta: EMA decay of the per-task gradients, in [0, 1).
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True

    def __init__(self, beta=0.9, name=None):
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        super().__init__(name=name)
        self.beta = float(beta)
        self._buffer = None

    def build(self, model):
        size = sum(int(v.shape.num_elements())
                   for v in model.backbone.variable_groups()["shared"])
        self._buffer = self.add_state("gradient_ema", shape=(len(model.task_names), size))
        super().build(model)

    def stat_names(self, tasks):
        return ("conflicting_pairs",)

    def loss_weights(self, task_losses, alpha):
        return {t: tf.stop_gradient(alpha[t] / (tf.cast(loss, tf.float32) + _LOSS_EPSILON))
                for t, loss in task_losses.items()}

    def _ema(self, inputs):
        return ema_gradients(self._buffer, stack_task_gradients(inputs, tuple(inputs.variables)),
                             self.beta)

    def combine(self, inputs):
        groups = tuple(inputs.variables)
        buffer = self._ema(inputs)
        return split_by_groups(balance_magnitudes(buffer), inputs, groups), {
                "conflicting_pairs": count_conflicting_pairs(buffer)}

    def after_apply(self, inputs, grads):
        del grads
        self._buffer.assign(self._ema(inputs))

    def get_config(self):
        return {"beta": self.beta}
