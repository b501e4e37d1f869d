"""`MultiTaskModel`: a backbone, a gradient strategy and one ranking task per label.

Each task's BCE loss on logits and AUC metric come from a tensorflow-recommenders
`tfrs.tasks.Ranking`; the model itself is a plain `tf.keras.Model` (its `train_step` and
`test_step` are its own). `call` returns only ``{task: probability [B]}`` (float32), so an
exported signature has exactly one output per task; for split backbones the primary task is
``sigmoid(μ′·z′ + μ″·z″)`` with μ read from the non-trainable `TowerMixer` variable.

`train_step` (DRGrad Alg. 1, generalized to any `GradientStrategy`) is six named steps:

1. `_forward_losses`: ONE forward pass under ONE `tf.GradientTape` (persistent only if the
   strategy needs per-task gradients or routes representations); task losses L_t, weights w_t
   (``strategy.loss_weights``, default α), total = Σ w_t·L_t + regularization losses.
2. `_summed_gradients`: ONE ``tape.gradient(total, trainable_variables)``; embedding gradients
   stay `tf.IndexedSlices`.
3. `_routed_summed_gradients` (instead of 2, when ``strategy.routes_representations``: DRGrad
   ``route_level="upstream"``): the backbone also returns its representations (v1, vs); one
   ``tape.gradient(w_t·L_t, representations)`` per task (through the towers only) goes to
   ``strategy.route_representations``, and the variables upstream of them get
   ``tape.gradient(representations, upstream, output_gradients=routed)``; every other variable
   gets its summed gradient, and no backward pass is wasted on the upstream ones.
4. `_per_task_gradients`: if the strategy asks, one ``tape.gradient(w_t·L_t, group vars)`` per
   task, restricted to the strategy's groups.
5. `_combine`: ``strategy.combine`` replaces the gradients of its groups; all other variables
   keep the summed-loss gradient.
6. `_apply_if_finite`: if the loss and every gradient are finite, ONE
   ``optimizer.apply_gradients``, then ``strategy.after_apply`` (DRGrad's updater) and the
   metric update; otherwise the step is skipped (no apply, no strategy update, no metric
   update; counted in ``skipped_steps``): a NaN never reaches the weights.

Under a `tf.distribute` strategy (`MirroredStrategy`, `MultiWorkerMirroredStrategy`) each
replica's task loss is its examples' share of the GLOBAL batch mean (`tf.nn.compute_average_loss`
semantics: local sum / global batch size, the regularization divided by the replica count), so
the SUM over replicas of the gradients is the gradient of the global batch. Steps 2–4's
gradients (summed, per-task, regularization) are all-reduced (SUM, `ReplicaContext.all_reduce`)
BEFORE step 5, so every strategy combines, and keeps its state from, the global batch's
gradients, identically on every replica; ``loss_weights`` and `StrategyInputs` see the global
task losses. Step 6 decides finiteness on the reduced values (the same on every replica), and,
since a synchronizing call (``apply_gradients`` with its merge, an assign to a state variable)
must not sit in a `tf.cond` in replica context, it crosses into the cross-replica context
(``merge_call``) and runs ``tf.cond(finite, call_for_each_replica(apply), skip)`` there (the
pattern of tf-keras's `LossScaleOptimizer`), with ``apply_gradients(...,
skip_gradients_aggregation=True)``: the gradients are already reduced. Outside any strategy
none of this is traced. `ParameterServerStrategy` is refused (`compile`). docs/SCALING.md
("Training under tf.distribute") gives the cost per strategy.

All variables (model, strategy state, optimizer slots, logged statistics) are created eagerly
at construction / `compile`, never inside a traced step, so the steps run under `tf.function`
(the Keras default) and retracing is safe. Variables are told apart by `Variable.ref()`.
"""
import math
from typing import Dict, List, NamedTuple, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs

from drgrad.model.backbones import get_backbone
from drgrad.model.backbones.base import Backbone, dedicated_output, shared_output
from drgrad.model.config import ModelConfig, check_tasks
from drgrad.model.layers.mixing import TowerMixer
from drgrad.model.strategies import get_strategy
from drgrad.model.strategies.base import GradientStrategy, StrategyInputs


def _stat_key(name):
    return name.replace("/", "__")


