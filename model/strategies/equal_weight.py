"""The plain multi-task baseline: minimize ``sum_t alpha_t * L_t`` (alpha = task weights)."""
from drgrad.model.strategies import register
from drgrad.model.strategies.base import GradientStrategy


@register("equal_weight")
class EqualWeight(GradientStrategy):
    """Every variable gets the gradient of the weighted summed loss; no state, no extra cost."""
