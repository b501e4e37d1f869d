"""DRGrad as its authors released it: tower-to-tower routing of the first tower kernel only.

Reference: Liu et al., "Direct Routing Gradient (DRGrad)", AAAI 2025; the authors' public
TF1 repository `logwhistle/drgrad_for_aaai25` (one commit, 2024-11-06), read for this
module. The released code does not implement the paper's router / updater / Split-MMoE
(model/strategies/drgrad.py does); its training op does the following, described here in
our words (docs/RESULTS.md, "DRGrad as released").

For each task tower, take the gradient ``G_t`` of its FIRST dense kernel (the summed loss
reaches that kernel through its own task only, so it is ``grad(w_t L_t)``). For a pair of
towers (self ``s``, other ``o``), with ``unit(G) = G / (||G|| + 1e-8)`` on the flattened
kernel:

* ``c = <unit(G_s), unit(G_o)>`` (cosine);
* ``w = clip(sum(unit(G_s)) / sum(unit(G_o)), 0.1, 5.0)``: a ratio of the ELEMENT SUMS of the
  unit vectors (not of norms); a zero denominator makes the ratio 0, hence ``w = 0.1``;
* ``G_s <- G_s + w * (1 - 1{c <= 0} * c) * G_o``: the other tower's gradient is always added,
  amplified by ``1 + |c|`` when the two conflict.

Both towers are updated from the UNROUTED gradients. The released code has two tasks; with
more, each tower here adds the pairwise term of every other tower (each computed from the
unrouted gradients), which reduces to the released rule for two tasks. There is no updater
(no mu, no sigma), no PPNet, no split primary task and no gamma.

Variable groups: ``first_kernel/<task>`` of each task (model/backbones/base.py). Every other
variable, the rest of each tower included, keeps the plain summed-loss gradient. Any
backbone with one tower per task works (MMoE, PLE, cgc2, shared bottom, ...); split
backbones (one task with two towers) are refused.
"""
import itertools

import tensorflow as tf

from drgrad.model.backbones.base import first_kernel_group
from drgrad.model.strategies import register
from drgrad.model.strategies.base import GradientStrategy

NORM_EPSILON = 1e-8
WEIGHT_RANGE = (0.1, 5.0)


def unit_vectors(grads):
    """``{task: flattened float32 gradient / (its norm + 1e-8)}``."""
    return {t: tf.reshape(g, [-1]) / (tf.norm(g) + NORM_EPSILON) for t, g in grads.items()}


def pair_terms(unit_self, unit_other):
    """``(c, w)`` of one ordered pair of flattened unit gradients (module docstring)."""
    cosine = tf.reduce_sum(unit_self * unit_other)
    ratio = tf.math.divide_no_nan(tf.reduce_sum(unit_self), tf.reduce_sum(unit_other))
    return cosine, tf.clip_by_value(ratio, *WEIGHT_RANGE)


def route_released(grads):
    """The routed first-kernel gradients of the released DRGrad.

    Args:
        grads: ``{task: gradient}`` (two or more tasks; any shapes), the unrouted gradients of
            each tower's first dense kernel.

    Returns:
        ``{task: gradient}`` shaped like the inputs: ``G_t + sum_{o != t} w_to (1 - 1{c_to <= 0}
        c_to) G_o`` with every term read from the unrouted ``grads``.
    """
    if len(grads) < 2:
        raise ValueError(f"route_released needs two or more tasks, got {list(grads)}")
    grads = {t: tf.convert_to_tensor(g, tf.float32) for t, g in grads.items()}
    units = unit_vectors(grads)
    routed = {}
    for task, grad in grads.items():
        total = grad
        for other in grads:
            if other == task:
                continue
            cosine, weight = pair_terms(units[task], units[other])
            conflict = tf.cast(cosine <= 0.0, tf.float32)
            total = total + weight * (1.0 - conflict * cosine) * grads[other]
        routed[task] = total
    return routed


def cosine_stat(first, second):
    return f"cosine/{first}/{second}"


@register("drgrad_released")
class DRGradReleased(GradientStrategy):
    """The authors' released DRGrad (module docstring); no hyperparameters.

    Logs the cosine of every task pair's first-kernel gradients (``cosine/<a>/<b>``).
    """

    def required_groups(self, model):
        backbone = model.backbone
        if getattr(backbone, "split_primary", False):
            raise ValueError(f"strategy drgrad_released needs one tower per task, got the split "
                             f"backbone {type(backbone).__name__}")
        if len(backbone.tasks) < 2:
            raise ValueError(f"strategy drgrad_released needs two or more tasks, got "
                             f"{list(backbone.tasks)}")
        return tuple(first_kernel_group(t) for t in backbone.tasks)

    def stat_names(self, tasks):
        return tuple(cosine_stat(a, b) for a, b in itertools.combinations(tasks, 2))

    def combine(self, inputs):
        tasks = [group.split("/", 1)[1] for group in inputs.variables]
        grads = {t: inputs.summed[first_kernel_group(t)][0] for t in tasks}
        routed = route_released(grads)
        units = unit_vectors(grads)
        stats = {cosine_stat(a, b): pair_terms(units[a], units[b])[0]
                 for a, b in itertools.combinations(tasks, 2)}
        return {first_kernel_group(t): [routed[t]] for t in tasks}, stats
