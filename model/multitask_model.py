"""`MultiTaskModel`: a backbone, a gradient strategy and one ranking task per label.

Built on tensorflow-recommenders (`tfrs.Model`, one `tfrs.tasks.Ranking` per task for the BCE
loss on logits and the AUC metric). `call` returns only ``{task: probability [B]}`` (float32),
so an exported signature has exactly one output per task; for split backbones the primary
task is ``sigmoid(μ′·z′ + μ″·z″)`` with μ read from the non-trainable `TowerMixer` variable.

`train_step` (DRGrad Alg. 1, generalized to any `GradientStrategy`):

1. ONE forward pass under ONE `tf.GradientTape` (persistent only if the strategy needs
   per-task gradients); task losses L_t, weights w_t (``strategy.loss_weights``, default α),
   total = Σ w_t·L_t + regularization losses.
2. ONE ``tape.gradient(total, trainable_variables)``: embedding gradients stay
   `tf.IndexedSlices`; if the strategy asks, one more ``tape.gradient(w_t·L_t, group vars)`` per
   task restricted to the strategy's groups.
3. ``strategy.combine`` replaces the gradients of its groups; all other variables keep the
   summed-loss gradient.
   With representation routing (``strategy.routes_representations``, DRGrad
   ``route_level="upstream"``), the backbone also returns its representations (v1, vs) inside
   the tape; one ``tape.gradient(w_t·L_t, representations)`` per task (through the towers
   only) goes to ``strategy.route_representations``, and the variables upstream of them get
   ``tape.gradient(representations, upstream, output_gradients=routed)`` instead.
4. NaN guard: if the loss or any gradient is non-finite the step is skipped (no apply, no
   strategy update, no metric update; counted in ``skipped_steps``): a NaN never reaches
   the weights.
5. ONE ``optimizer.apply_gradients``, then ``strategy.after_apply`` (DRGrad's updater).

All variables (model, strategy state, optimizer slots, logged statistics) are created eagerly
at construction / `compile`, never inside a traced step, so the steps run under `tf.function`
(the Keras default) and retracing is safe.
"""
import math

import tensorflow as tf
import tensorflow_recommenders as tfrs

from model.backbones.base import Backbone, dedicated_output, shared_output
from model.config import check_tasks
from model.layers.mixing import TowerMixer
from model.strategies.base import GradientStrategy, StrategyInputs


def _stat_key(name):
    return name.replace("/", "__")


