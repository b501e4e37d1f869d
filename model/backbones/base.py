"""Backbone base class: features -> per-task logits, plus named variable groups.

A backbone is a Keras layer: ``call(features, training) -> {output: logit [B]}``. Outputs are
the task names, except for split backbones (`split_primary = True`, the Split-MMoE of DRGrad
Fig. 1(b)) which return the two halves of the primary task, ``"<t1>/dedicated"`` (T1′ on v1)
and ``"<t1>/shared"`` (T1″ on vs), instead of ``"<t1>"``; `MultiTaskModel` mixes them with
the updater's μ (Eq. 8).

Variable groups (`variable_groups()`, available once built) let strategies pick variables by
name rather than by guessing (tensor2robot's PCGrad allow-list, done with declared names):

=================  ===========================================================================
``embeddings``     embedding tables (sparse gradients, `tf.IndexedSlices`)
``experts``        expert networks (MMoE / PLE)
``gates``          softmax gates
``ppnet``          personalized gate (PPNet), when configured
``bottom``         shared-bottom MLP
``shared``         every dense variable shared by several tasks: experts + gates + ppnet +
                   bottom (for PLE this includes task-specific experts and gates)
``towers``         every tower
``tower/<out>``    the tower of one output (task name, or ``<t1>/dedicated``, ``<t1>/shared``)
``t1_dedicated``   T1′ (split backbones only)
``t1_shared``      T1″ (split backbones only)
``aux_towers``     towers of the auxiliary tasks (tasks[1:])
=================  ===========================================================================

Every trainable variable belongs to ``embeddings``, ``shared`` or ``towers``. Each output also
has ``first_kernel/<out>``: the kernel of its tower's first dense layer alone (the one
variable per tower that the authors' released DRGrad routes,
model/strategies/drgrad_released.py).
"""
import tensorflow as tf

from drgrad.model.config import check_feature_config, check_tasks

BASE_GROUPS = ("embeddings", "experts", "gates", "ppnet", "bottom")


def first_kernel_group(output):
    """Name of the group holding only the first dense kernel of ``output``'s tower."""
    return f"first_kernel/{output}"


def dedicated_output(task):
    return f"{task}/dedicated"


def shared_output(task):
    return f"{task}/shared"


class Backbone(tf.keras.layers.Layer):
    """Base class. Subclasses build sub-layers in ``__init__`` and implement `call` and
    `_group_layers` (``{base group: [layers]}``) and `_tower_layers` (``{output: layer}``)."""

    #: True for backbones whose primary task is split into T1′ / T1″ (Split-MMoE).
    split_primary = False
    #: Names of the intermediate representations ``call(..., return_representations=True)``
    #: also returns (``(outputs, {name: [B, d]})``), for strategies that route gradients at
    #: that level (DRGrad ``route_level="upstream"``). Empty: the backbone exposes none.
    representation_names = ()
    #: Base groups holding every variable upstream of those representations: all of the loss
    #: gradient reaching these variables flows through the representations.
    representation_groups = ()

    def __init__(self, feature_config, tasks, **kwargs):
        super().__init__(**kwargs)
        feature_config = check_feature_config(feature_config)
        self.feature_config = feature_config
        self.tasks = check_tasks(tasks)
        if self.split_primary and len(self.tasks) < 2:
            raise ValueError(f"{type(self).__name__} needs a primary and at least one auxiliary "
                             f"task, got {list(self.tasks)}")

    @property
    def primary(self):
        return self.tasks[0]

    @property
    def output_names(self):
        """Keys of `call`'s result."""
        if self.split_primary:
            return (dedicated_output(self.primary), shared_output(self.primary)) + self.tasks[1:]
        return self.tasks

    def _group_layers(self):
        raise NotImplementedError

    def _tower_layers(self):
        raise NotImplementedError

    def variable_groups(self):
        """``{group: [tf.Variable]}`` of trainable variables (see the module docstring)."""
        if not self.built:
            raise ValueError(f"{self.name}: variable groups exist only once the backbone is built "
                             "(call it on a batch first)")

        def variables_of(layers):
            out = []
            for layer in layers:
                for variable in layer.trainable_variables:
                    if not any(variable is seen for seen in out):
                        out.append(variable)
            return out

        layers = self._group_layers()
        unknown = set(layers) - set(BASE_GROUPS)
        if unknown:
            raise ValueError(f"{self.name}: unknown base groups {sorted(unknown)}")
        groups = {name: variables_of(layers.get(name, ())) for name in BASE_GROUPS}
        groups["shared"] = groups["experts"] + groups["gates"] + groups["ppnet"] + groups["bottom"]
        towers = self._tower_layers()
        groups["towers"] = []
        for output in self.output_names:
            groups[f"tower/{output}"] = variables_of([towers[output]])
            groups[first_kernel_group(output)] = [towers[output].first_kernel]
            groups["towers"] += groups[f"tower/{output}"]
        if self.split_primary:
            groups["t1_dedicated"] = groups[f"tower/{dedicated_output(self.primary)}"]
            groups["t1_shared"] = groups[f"tower/{shared_output(self.primary)}"]
        groups["aux_towers"] = [v for task in self.tasks[1:] for v in groups[f"tower/{task}"]]
        self._check_cover(groups)
        return groups

    def _check_cover(self, groups):
        covered = {id(v) for name in ("embeddings", "shared", "towers") for v in groups[name]}
        missing = [v.name for v in self.trainable_variables if id(v) not in covered]
        if missing:
            raise ValueError(f"{self.name}: variables in no group: {missing}")

    def get_config(self):
        config = super().get_config()
        config.update({"feature_config": self.feature_config.to_dict(),
                       "tasks": list(self.tasks)})
        return config
