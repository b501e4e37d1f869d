"""MetaBalance: rescaling the auxiliary tasks' gradients to the target task's magnitude.

Reference:
    He, Y., Feng, X., Cheng, C., Ji, G., Guo, Y., Caverlee, J. "MetaBalance: Improving
    Multi-Task Recommendations via Adapting Gradient Magnitudes of Auxiliary Tasks." WWW 2022.
    arXiv:2203.06801. (Alg. 1 and the authors' PyTorch optimizer.)

Target-task-centric, like DRGrad: the primary task (the first task) sets the scale, and every
other task's gradient on a shared parameter is pulled towards that magnitude. Per shared
variable ``theta`` and task ``t``, with moving averages of the gradient norms (from 0, no bias
correction, updated with the current step's norm before use, as in the authors' code)::

    m_t <- beta m_t + (1 - beta) ||g_t||
    g'_t = r * (m_target / (m_t + 1e-5)) g_t + (1 - r) g_t
    update = sum_t g'_t

(the target task's own gradient is rescaled by ``m_target / (m_target + 1e-5)``, i.e. kept).
This is the paper's strategy C (both reduce and enlarge), the authors' optimizer.

Hyperparameters (paper): relax factor r = 0.7, beta = 0.9.

Variable groups: ``shared`` (experts, gates, PPNet, bottom), per variable (no flattening); the
authors' optimizer rejects sparse gradients, and embeddings keep the plain summed gradient.
State: the ``K x (number of shared variables)`` norm averages, committed in `after_apply`.
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import GradientStrategy

_NORM_EPSILON = 1e-5


def update_norm_averages(norm_averages, norms, beta):
    """``beta * m + (1 - beta) * ||g||`` for ``[K, V]`` averages and norms."""
    return beta * norm_averages + (1.0 - beta) * norms


def metabalance_scales(norm_averages, relax_factor, target=0):
    """``[K, V]`` factors ``r * m_target / (m_t + 1e-5) + (1 - r)`` (row ``target`` is the
    target task)."""
    ratio = norm_averages[target][tf.newaxis, :] / (norm_averages + _NORM_EPSILON)
    return relax_factor * ratio + (1.0 - relax_factor)


@register("metabalance")
class MetaBalance(GradientStrategy):
    """MetaBalance (He et al., WWW 2022) on the shared dense groups; the target task is the
    model's primary (first) task.

    Args:
        relax_factor: r in [0, 1]; 0 is the plain summed gradient, 1 the full rescaling.
        beta: moving-average decay of the gradient norms, in [0, 1).
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True

    def __init__(self, relax_factor=0.7, beta=0.9, name=None):
        if not 0.0 <= float(relax_factor) <= 1.0:
            raise ValueError(f"relax_factor must be in [0, 1], got {relax_factor}")
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        super().__init__(name=name)
        self.relax_factor = float(relax_factor)
        self.beta = float(beta)
        self._norm_averages = None

    def build(self, model):
        count = len(model.backbone.variable_groups()["shared"])
        self._norm_averages = self.add_state("norm_averages",
                                             shape=(len(model.task_names), count))
        super().build(model)

    def stat_names(self, tasks):
        return tuple(f"norm_ratio/{t}" for t in tasks)

    @staticmethod
    def _norms(inputs):
        """``[K, V]``: the norm of every task's gradient of every shared variable."""
        return tf.stack([tf.stack([tf.norm(tf.convert_to_tensor(g))
                                   for g in inputs.per_task[t]["shared"]])
                         for t in inputs.per_task])

    def combine(self, inputs):
        tasks = list(inputs.per_task)
        norms = self._norms(inputs)
        scales = metabalance_scales(update_norm_averages(self._norm_averages, norms, self.beta),
                                    self.relax_factor)
        combined = [tf.add_n([scales[k, j] * tf.convert_to_tensor(inputs.per_task[t]["shared"][j])
                              for k, t in enumerate(tasks)])
                    for j in range(len(inputs.variables["shared"]))]
        # ||g'_t|| / ||g_t|| over the whole group: how much each task was rescaled.
        ratios = tf.math.divide_no_nan(tf.norm(scales * norms, axis=1), tf.norm(norms, axis=1))
        return {"shared": combined}, {f"norm_ratio/{t}": ratios[k] for k, t in enumerate(tasks)}

    def after_apply(self, inputs, grads):
        del grads
        self._norm_averages.assign(update_norm_averages(self._norm_averages, self._norms(inputs),
                                                        self.beta))

    def get_config(self):
        return {"relax_factor": self.relax_factor, "beta": self.beta}