def _replica_sum(value):
    """``value`` summed over the replicas (all-reduce) under a `tf.distribute` strategy; ``value``
    itself outside one (then nothing is traced). ``value``: a nest of tensors /
    `tf.IndexedSlices`, or None."""
    if value is None or not tf.distribute.has_strategy():
        return value
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value)


def _check_distribution(strategy):
    """Refuses what `train_step` does not support (see the module docstring)."""
    if isinstance(strategy, (tf.distribute.experimental.ParameterServerStrategy,
                             tf.distribute.experimental.CentralStorageStrategy)):
        raise ValueError(f"MultiTaskModel does not support {type(strategy).__name__}: its "
                         "train_step all-reduces gradients between replicas before the gradient "
                         "strategy combines them; use MirroredStrategy or "
                         "MultiWorkerMirroredStrategy")


def _all_finite(total, grads):
    """Whether the loss and every gradient (values of `tf.IndexedSlices`) are finite."""
    finite = tf.math.is_finite(total)
    for grad in grads:
        values = grad.values if isinstance(grad, tf.IndexedSlices) else grad
        finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(values)))
    return finite


def _weights_by_task(given, tasks, argument, what, zero_allowed):
    """``{task: weight}`` for every task (1.0 unless ``given``), each finite and ≥ 0 (or > 0
    unless ``zero_allowed``); ``argument``/``what`` name them in the errors."""
    weights = {t: 1.0 for t in tasks}
    for task, weight in dict(given or {}).items():
        if task not in weights:
            raise ValueError(f"{argument} names unknown task {task!r}; tasks: {list(tasks)}")
        weight = float(weight)
        if not math.isfinite(weight) or weight < 0 or (weight == 0 and not zero_allowed):
            raise ValueError(f"{what} of {task!r} must be finite and "
                             f"{'>=' if zero_allowed else '>'} 0, got {weight}")
        weights[task] = weight
    return weights


class _Forward(NamedTuple):
    """What step 1 computes under the tape.

    ``task_losses`` and ``total`` are this replica's shares (the losses themselves outside a
    `tf.distribute` strategy); ``global_losses`` are the global batch's task losses (constants
    for the tape under a strategy), which the strategy and the metrics see.
    """
    logits: Dict[str, tf.Tensor]
    representations: Optional[Dict[str, tf.Tensor]]
    task_losses: Dict[str, tf.Tensor]
    global_losses: Dict[str, tf.Tensor]
    weights: Dict[str, tf.Tensor]
    weighted: Dict[str, tf.Tensor]
    total: tf.Tensor
    regularization: tf.Tensor


