"""Customized Gate Control (CGC), the extraction layer of PLE.

Tang et al., "Progressive Layered Extraction (PLE)", RecSys 2020: each task has its own
experts plus shared experts; task k's gate mixes [its experts, shared experts]. In a stacked
(multi-level) PLE the non-final levels also have a shared gate over all experts, whose output
feeds the next level's shared experts.

``activation`` (experts and gate hidden layers) and ``gate_units`` (hidden layers of every
gate; empty: linear softmax gates) cover the released DRGrad's CGC (mish experts, gates
128 mish -> k), see model/backbones/ple.py ``cgc2``.
"""
import tensorflow as tf

from drgrad.model.layers.experts import Experts, SoftmaxGate


@tf.keras.utils.register_keras_serializable(package="drgrad")
class CGC(tf.keras.layers.Layer):
    """One extraction level: ``call(inputs)`` with ``inputs`` a list of ``num_tasks`` tensors
    (or ``num_tasks + 1`` with the shared input last, for stacked levels) -> list of
    ``num_tasks`` outputs ``[B, units]`` (+ the shared output if ``output_shared``)."""

    def __init__(self, num_tasks, specific_experts=2, shared_experts=4, units=64,
                 output_shared=False, activation="relu", gate_units=(), **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_tasks", num_tasks), ("specific_experts", specific_experts),
                            ("shared_experts", shared_experts), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.num_tasks = num_tasks
        self.specific_experts = specific_experts
        self.shared_experts = shared_experts
        self.units = units
        self.output_shared = bool(output_shared)
        self.activation = activation
        self.gate_units = tuple(gate_units)
        self.task_experts = [Experts(specific_experts, units, activation,
                                     name=f"experts_task{k}") for k in range(num_tasks)]
        self.common_experts = Experts(shared_experts, units, activation, name="experts_shared")
        self.task_gates = [SoftmaxGate(specific_experts + shared_experts, self.gate_units,
                                       activation, name=f"gate_task{k}")
                           for k in range(num_tasks)]
        self.shared_gate = SoftmaxGate(num_tasks * specific_experts + shared_experts,
                                       self.gate_units, activation,
                                       name="gate_shared") if self.output_shared else None

    def call(self, inputs):
        if len(inputs) not in (self.num_tasks, self.num_tasks + 1):
            raise ValueError(f"CGC takes {self.num_tasks} or {self.num_tasks + 1} inputs, "
                             f"got {len(inputs)}")
        task_inputs = list(inputs[:self.num_tasks])
        shared_input = inputs[self.num_tasks] if len(inputs) > self.num_tasks else inputs[0]
        common = self.common_experts(shared_input)
        specific = [experts(x) for experts, x in zip(self.task_experts, task_inputs)]
        outputs = []
        for k in range(self.num_tasks):
            pool = tf.concat([specific[k], common], axis=1)
            gate = self.task_gates[k](task_inputs[k])
            outputs.append(tf.einsum("be,beu->bu", gate, pool))
        if self.output_shared:
            pool = tf.concat(specific + [common], axis=1)
            gate = self.shared_gate(shared_input)
            outputs.append(tf.einsum("be,beu->bu", gate, pool))
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({"num_tasks": self.num_tasks, "specific_experts": self.specific_experts,
                       "shared_experts": self.shared_experts, "units": self.units,
                       "output_shared": self.output_shared, "activation": self.activation,
                       "gate_units": list(self.gate_units)})
        return config
