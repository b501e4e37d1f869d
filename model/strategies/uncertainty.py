"""Uncertainty weighting (UW): task weights from learned homoscedastic uncertainties.

Reference:
    Kendall, A., Gal, Y., Cipolla, R. "Multi-Task Learning Using Uncertainty to Weigh Losses
    for Scene Geometry and Semantics." CVPR 2018. arXiv:1705.07115.

Each task has a learned log-variance ``s_t = log sigma_t^2`` and the objective is

    sum_t  exp(-s_t) * alpha_t * L_t  +  s_t

i.e. twice the paper's regression form ``L / (2 sigma^2) + log sigma`` (Eq. 7; the factor 2
only rescales the step, and LibMTL's ``UW`` uses the same form halved). At the optimum
``exp(-s_t) = 1 / (alpha_t L_t)``: every task contributes about 1. ``s`` starts at 0, so the
first step is the equal-weight step.

How it plugs in: ``s`` is a trainable loss scale (`GradientStrategy.add_loss_scale`), so the
model's optimizer trains it with everything else from the gradient of the total loss: the
weights ``exp(-s_t) alpha_t`` come from `loss_weights` (differentiable), the ``+ s_t`` term is
a Keras callable loss (tasks with ``alpha_t = 0``, a single-task baseline's other tasks, leave
it out so their ``s`` does not drift). The reported loss includes ``sum_t s_t``.

Hyperparameters: initial_log_variance = 0.0.

Variable groups: none (a loss-weighting method: no per-task backward passes; embeddings
included, every variable gets the gradient of the weighted loss).
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import GradientStrategy


def uncertainty_objective(task_losses, log_variances):
    """``sum_t exp(-s_t) L_t + s_t`` for ``[K]`` losses and log-variances."""
    return tf.reduce_sum(tf.exp(-log_variances) * task_losses + log_variances)


@register("uncertainty")
class Uncertainty(GradientStrategy):
    """Uncertainty weighting (Kendall et al., CVPR 2018) with learned log-variances.

    Args:
        initial_log_variance: starting value of every ``s_t`` (finite float).
        name: module name.
    """

    groups = ()

    def __init__(self, initial_log_variance=0.0, name=None):
        if not abs(float(initial_log_variance)) < float("inf"):
            raise ValueError(f"initial_log_variance must be finite, got {initial_log_variance}")
        super().__init__(name=name)
        self.initial_log_variance = float(initial_log_variance)
        self._log_variance = None

    def build(self, model):
        self._log_variance = self.add_loss_scale("log_variance", shape=(len(model.task_names),),
                                                 initial_value=self.initial_log_variance)
        trained = tf.constant([float(model.task_weights[t] > 0) for t in model.task_names])
        self.add_loss(lambda: tf.reduce_sum(trained * self._log_variance))
        super().build(model)

    def stat_names(self, tasks):
        return tuple(f"weight/{t}" for t in tasks)

    def loss_weights(self, task_losses, alpha):
        scale = tf.exp(-self._log_variance)
        return {t: alpha[t] * scale[i] for i, t in enumerate(task_losses)}

    def combine(self, inputs):
        grads, _ = super().combine(inputs)
        scale = tf.exp(-self._log_variance)
        return grads, {f"weight/{t}": scale[i] for i, t in enumerate(inputs.task_losses)}

    def get_config(self):
        return {"initial_log_variance": self.initial_log_variance}
