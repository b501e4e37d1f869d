"""The gradient-strategy interface: how a multi-task method turns task gradients into updates.

`MultiTaskModel.train_step` (model/multitask_model.py) runs ONE forward pass under ONE
`tf.GradientTape`, computes the summed loss ``L = sum_t w_t * L_t (+ regularization)`` and asks
the tape for gradients. A `GradientStrategy` decides, per variable *group* (named by the
backbone: ``embeddings``, ``experts``, ``gates``, ``ppnet``, ``bottom``, ``t1_dedicated``,
``t1_shared``, ``aux_towers``, ``towers``, ``shared``, ``tower/<task>``, ...), what update those
variables get. Every variable outside the groups a strategy names gets the plain summed-loss
gradient (embedding gradients stay `tf.IndexedSlices`). Then there is one
`optimizer.apply_gradients` and a post-update hook.

The hooks, in the order `train_step` calls them:

1. ``loss_weights(task_losses, alpha) -> {task: scalar}``: inside the tape. Loss-weighting
      methods (IGBv2, DWA, DB-MTL) return their weights here (treat them as constants:
      `tf.stop_gradient`), except learned loss scales (below), whose weights must stay
      differentiable. Default: the configured per-task weights ``alpha``.
2. Gradients. Let ``groups`` = `self.groups`. The model computes
      * ``summed[group]``: gradient of the total loss for each variable of the group;
      * if `self.needs_task_gradients`: ``per_task[task][group]``: gradient of ``w_t * L_t`` alone
          (one extra `tape.gradient` per task over the named groups only, unconnected -> zeros).
      Strategies that only touch task-specific towers do NOT need per-task gradients: a tower
      only influences its own task's loss, so the summed gradient restricted to tower ``t`` *is*
      ``grad(w_t * L_t)`` (DRGrad uses this and costs no extra backward pass).
3. ``combine(inputs: StrategyInputs) -> (grads, stats)``: ``grads`` is ``{group: [gradient per
      variable]}`` for every group in `self.groups` (same order as ``inputs.variables[group]``);
      ``stats`` is ``{name: float32 scalar}`` with names from `stat_names()` (logged to
      TensorBoard by `drgrad.training.callbacks.StrategyStatsLogger`). Pure TF ops only (it runs
      under `tf.function`; XLA optional).
4. The model checks every gradient and the loss for NaN/Inf; a non-finite step is skipped
      entirely (no apply, no `after_apply`) and counted in the ``skipped_steps`` metric.
5. ``apply_updates(variables, grads)`` only if `self.applies_own_updates` (optimizer-level
      methods such as AdaTask, which keep per-task Adam moments): the strategy updates its groups'
      variables itself and the model's optimizer skips them. Otherwise the combined gradients go
      through the model's single `optimizer.apply_gradients` with all other gradients.
6. ``after_apply(inputs, grads)``: post-update state changes (DRGrad's updater, GradCraft's
      EMA, ...), only on applied steps.

Representation routing (optional; DRGrad ``route_level="upstream"``). A strategy whose
`routes_representations` is True sees, between steps 2 and 3, the per-task gradients of
``w_t L_t`` w.r.t. the backbone's named representations (``backbone.representation_names``,
e.g. Split-MMoE's ``v1`` and ``vs``, each ``[B, d]``) and returns, from
``route_representations(rep_grads) -> ({name: [B, d] output gradient}, stats)``, the gradient
to send back through them. The model then replaces the summed-loss gradient of every variable
in ``backbone.representation_groups`` (everything upstream of the representations:
embeddings, experts, gates, PPNet) by ``tape.gradient([reps], upstream_vars,
output_gradients=[routed])`` (+ the regularization gradient); embedding gradients stay
`tf.IndexedSlices`. Returning the plain sums ``Σ_t rep_grads[t][name]`` reproduces the
ordinary step exactly.

State (accumulators, EMAs, step counters) lives in non-trainable `tf.Variable`s created in
``build(model)`` (called once, eagerly, after the backbone is built and before any
`tf.function` trace) through `self.add_state(...)`; the model tracks the strategy, so its
state is checkpointed with the weights. Python attributes do not survive tracing.

Under a `tf.distribute` strategy the model all-reduces every gradient the hooks see (and the
task losses) before calling them, so each replica computes the same state update; `add_state`
variables are ONLY_FIRST_REPLICA-aggregated (an assign in replica context writes that value to
every replica's copy), and model variables a strategy writes itself (AdaTask's
`apply_updates`, DRGrad's μ) get the same value on every replica. A hook must therefore be
deterministic given its inputs (stateless random ops keyed by the step, as PCGrad's order).

Learned loss scales (uncertainty weighting, IMTL-L). `self.add_loss_scale(...)` in ``build``
creates a TRAINABLE variable: it is one of the model's ``trainable_variables``, so the
model's ordinary summed-loss gradient and single optimizer update train it, with no extra
hook. Its gradient comes from the total loss: through the weights ``loss_weights`` returns
(not stopped), plus any term that is not a multiple of a task loss (Kendall's ``+ s``,
IMTL's ``- s``), registered once in ``build`` as a Keras callable loss,
``self.add_loss(lambda: ...)``. The model adds ``self.losses`` to the total (as it does
for weight regularizers), so that term is part of the reported loss and of the
regularization gradient. A strategy that creates no loss scale leaves the model's
trainable variables, losses and traced step exactly as before.

Epoch-end hook (DWA). A strategy with `needs_epoch_end` gets ``on_epoch_end(epoch)``
called eagerly after every Keras epoch by `drgrad.training.callbacks.StrategyEpochEnd`,
which `drgrad.training.callbacks.strategy_callbacks(model)` returns for it (the trainers add
those; a user calling ``model.fit`` directly adds them too). Per-epoch sums are kept in
state updated by ``after_apply``; the hook only moves them along (assigns, no tracing).

Groups named by one strategy must be disjoint (the model checks). Per-task gradients of a
group that holds embedding tables are `IndexedSlices`; strategies that flatten gradients
should not name ``embeddings``.

Example (a PCGrad-like strategy on the shared dense layers)::

    from drgrad.model.strategies import register
    from drgrad.model.strategies.base import GradientStrategy, flatten, unflatten

    @register("my_pcgrad")
    class MyPCGrad(GradientStrategy):
        groups = ("shared",)
        needs_task_gradients = True

        def combine(self, inputs):
            variables = inputs.variables["shared"]
            g = {t: flatten(inputs.per_task[t]["shared"]) for t in inputs.per_task}
            total = project_conflicts(g)          # pure TF function on 1-D tensors
            return {"shared": unflatten(total, variables)}, {}

Reference: the split into "which variables get surgery" and "everything else gets the plain
gradient" follows tensor2robot's PCGrad allowlist (Yu et al., "Gradient Surgery for
Multi-Task Learning", NeurIPS 2020); DRGrad's routing of tower gradients follows Liu et al.,
"Direct Routing Gradient (DRGrad)", AAAI 2025, Alg. 1.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence

import tensorflow as tf


class StrategyInputs(NamedTuple):
    """What `combine`, `apply_updates` and `after_apply` see in one training step.

    Attributes:
        variables: ``{group: [tf.Variable]}`` for the strategy's groups.
        summed: ``{group: [gradient]}``: gradient of the total loss (sum_t w_t L_t + regularization).
        per_task: ``{task: {group: [gradient]}}``: gradient of ``w_t * L_t`` alone, or None when the
            strategy does not set `needs_task_gradients`.
        task_losses: ``{task: scalar}``: unweighted mean loss of each task.
        loss_weights: ``{task: scalar}``: the weights ``w_t`` used in the total loss.
        step: int64 scalar, the optimizer's iteration count before this step's apply.
    """
    variables: Dict[str, List[tf.Variable]]
    summed: Dict[str, List[tf.Tensor]]
    per_task: Optional[Dict[str, Dict[str, List[tf.Tensor]]]]
    task_losses: Dict[str, tf.Tensor]
    loss_weights: Dict[str, tf.Tensor]
    step: tf.Tensor


class GradientStrategy(tf.keras.layers.Layer):
    """Base class: the identity strategy (every group keeps its summed-loss gradient).

    Subclasses set the class attributes `groups`, `needs_task_gradients` and
    `applies_own_updates`, create state in `build`, and override the hooks they need. See the
    module docstring for the contract. Constructor arguments must be JSON-serializable and
    returned by `get_config` so a `ModelConfig` can rebuild the strategy.

    A strategy is a Keras layer only so that the model tracks its state like any layer's
    weights (checkpoints, ``.keras`` files, ``model.non_trainable_weights``, and the
    trainable loss scales of `add_loss_scale`); it is never called on tensors.
    """

    #: Variable groups (names declared by the backbone) this strategy transforms.
    groups: Sequence[str] = ()
    #: Whether `combine` needs ``grad(w_t L_t)`` per task (one extra backward per task).
    needs_task_gradients: bool = False
    #: Whether the strategy updates its groups itself (`apply_updates`) instead of the optimizer.
    applies_own_updates: bool = False
    #: Whether `on_epoch_end` must be called after every epoch (see `strategy_callbacks`).
    needs_epoch_end: bool = False

    def __init__(self, name=None, **kwargs):
        # A trainable layer, so that loss scales (`add_loss_scale`) reach the model's
        # trainable variables; `add_state` variables are non-trainable either way.
        super().__init__(name=name, trainable=True, **kwargs)

    # -- set-up ------------------------------------------------------------------------------
    def build(self, model):  # pylint: disable=arguments-renamed
        """Creates state with `add_state`; called once by the model, eagerly, after the
        backbone is built. Override (calling super last) to read the model's structure."""
        del model
        self.built = True

    def required_groups(self, model):
        """The groups this strategy transforms for `model` (default: `self.groups`)."""
        del model
        return tuple(self.groups)

    def add_state(self, name, shape=(), dtype=tf.float32, initial_value=0.0):
        """Creates a non-trainable state variable (checkpointed and saved with the model);
        ONLY_FIRST_REPLICA under a `tf.distribute` strategy (the module docstring)."""
        return self.add_weight(name=name, shape=shape, dtype=dtype, trainable=False,
                               initializer=tf.keras.initializers.Constant(initial_value),
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def add_loss_scale(self, name, shape=(), initial_value=0.0):
        """Creates a TRAINABLE variable (a learned loss scale): trained by the model's optimizer
        from the gradient of the total loss (see the module docstring)."""
        return self.add_weight(name=name, shape=shape, dtype=tf.float32, trainable=True,
                               initializer=tf.keras.initializers.Constant(initial_value))

    def stat_names(self, tasks):
        """Names of the scalars `combine` returns in ``stats`` (created as logged variables)."""
        del tasks
        return ()

    # -- per-step hooks ----------------------------------------------------------------------
    def loss_weights(self, task_losses, alpha):
        """{task: weight} for the total loss, computed inside the tape. Default: ``alpha``."""
        del task_losses
        return dict(alpha)

    def combine(self, inputs: StrategyInputs):
        """Returns ``({group: [gradient per variable]}, {stat name: scalar})``."""
        return {group: list(inputs.summed[group]) for group in inputs.variables}, {}

    def apply_updates(self, inputs: StrategyInputs, grads):
        """Updates `inputs.variables` from ``grads`` itself (only if `applies_own_updates`)."""
        raise NotImplementedError(
                f"{type(self).__name__} sets applies_own_updates but does not define apply_updates")

    def after_apply(self, inputs: StrategyInputs, grads):
        """Post-update state changes, run only on applied (finite) steps. Default: nothing."""
        del inputs, grads

    def on_epoch_end(self, epoch):
        """Called eagerly after every epoch if `needs_epoch_end`. Default: nothing."""
        del epoch

    # -- representation routing (optional) ----------------------------------------------------
    @property
    def routes_representations(self):
        """Whether `route_representations` replaces the gradients upstream of the backbone's
        representations (see the module docstring). Default: False."""
        return False

    def route_representations(self, rep_grads):
        """``rep_grads``: ``{task: {representation: [B, d] gradient of w_t L_t}}`` (zeros where
        unconnected). Returns ``({representation: output gradient}, {stat name: scalar})``.
        Default: the plain sums over tasks (the ordinary summed-loss step)."""
        names = next(iter(rep_grads.values())).keys()
        return {name: tf.add_n([rep_grads[t][name] for t in rep_grads]) for name in names}, {}

    # -- serialization -----------------------------------------------------------------------
    def get_config(self):
        """JSON-serializable constructor arguments (what `ModelConfig.strategy_args` holds)."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def flatten(grads):
    """Concatenates a list of dense gradients into one 1-D float32 tensor."""
    if not grads:
        return tf.zeros([0], tf.float32)
    return tf.concat([tf.reshape(tf.convert_to_tensor(g), [-1]) for g in grads], axis=0)


def unflatten(vector, variables):
    """Splits a 1-D tensor back into tensors shaped like ``variables``."""
    sizes = [int(v.shape.num_elements()) for v in variables]
    parts = tf.split(vector, sizes) if sizes else []
    return [tf.reshape(p, v.shape) for p, v in zip(parts, variables)]


def _dense(grads):
    return [tf.convert_to_tensor(g) for g in grads]


def stack_task_gradients(inputs, groups):
    """Flattens ``inputs.per_task`` over ``groups`` into ``G: [K, d]`` (tasks in dict order).

    ``per_task[t]`` is the gradient of ``w_t L_t`` alone; the model adds the regularization
    gradient of the groups back after `combine`, so strategies combine the task parts only.
    """
    rows = [flatten([g for group in groups for g in _dense(inputs.per_task[t][group])])
            for t in inputs.per_task]
    return tf.stack(rows)


def split_by_groups(vector, inputs, groups):
    """Inverse of the flattening in `stack_task_gradients`: ``{group: [gradient per variable]}``."""
    variables = [v for group in groups for v in inputs.variables[group]]
    parts = unflatten(vector, variables)
    out, start = {}, 0
    for group in groups:
        n = len(inputs.variables[group])
        out[group] = parts[start:start + n]
        start += n
    return out


def stack_task_losses(task_losses):
    """``{task: scalar}`` -> float32 ``[K]`` in dict (task) order."""
    return tf.stack([tf.cast(task_losses[t], tf.float32) for t in task_losses])


def count_conflicting_pairs(grads):
    """Number of unordered task pairs with a negative inner product (float32 scalar)."""
    gram = tf.matmul(grads, grads, transpose_b=True)
    upper = tf.linalg.band_part(tf.cast(gram < 0.0, tf.float32), 0, -1)
    return tf.reduce_sum(upper)
