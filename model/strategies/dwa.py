"""DWA: dynamic weight average from the rate of change of each task's epoch loss.

Reference:
    Liu, S., Johns, E., Davison, A. J. "End-to-End Multi-Task Learning with Attention."
    CVPR 2019. arXiv:1803.10704. Section 3.3.

With ``L_k(t)`` the mean loss of task ``k`` over epoch ``t`` and ``r_k = L_k(t-1) / L_k(t-2)``,
the weights of epoch ``t`` are

    w_k(t) = K exp(r_k / T) / sum_i exp(r_i / T)

and ``w_k = 1`` for the first two epochs (no ratio yet). A task whose loss falls slowly gets
more weight. (The GradCraft authors' code applies the formula to consecutive *batches*; this
is the paper's epoch-level version.)

How it plugs in: `after_apply` sums each applied step's task losses in state variables;
`on_epoch_end` (called by `drgrad.training.callbacks.StrategyEpochEnd`, which the trainers add
for this strategy) turns the sums into the epoch means and shifts the last two. Weights are
``alpha_k * w_k`` through `loss_weights` (constants for the gradient).

Hyperparameters (paper): temperature T = 2.

Variable groups: none (a loss-weighting method, no per-task backward passes).
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import GradientStrategy, stack_task_losses


def dwa_weights(last_epoch_losses, epoch_before_losses, temperature=2.0):
    """``K softmax((L(t-1) / L(t-2)) / T)`` from two ``[K]`` epoch-mean losses."""
    k = tf.cast(tf.shape(last_epoch_losses)[0], tf.float32)
    ratios = tf.math.divide_no_nan(last_epoch_losses, epoch_before_losses)
    return k * tf.nn.softmax(ratios / temperature)


@register("dwa")
class DWA(GradientStrategy):
    """Dynamic Weight Average (Liu et al., CVPR 2019) over epoch-mean task losses.

    Args:
        temperature: softmax temperature T (> 0).
        name: module name.
    """

    groups = ()
    needs_epoch_end = True

    def __init__(self, temperature=2.0, name=None):
        if not float(temperature) > 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        super().__init__(name=name)
        self.temperature = float(temperature)

    def build(self, model):
        k = len(model.task_names)
        self._loss_sums = self.add_state("epoch_loss_sums", shape=(k,))
        self._steps = self.add_state("epoch_steps")
        self._last = self.add_state("last_epoch_losses", shape=(k,))
        self._before = self.add_state("epoch_before_losses", shape=(k,))
        self._epochs = self.add_state("epochs_done")
        super().build(model)

    def stat_names(self, tasks):
        return tuple(f"weight/{t}" for t in tasks)

    def current_weights(self):
        """``[K]``: 1 for the first two epochs, then the DWA weights."""
        weights = dwa_weights(self._last, self._before, self.temperature)
        return tf.where(self._epochs >= 2.0, weights, tf.ones_like(weights))

    def loss_weights(self, task_losses, alpha):
        weights = tf.stop_gradient(self.current_weights())
        return {t: alpha[t] * weights[i] for i, t in enumerate(task_losses)}

    def combine(self, inputs):
        grads, _ = super().combine(inputs)
        weights = self.current_weights()
        return grads, {f"weight/{t}": weights[i] for i, t in enumerate(inputs.task_losses)}

    def after_apply(self, inputs, grads):
        del grads
        self._loss_sums.assign_add(stack_task_losses(inputs.task_losses))
        self._steps.assign_add(1.0)

    def on_epoch_end(self, epoch):
        """Closes the epoch: its mean losses become ``L(t-1)``; an epoch without an applied
        step changes nothing."""
        del epoch
        ran = self._steps > 0.0
        mean = self._loss_sums / tf.maximum(self._steps, 1.0)
        self._before.assign(tf.where(ran, self._last, self._before))
        self._last.assign(tf.where(ran, mean, self._last))
        self._epochs.assign_add(tf.where(ran, 1.0, 0.0))
        self._loss_sums.assign(tf.zeros_like(self._loss_sums))
        self._steps.assign(0.0)

    def get_config(self):
        return {"temperature": self.temperature}
