"""AdaTask: task-wise adaptive learning rates for the shared parameters.

Reference:
    Yang, E., Pan, J., Wang, X., Yu, H., Shen, L., Chen, X., Xiao, L., Jiang, J., Guo, G.
    "AdaTask: A Task-Aware Adaptive Learning Rate Approach to Multi-Task Learning." AAAI 2023.
    arXiv:2211.15055.

Adam on a shared parameter mixes all tasks in one second-moment accumulator, so the task with
the largest gradients sets everyone's step size. AdaTask keeps **one Adam accumulator pair per
task** for the shared parameters and sums the per-task adaptive steps (paper, Alg. 1)::

    m_k <- b1 m_k + (1 - b1) g_k          v_k <- b2 v_k + (1 - b2) g_k^2
    theta <- theta - lr * sum_k  m^_k / (sqrt(v^_k) + eps)     (bias-corrected m^, v^)

Task-specific parameters only ever see one task, so for them AdaTask *is* Adam.

How it plugs into the train step: it is an optimizer-level method, so the strategy sets
`applies_own_updates`. `combine` returns the plain summed gradient of ``shared`` (used by the
model only for its finiteness check); `apply_updates` then performs the task-wise Adam step on
``shared`` from ``inputs.per_task``, and the model's optimizer (Adam) updates every other
variable (towers, embeddings) as usual and skips ``shared``. The moments are non-trainable state
variables, 2 x K copies of the shared variables. The learning rate is the model optimizer's (a
schedule is evaluated at the optimizer's step) unless ``learning_rate`` is given. The
regularization gradient of ``shared`` (owned by no task) is split equally among the tasks.

Hyperparameters (Adam's defaults, as in the paper): beta_1 = 0.9, beta_2 = 0.999,
epsilon = 1e-8.

Variable group: ``shared`` (experts, gates, PPNet, bottom). The paper also applies it to the
embedding tables; we keep those on the model's optimizer with sparse updates (K dense copies of
the moments of every table would not fit a production model).
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import GradientStrategy


def adatask_moments(task_grads, m, v, beta_1, beta_2):
    """One accumulator update per task: returns the new ``(m, v)`` lists (same layout)."""
    new_m = [beta_1 * mk + (1.0 - beta_1) * gk for mk, gk in zip(m, task_grads)]
    new_v = [beta_2 * vk + (1.0 - beta_2) * tf.square(gk) for vk, gk in zip(v, task_grads)]
    return new_m, new_v


def adatask_step(m, v, step, learning_rate, beta_1, beta_2, epsilon):
    """``lr * sum_k m^_k / (sqrt(v^_k) + eps)`` (the amount subtracted from the parameter)."""
    step = tf.cast(step, m[0].dtype)
    correction_1 = 1.0 - tf.pow(tf.cast(beta_1, step.dtype), step)
    correction_2 = 1.0 - tf.pow(tf.cast(beta_2, step.dtype), step)
    total = tf.add_n([(mk / correction_1) / (tf.sqrt(vk / correction_2) + epsilon)
                      for mk, vk in zip(m, v)])
    return tf.cast(learning_rate, total.dtype) * total


@register("adatask")
class AdaTask(GradientStrategy):
    """AdaTask (Yang et al., AAAI 2023): task-wise Adam on the ``shared`` group.

    Args:
        learning_rate: float, or None to use the model optimizer's learning rate.
        beta_1, beta_2, epsilon: Adam constants.
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True
    applies_own_updates = True

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-8, name=None):
        if learning_rate is not None and not float(learning_rate) > 0.0:
            raise ValueError(f"learning_rate must be > 0 or None, got {learning_rate}")
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"{arg} must be in [0, 1), got {value}")
        if not float(epsilon) > 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        super().__init__(name=name)
        self.learning_rate = None if learning_rate is None else float(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self._model_optimizer = None
        self._m = {}
        self._v = {}
        self._iterations = None

    def build(self, model):
        variables = model.backbone.variable_groups()["shared"]
        for task in model.task_names:
            self._m[task] = [self.add_state(f"m/{task}/{i}", shape=v.shape)
                             for i, v in enumerate(variables)]
            self._v[task] = [self.add_state(f"v/{task}/{i}", shape=v.shape)
                             for i, v in enumerate(variables)]
        self._iterations = self.add_state("iterations", dtype=tf.int64, initial_value=0)
        self._model_optimizer = lambda: model.optimizer  # not tracked: the model owns it
        super().build(model)

    def _learning_rate(self):
        if self.learning_rate is not None:
            return tf.constant(self.learning_rate)
        optimizer = self._model_optimizer()
        lr = optimizer.learning_rate
        if isinstance(lr, tf.keras.optimizers.schedules.LearningRateSchedule):
            lr = lr(optimizer.iterations)
        return tf.convert_to_tensor(lr)

    @staticmethod
    def _task_sum(inputs):
        return [tf.add_n([tf.convert_to_tensor(inputs.per_task[t]["shared"][j])
                          for t in inputs.per_task])
                for j in range(len(inputs.variables["shared"]))]

    def combine(self, inputs):
        """The plain task sum (checked for finiteness by the model; the update is ours)."""
        return {"shared": self._task_sum(inputs)}, {}

    def apply_updates(self, inputs, grads):
        variables = inputs.variables["shared"]
        tasks = list(inputs.per_task)
        num_tasks = len(tasks)
        per_task = [[tf.convert_to_tensor(g) for g in inputs.per_task[t]["shared"]]
                    for t in tasks]
        # `grads` (combine's task sum plus the model's regularization gradient) minus the task
        # parts is the regularization gradient, which is shared equally by the tasks.
        task_sum = self._task_sum(inputs)
        residual = [tf.convert_to_tensor(g) - s for g, s in zip(grads["shared"], task_sum)]
        step = self._iterations.assign_add(1)
        lr = self._learning_rate()
        for j, variable in enumerate(variables):
            task_grads = [per_task[k][j] + residual[j] / num_tasks for k in range(num_tasks)]
            m = [self._m[t][j] for t in tasks]
            v = [self._v[t][j] for t in tasks]
            new_m, new_v = adatask_moments(task_grads, m, v, self.beta_1, self.beta_2)
            for var, value in zip(m + v, new_m + new_v):
                var.assign(value)
            variable.assign_sub(adatask_step(new_m, new_v, step, lr, self.beta_1, self.beta_2,
                                             self.epsilon))

    def get_config(self):
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}