class MultiTaskModel(tfrs.Model):
    """Multi-task ranking model.

    Args:
      backbone: a built-or-unbuilt `model.backbones.base.Backbone`.
      strategy: a `model.strategies.base.GradientStrategy`.
      tasks: task names, primary first; must equal ``backbone.tasks`` (default: those).
      task_weights: ``{task: α}`` (default 1.0 each), finite and ≥ 0.
      model_config: the `ModelConfig` this model was built from (for `get_config`).
    """

    def __init__(self, backbone, strategy, tasks=None, task_weights=None, model_config=None,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, Backbone):
            raise ValueError(f"backbone must be a Backbone, got {type(backbone).__name__}")
        if not isinstance(strategy, GradientStrategy):
            raise ValueError(f"strategy must be a GradientStrategy, got {type(strategy).__name__}")
        tasks = check_tasks(tasks if tasks is not None else backbone.tasks)
        if tuple(tasks) != tuple(backbone.tasks):
            raise ValueError(f"tasks {list(tasks)} differ from the backbone's "
                             f"{list(backbone.tasks)}")
        weights = {t: 1.0 for t in tasks}
        for task, weight in dict(task_weights or {}).items():
            if task not in weights:
                raise ValueError(f"task_weights names unknown task {task!r}; tasks: {list(tasks)}")
            weight = float(weight)
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"task weight of {task!r} must be finite and >= 0, got {weight}")
            weights[task] = weight
        self.task_names = tuple(tasks)
        self.task_weights = dict(weights)
        self.model_config = model_config
        self.backbone = backbone
        self.strategy = strategy
        self.mixer = TowerMixer(name="mixer") if backbone.split_primary else None
        self.ranking_tasks = {
            t: tfrs.tasks.Ranking(
                loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                metrics=[tf.keras.metrics.AUC(name=f"{t}_auc", from_logits=True,
                                              num_thresholds=1000)],
                name=f"ranking_{t}")
            for t in tasks}
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.task_loss_trackers = {t: tf.keras.metrics.Mean(name=f"{t}_loss") for t in tasks}
        self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps")
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
                if id(variable) in seen:
                    raise ValueError(f"strategy groups overlap: {variable.name} is in "
                                     f"{seen[id(variable)]!r} and {group!r}")
                seen[id(variable)] = group
        self._group_names = required
        self._groups = {g: list(groups[g]) for g in required}
        self._upstream = []
        if self.strategy.routes_representations:
            if not self.backbone.representation_names:
                raise ValueError(f"strategy {type(self.strategy).__name__} routes representation "
                                 f"gradients but backbone {type(self.backbone).__name__} exposes "
                                 "no representations")
            self._upstream = [v for g in self.backbone.representation_groups for v in groups[g]]
            overlap = [v.name for v in self._upstream if id(v) in seen]
            if overlap:
                raise ValueError(f"strategy groups overlap the representation-routed variables: "
                                 f"{overlap}")
        self.strategy.build(self)
        self.strategy_stats = {
            _stat_key(name): tf.Variable(0.0, trainable=False, name=f"stat_{_stat_key(name)}")
            for name in self.strategy.stat_names(self.task_names)}

    def compile(self, optimizer="adam", **kwargs):  # pylint: disable=arguments-differ
        """Compiles and creates the optimizer's slots now (never inside a traced step)."""
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
        missing = [t for t in self.task_names if t not in labels]
        if missing:
            raise ValueError(f"labels lack tasks {missing}")
        losses = {}
        for task in self.task_names:
            y = tf.reshape(tf.cast(labels[task], tf.float32), [-1, 1])
            z = tf.reshape(logits[task], [-1, 1])
            losses[task] = self.ranking_tasks[task](y, z, sample_weight=sample_weight,
                                                    training=training,
                                                    compute_metrics=compute_metrics)
        return losses

    def _update_metrics(self, labels, logits, sample_weight, total, task_losses):
        self.loss_tracker.update_state(total)
        for task in self.task_names:
            self.task_loss_trackers[task].update_state(task_losses[task])
            y = tf.reshape(tf.cast(labels[task], tf.float32), [-1, 1])
            z = tf.reshape(logits[task], [-1, 1])
            for metric in self.ranking_tasks[task]._ranking_metrics:  # pylint: disable=protected-access
                metric.update_state(y, z, sample_weight=sample_weight)

    def compute_loss(self, inputs, training=False):
        """tfrs API: total weighted loss of ``(features, labels)``."""
        features, labels = inputs[0], inputs[1]
        losses = self._task_losses(labels, self.task_logits(features, training=training), None,
                                   training)
        return tf.add_n([self.task_weights[t] * losses[t] for t in self.task_names])

    # -- training ----------------------------------------------------------------------------
    def train_step(self, data):
        features, labels, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        strategy = self.strategy
        alpha = {t: tf.constant(self.task_weights[t], tf.float32) for t in self.task_names}
        routes = bool(self._upstream)
        with tf.GradientTape(persistent=strategy.needs_task_gradients or routes) as tape:
            if routes:
                out, representations = self.backbone(features, training=True,
                                                     return_representations=True)
                logits = self._mix(out)
            else:
                logits = self.task_logits(features, training=True)
            task_losses = self._task_losses(labels, logits, sample_weight, training=True,
                                            compute_metrics=False)
            weights = strategy.loss_weights(task_losses, alpha)
            weighted = {t: weights[t] * task_losses[t] for t in self.task_names}
            loss = tf.add_n(list(weighted.values()))
            regularization = tf.add_n(self.losses) if self.losses else tf.constant(0.0)
            total = loss + regularization

        variables = self.trainable_variables
        index = {id(v): i for i, v in enumerate(variables)}
        stats = {}
        if routes:
            # Variables upstream of the representations get the routed representation gradient
            # (+ regularization) instead of the summed one; no backward pass is wasted on them.
            upstream = {id(v) for v in self._upstream}
            plain_vars = [v for v in variables if id(v) not in upstream]
            plain = dict(zip(map(id, plain_vars), tape.gradient(total, plain_vars)))
            names = self.backbone.representation_names
            rep_grads = {}
            for task in self.task_names:
                grads = tape.gradient(weighted[task], [representations[n] for n in names],
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
                rep_grads[task] = dict(zip(names, grads))
            routed, stats = strategy.route_representations(rep_grads)
            targets = [representations[n] for n in names]
            output_gradients = [tf.cast(routed[n], targets[i].dtype) for i, n in enumerate(names)]
            if self.losses:
                targets.append(regularization)
                output_gradients.append(None)
            up = dict(zip(map(id, self._upstream),
                          tape.gradient(targets, self._upstream,
                                        output_gradients=output_gradients)))
            summed = [up[id(v)] if id(v) in upstream else plain[id(v)] for v in variables]
            stats = dict(stats)
        else:
            summed = tape.gradient(total, variables)
        summed = [tf.zeros_like(v) if g is None else g for g, v in zip(summed, variables)]
        group_summed = {g: [summed[index[id(v)]] for v in vs] for g, vs in self._groups.items()}

        per_task = None
        if strategy.needs_task_gradients and self._groups:
            flat_vars = [v for g in self._group_names for v in self._groups[g]]
            per_task = {}
            for task in self.task_names:
                grads = tape.gradient(weighted[task], flat_vars,
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
                per_task[task] = self._regroup(grads)
            if self.losses:
                regularization_grads = self._regroup(tape.gradient(
                    regularization, flat_vars, unconnected_gradients=tf.UnconnectedGradients.ZERO))
        del tape

        inputs = StrategyInputs(variables=self._groups, summed=group_summed, per_task=per_task,
                                task_losses=task_losses, loss_weights=weights,
                                step=self.optimizer.iterations)
        combined, combine_stats = strategy.combine(inputs)
        stats.update(combine_stats)
        if per_task is not None and self.losses:
            combined = {g: [c + r for c, r in zip(combined[g], regularization_grads[g])]
                        for g in combined}
        final = list(summed)
        for group in self._group_names:
            if group not in combined or len(combined[group]) != len(self._groups[group]):
                raise ValueError(f"{type(strategy).__name__}.combine must return one gradient per "
                                 f"variable of group {group!r}")
            for variable, grad in zip(self._groups[group], combined[group]):
                final[index[id(variable)]] = grad

        finite = tf.math.is_finite(total)
        for grad in final:
            values = grad.values if isinstance(grad, tf.IndexedSlices) else grad
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(values)))

        own = set()
        if strategy.applies_own_updates:
            own = {id(v) for vs in self._groups.values() for v in vs}

        def apply():
            pairs = [(g, v) for g, v in zip(final, variables) if id(v) not in own]
            self.optimizer.apply_gradients(pairs)
            if own:
                strategy.apply_updates(inputs, combined)
            strategy.after_apply(inputs, combined)
            # Metrics only see applied steps, so one bad batch cannot turn the epoch's loss NaN.
            self._update_metrics(labels, logits, sample_weight, total, task_losses)
            return tf.constant(0, tf.int64)

        skipped = tf.cond(finite, apply, lambda: tf.constant(1, tf.int64))
        self.skipped_steps.assign_add(skipped)
        for name, value in stats.items():
            self.strategy_stats[_stat_key(name)].assign(tf.cast(value, tf.float32))
        logs = {m.name: m.result() for m in self.metrics}
        logs["skipped_steps"] = self.skipped_steps.value()
        return logs

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
        task_losses = self._task_losses(labels, logits, sample_weight, training=False)
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
                                      "model.build_model (it records a ModelConfig)")
        return {"model_config": self.model_config.to_dict()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from model.builder import build_model  # pylint: disable=g-import-not-at-top
        from model.config import ModelConfig  # pylint: disable=g-import-not-at-top
        return build_model(**ModelConfig.from_dict(config["model_config"]).build_kwargs(),
                           compile_model=False)