class MultiTaskModel(tf.keras.Model):
    """Multi-task ranking model.

    Args:
      backbone: a built-or-unbuilt `model.backbones.base.Backbone`.
      strategy: a `model.strategies.base.GradientStrategy`.
      tasks: task names, primary first; must equal ``backbone.tasks`` (default: those).
      task_weights: ``{task: α}`` (default 1.0 each), finite and ≥ 0.
      positive_weights: ``{task: p}`` (default 1.0 each), finite and > 0: a positive example of
        that task counts p times in ITS loss only (the DRGrad authors' census code weights
        income positives ×3); metrics and the other tasks' losses keep the sample weight.
      model_config: the `ModelConfig` this model was built from (for `get_config`).
    """

    def __init__(self, backbone, strategy, tasks=None, task_weights=None, model_config=None,
                 positive_weights=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, Backbone):
            raise ValueError(f"backbone must be a Backbone, got {type(backbone).__name__}")
        if not isinstance(strategy, GradientStrategy):
            raise ValueError(f"strategy must be a GradientStrategy, got {type(strategy).__name__}")
        tasks = check_tasks(tasks if tasks is not None else backbone.tasks)
        if tuple(tasks) != tuple(backbone.tasks):
            raise ValueError(f"tasks {list(tasks)} differ from the backbone's "
                             f"{list(backbone.tasks)}")
        self.task_names = tuple(tasks)
        self.task_weights = _weights_by_task(task_weights, tasks, "task_weights", "task weight",
                                             zero_allowed=True)
        self.positive_weights = _weights_by_task(positive_weights, tasks, "positive_weights",
                                                 "positive weight", zero_allowed=False)
        self.model_config = model_config
        self.backbone = backbone
        self.strategy = strategy
        self.mixer = TowerMixer(name="mixer") if backbone.split_primary else None
        # Per-example losses (Reduction.NONE): `_task_losses` averages them over the global
        # batch, which AUTO reduction cannot do under a tf.distribute strategy.
        self.ranking_tasks = {
            t: tfrs.tasks.Ranking(
                loss=tf.keras.losses.BinaryCrossentropy(
                    from_logits=True, reduction=tf.keras.losses.Reduction.NONE),
                metrics=[tf.keras.metrics.AUC(name=f"{t}_auc", from_logits=True,
                                              num_thresholds=1000)],
                name=f"ranking_{t}")
            for t in tasks}
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.task_loss_trackers = {t: tf.keras.metrics.Mean(name=f"{t}_loss") for t in tasks}
        # ONLY_FIRST_REPLICA: the values are the same on every replica (module docstring).
        self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps",
                                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self._build_eagerly()

    # -- construction ----------------------------------------------------------------------
    def dummy_features(self, batch_size=1):
        fc = self.backbone.feature_config
        features = {name: tf.zeros([batch_size], tf.int64) for name in fc.categorical}
        features.update({name: tf.zeros([batch_size], tf.float32) for name in fc.numeric})
        return features

    def _build_eagerly(self):
        self(self.dummy_features())
        groups = self.backbone.variable_groups()
        required = tuple(self.strategy.required_groups(self))
        unknown = [g for g in required if g not in groups]
        if unknown:
            raise ValueError(f"strategy {type(self.strategy).__name__} names groups {unknown} "
                             f"that backbone {type(self.backbone).__name__} does not declare; "
                             f"it has {sorted(groups)}")
        seen = {}
        for group in required:
            for variable in groups[group]:
                if variable.ref() in seen:
                    raise ValueError(f"strategy groups overlap: {variable.name} is in "
                                     f"{seen[variable.ref()]!r} and {group!r}")
                seen[variable.ref()] = group
        self._group_names = required
        self._groups = {g: list(groups[g]) for g in required}
        self._upstream = []
        if self.strategy.routes_representations:
            if not self.backbone.representation_names:
                raise ValueError(f"strategy {type(self.strategy).__name__} routes representation "
                                 f"gradients but backbone {type(self.backbone).__name__} exposes "
                                 "no representations")
            self._upstream = [v for g in self.backbone.representation_groups for v in groups[g]]
            overlap = [v.name for v in self._upstream if v.ref() in seen]
            if overlap:
                raise ValueError(f"strategy groups overlap the representation-routed variables: "
                                 f"{overlap}")
        self.strategy.build(self)
        self.strategy_stats = {
            _stat_key(name): tf.Variable(0.0, trainable=False, name=f"stat_{_stat_key(name)}",
                                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            for name in self.strategy.stat_names(self.task_names)}

    def compile(self, optimizer="adam", **kwargs):  # pylint: disable=arguments-differ
        """Compiles and creates the optimizer's slots now (never inside a traced step)."""
        _check_distribution(self.distribute_strategy)
        super().compile(optimizer=optimizer, **kwargs)
        if hasattr(self.optimizer, "build"):
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        out = [self.loss_tracker] + list(self.task_loss_trackers.values())
        for task in self.task_names:
            out += list(self.ranking_tasks[task]._ranking_metrics)  # pylint: disable=protected-access
        return out

    # -- forward -----------------------------------------------------------------------------
    def task_logits(self, features, training=None):
        """``{task: logit [B]}`` (primary mixed with μ for split backbones)."""
        return self._mix(self.backbone(features, training=training))

    def _mix(self, out):
        if self.mixer is None:
            return {t: out[t] for t in self.task_names}
        primary = self.task_names[0]
        logits = {primary: self.mixer(out[dedicated_output(primary)],
                                      out[shared_output(primary)])}
        logits.update({t: out[t] for t in self.task_names[1:]})
        return logits

    def call(self, features, training=None):
        logits = self.task_logits(features, training=training)
        return {t: tf.cast(tf.sigmoid(logits[t]), tf.float32) for t in self.task_names}

    def _task_losses(self, labels, logits, sample_weight, training, compute_metrics=True):
        """``{task: this replica's share of the global batch's weighted mean loss}``: the sum of
        its per-example losses over the GLOBAL batch size (`tf.nn.compute_average_loss`), so the
        replicas' shares add up to the global mean (outside a strategy: the batch mean)."""
        missing = [t for t in self.task_names if t not in labels]
        if missing:
            raise ValueError(f"labels lack tasks {missing}")
        global_batch = _replica_sum(
            tf.cast(tf.size(labels[self.task_names[0]]), tf.float32))
        losses = {}
        for task in self.task_names:
            y = tf.reshape(tf.cast(labels[task], tf.float32), [-1, 1])
            z = tf.reshape(logits[task], [-1, 1])
            loss_weight = sample_weight
            positive_weight = self.positive_weights[task]
            if positive_weight != 1.0:
                loss_weight = 1.0 + (positive_weight - 1.0) * y
                if sample_weight is not None:
                    loss_weight *= tf.reshape(tf.cast(sample_weight, tf.float32), [-1, 1])
            per_example = self.ranking_tasks[task](y, z, sample_weight=loss_weight,
                                                   training=training, compute_metrics=False)
            losses[task] = tf.math.divide_no_nan(tf.reduce_sum(per_example), global_batch)
            if compute_metrics:
                self._update_task_metrics(task, y, z, sample_weight)
        return losses

    def _update_task_metrics(self, task, y, z, sample_weight):
        """The task's AUC on ``(y, z)`` ``[B, 1]``, weighted by the sample weight only."""
        for metric in self.ranking_tasks[task]._ranking_metrics:  # pylint: disable=protected-access
            metric.update_state(y, z, sample_weight=sample_weight)

    def _update_metrics(self, labels, logits, sample_weight, total, task_losses):
        self.loss_tracker.update_state(total)
        for task in self.task_names:
            self.task_loss_trackers[task].update_state(task_losses[task])
            self._update_task_metrics(task, tf.reshape(tf.cast(labels[task], tf.float32), [-1, 1]),
                                      tf.reshape(logits[task], [-1, 1]), sample_weight)

    # -- training ----------------------------------------------------------------------------
    def train_step(self, data):
        features, labels, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        routes = bool(self._upstream)
        persistent = self.strategy.needs_task_gradients or routes
        with tf.GradientTape(persistent=persistent) as tape:
            forward = self._forward_losses(features, labels, sample_weight, routes)
        if routes:
            summed, stats = self._routed_summed_gradients(tape, forward, variables)
        else:
            summed, stats = self._summed_gradients(tape, forward, variables), {}
        per_task, regularization_grads = self._per_task_gradients(tape, forward)
        del tape
        # The all-reduce (a no-op outside a strategy): strategies see the global batch.
        summed, per_task, regularization_grads = (
            _replica_sum(summed), _replica_sum(per_task), _replica_sum(regularization_grads))
        inputs = StrategyInputs(
            variables=self._groups, summed=self._by_group(summed, variables), per_task=per_task,
            task_losses=forward.global_losses, loss_weights=forward.weights,
            step=self.optimizer.iterations)
        final, combined, combine_stats = self._combine(inputs, summed, variables,
                                                       regularization_grads)
        stats.update(combine_stats)
        self._apply_if_finite(inputs, combined, final, variables, forward, labels, sample_weight)
        for name, value in stats.items():
            self.strategy_stats[_stat_key(name)].assign(tf.cast(value, tf.float32))
        logs = {m.name: m.result() for m in self.metrics}
        logs["skipped_steps"] = self.skipped_steps.value()
        return logs

    def _forward_losses(self, features, labels, sample_weight, routes) -> _Forward:
        """Step 1 (inside the tape): logits, task losses, their weights and the total."""
        representations = None
        if routes:
            out, representations = self.backbone(features, training=True,
                                                 return_representations=True)
            logits = self._mix(out)
        else:
            logits = self.task_logits(features, training=True)
        task_losses = self._task_losses(labels, logits, sample_weight, training=True,
                                        compute_metrics=False)
        global_losses = task_losses
        if tf.distribute.has_strategy():
            global_losses = _replica_sum({t: tf.stop_gradient(task_losses[t])
                                          for t in self.task_names})
        alpha = {t: tf.constant(self.task_weights[t], tf.float32) for t in self.task_names}
        weights = self.strategy.loss_weights(global_losses, alpha)
        weighted = {t: weights[t] * task_losses[t] for t in self.task_names}
        regularization = tf.add_n(self.losses) if self.losses else tf.constant(0.0)
        if self.losses and tf.distribute.has_strategy():
            # Every replica adds it: its share, so the all-reduced gradient counts it once.
            regularization = tf.nn.scale_regularization_loss(regularization)
        total = tf.add_n(list(weighted.values())) + regularization
        return _Forward(logits, representations, task_losses, global_losses, weights, weighted,
                        total, regularization)

    @staticmethod
    def _summed_gradients(tape, forward, variables) -> List:
        """Step 2: the gradient of the total loss for every trainable variable."""
        grads = tape.gradient(forward.total, variables)
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

    def _routed_summed_gradients(self, tape, forward, variables):
        """Step 3 (instead of 2): routed representation gradients for the upstream variables.

        Variables upstream of the representations get the routed representation gradient
        (+ regularization) instead of the summed one; no backward pass is wasted on them.
        """
        upstream = {v.ref() for v in self._upstream}
        plain_vars = [v for v in variables if v.ref() not in upstream]
        grads = dict(zip((v.ref() for v in plain_vars), tape.gradient(forward.total, plain_vars)))
        names = self.backbone.representation_names
        targets = [forward.representations[n] for n in names]
        rep_grads = {}
        for task in self.task_names:
            task_grads = tape.gradient(forward.weighted[task], targets,
                                       unconnected_gradients=tf.UnconnectedGradients.ZERO)
            rep_grads[task] = dict(zip(names, task_grads))
        routed, stats = self.strategy.route_representations(rep_grads)
        output_gradients = [tf.cast(routed[n], target.dtype) for n, target in zip(names, targets)]
        if self.losses:
            targets.append(forward.regularization)
            output_gradients.append(None)
        grads.update(zip((v.ref() for v in self._upstream),
                         tape.gradient(targets, self._upstream,
                                       output_gradients=output_gradients)))
        summed = [grads[v.ref()] for v in variables]
        summed = [tf.zeros_like(v) if g is None else g for g, v in zip(summed, variables)]
        return summed, dict(stats)

    def _per_task_gradients(self, tape, forward):
        """Step 4: ``{task: {group: [∇ w_t·L_t]}}`` over the strategy's groups (or None), and
        the regularization's gradient of those groups (or None)."""
        if not (self.strategy.needs_task_gradients and self._groups):
            return None, None
        flat_vars = [v for g in self._group_names for v in self._groups[g]]
        per_task = {}
        for task in self.task_names:
            grads = tape.gradient(forward.weighted[task], flat_vars,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            per_task[task] = self._regroup(grads)
        regularization_grads = None
        if self.losses:
            regularization_grads = self._regroup(tape.gradient(
                forward.regularization, flat_vars,
                unconnected_gradients=tf.UnconnectedGradients.ZERO))
        return per_task, regularization_grads

    def _combine(self, inputs, summed, variables, regularization_grads):
        """Step 5: the strategy's gradients replace the summed ones of its groups.

        Returns ``(final gradient per trainable variable, {group: combined}, stats)``.
        """
        combined, stats = self.strategy.combine(inputs)
        if regularization_grads is not None:
            combined = {g: [c + r for c, r in zip(combined[g], regularization_grads[g])]
                        for g in combined}
        replaced = {}
        for group in self._group_names:
            if group not in combined or len(combined[group]) != len(self._groups[group]):
                raise ValueError(f"{type(self.strategy).__name__}.combine must return one "
                                 f"gradient per variable of group {group!r}")
            replaced.update(zip((v.ref() for v in self._groups[group]), combined[group]))
        final = [replaced.get(v.ref(), g) for g, v in zip(summed, variables)]
        return final, combined, stats

    def _apply_if_finite(self, inputs, combined, final, variables, forward, labels,
                         sample_weight):
        """Step 6: apply, update the strategy and the metrics, or skip a non-finite step."""
        total = _replica_sum(forward.total)  # the global batch's loss (itself outside a strategy)
        finite = _all_finite(total, final)
        own = set()
        if self.strategy.applies_own_updates:
            own = {v.ref() for vs in self._groups.values() for v in vs}
        distributed = tf.distribute.has_strategy()
        # Under a strategy the gradients are already all-reduced: no second aggregation.
        apply_kwargs = {"skip_gradients_aggregation": True} if distributed else {}

        def apply(inputs, combined, final, logits, task_losses, total, labels, sample_weight):
            self.optimizer.apply_gradients(
                [(g, v) for g, v in zip(final, variables) if v.ref() not in own], **apply_kwargs)
            inputs = inputs._replace(variables=self._groups, step=self.optimizer.iterations)
            if own:
                self.strategy.apply_updates(inputs, combined)
            self.strategy.after_apply(inputs, combined)
            # Metrics only see applied steps, so one bad batch cannot turn the epoch's loss NaN.
            self._update_metrics(labels, logits, sample_weight, total, task_losses)
            return tf.constant(0, tf.int64)

        # Per-replica values travel as arguments (variables stay closed over: the replicas'
        # copies must not be unwrapped); `inputs` is rebuilt with its variables in `apply`.
        args = (inputs._replace(variables=None, step=None), combined, final, forward.logits,
                forward.global_losses, total, labels, sample_weight)
        if not distributed:
            self.skipped_steps.assign_add(
                tf.cond(finite, lambda: apply(*args), lambda: tf.constant(1, tf.int64)))
            return

        def cross_replica(distribution, finite, *per_replica):
            # `finite` is the same on every replica (decided on all-reduced values).
            def apply_on_replicas():
                distribution.extended.call_for_each_replica(apply, args=per_replica)
                return tf.constant(0, tf.int64)

            self.skipped_steps.assign_add(tf.cond(
                distribution.experimental_local_results(finite)[0], apply_on_replicas,
                lambda: tf.constant(1, tf.int64)))

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite,) + args)

    def _by_group(self, grads, variables):
        """``{group: [gradient of each variable of the group]}`` out of a per-variable list."""
        position = {v.ref(): i for i, v in enumerate(variables)}
        return {g: [grads[position[v.ref()]] for v in vs] for g, vs in self._groups.items()}

    def _regroup(self, flat):
        out, start = {}, 0
        for group in self._group_names:
            n = len(self._groups[group])
            out[group] = list(flat[start:start + n])
            start += n
        return out

    def test_step(self, data):
        features, labels, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        logits = self.task_logits(features, training=False)
        task_losses = _replica_sum(self._task_losses(labels, logits, sample_weight,
                                                     training=False))
        total = tf.add_n([self.task_weights[t] * task_losses[t] for t in self.task_names])
        if self.losses:
            total += tf.add_n(self.losses)
        self.loss_tracker.update_state(total)
        for task in self.task_names:
            self.task_loss_trackers[task].update_state(task_losses[task])
        return {m.name: m.result() for m in self.metrics}

    def read_stats(self):
        """The strategy statistics of the last training step, ``{name: float}``."""
        names = self.strategy.stat_names(self.task_names)
        return {name: float(self.strategy_stats[_stat_key(name)].numpy()) for name in names}

    # -- serialization -----------------------------------------------------------------------
    def get_config(self):
        if self.model_config is None:
            raise NotImplementedError("MultiTaskModel.get_config needs the model built by "
                                      "build_model or from_model_config (it records a "
                                      "ModelConfig)")
        return {"model_config": self.model_config.to_dict()}

    @classmethod
    def from_model_config(cls, config: ModelConfig):
        """A new (uncompiled) model with the backbone, strategy and tasks of ``config``.

        Seeds TensorFlow first when ``config.seed`` is set, so the same config gives the same
        initial weights. `drgrad.model.builder.build_model` validates its arguments into a
        `ModelConfig` and compiles what this returns.
        """
        if config.seed is not None:
            tf.keras.utils.set_random_seed(config.seed)
        try:
            backbone = get_backbone(config.backbone, config.feature_config, config.tasks,
                                    **config.backbone_args)
        except TypeError as error:
            raise ValueError(f"bad backbone_args for {config.backbone!r}: {error}") from None
        try:
            strategy = get_strategy(config.strategy, **config.strategy_args)
        except TypeError as error:
            raise ValueError(f"bad strategy_args for {config.strategy!r}: {error}") from None
        return cls(backbone, strategy, tasks=config.tasks, task_weights=config.task_weights,
                   positive_weights=config.positive_weights, model_config=config)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Keras deserialization (`.keras` files): rebuilds from the recorded `ModelConfig`."""
        return cls.from_model_config(ModelConfig.from_dict(config["model_config"]))
