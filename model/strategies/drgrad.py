"""DRGrad: the router and updater of Liu, Miao and Xia, "Direct Routing Gradient (DRGrad): A
Personalized Information Surgery for Multi-Task Learning (MTL) Recommendations", AAAI 2025
(arXiv 2510.09643), on a Split-MMoE backbone (model/backbones/split_mmoe.py).

Router (Eq. 1–2), on the flattened gradients of the towers T1′ (g1′), T1″ (g1″), T2 (g2)::

    ξ1 = cos(g1′, g2),   λ1 = clip(‖g1′‖/‖g2‖, 0, 1)^γ
    ξ2 = cos(g1′, g1″),  λ2 = clip(‖g1′‖/‖g1″‖, 0, 1)^γ
    g′R1 = (1 − 1{ξ1<0}·ξ1)·λ1·g1″ + 1{ξ2≥0}·λ2·g2          (variant "literal", as printed)
    g″R1 = −1{ξ1·ξ2<0}·ξ1·ξ2·g1″

Variant "paired" gates each term by its own gradient's relation to g1′ (the printed Eq. 1–2
pair the g1″ term with g2's cosine and vice versa, which reads like a transposition)::

    g′R1 = (1 − 1{ξ2<0}·ξ2)·λ2·g1″ + 1{ξ1≥0}·λ1·g2,   g″R1 as above.

n > 1 auxiliary tasks (the paper only writes n = 2 tasks), with ξ1k = cos(g1′, gk) and
λ1k = clip(‖g1′‖/‖gk‖, 0, 1)^γ for each auxiliary gradient gk:

* literal: g′R1 = mean_k[(1 − 1{ξ1k<0}·ξ1k)·λ1k]·g1″ + Σ_k 1{ξ2≥0}·λ2·gk
* paired:  g′R1 = (1 − 1{ξ2<0}·ξ2)·λ2·g1″ + Σ_k 1{ξ1k≥0}·λ1k·gk
* both:    g″R1 = −mean_k[1{ξ1k·ξ2<0}·ξ1k·ξ2]·g1″

i.e. each auxiliary gradient enters with its own gate, and the g1″ coefficients are averaged
over the auxiliary tasks so they stay within the paper's bounds (the g1″ coefficient ≤ 2,
Eq. 6) whatever n is. With n = 1 both reduce exactly to Eq. 2. Cosines and ratios divide by
max(·, eps), so zero gradients give ξ = 0 and λ = 0 (or 1 when only the denominator is 0):
never NaN. Note that ξ = 0 counts as "≥ 0".

Updates (Eq. 4–5, Alg. 1 lines 5–6): T1′ gets g1′ + g′R1, T1″ gets g1″ + g″R1, each auxiliary
tower its own gradient, every other variable the summed-loss gradient, all through the
model's single optimizer. The tower gradients come from the ONE summed-loss backward pass: a
tower only influences its own task's loss, so the summed gradient restricted to it is that
task's (α-weighted) gradient. DRGrad therefore costs no extra backward pass.

Updater (Eq. 7, Alg. 1 line 7), after each applied step, with n′ = ‖g1′ + g′R1‖ and
n″ = ‖g1″ + g″R1‖:

* ``updater="literal"``: σ′ += n′, σ″ += n″, μ = softmax(σ′, σ″) (σ = 0 at start: μ = ½, ½).
  As printed this saturates: the sums grow without bound, and μ′ multiplies T1′'s own
  gradient (T1 = μ′T1′ + μ″T1″) so the larger side grows faster. Measured on census
  (research/calibration.md): μ′ > 0.99 within ~11 steps, after which T1″ gets ~zero gradient.
* ``updater="ema"`` (bounded alternative): σ ← β·σ + (1 − β)·n, μ = softmax(σ/τ). σ is an
  average of recent norms, so μ′ − μ″ reflects the current norm gap and cannot run away with
  training length.
* ``updater="none"``: μ stays ½, ½ (the "Split-MMoE + router" ablation).

μ lives in the model's `TowerMixer` (read by `call`, so it is saved and served); σ lives here.
"""
import weakref

import tensorflow as tf

from model.backbones.base import dedicated_output, shared_output
from model.strategies import register
from model.strategies.base import GradientStrategy, flatten, unflatten

VARIANTS = ("literal", "paired")
UPDATERS = ("literal", "ema", "none")


def _indicator(condition):
    return tf.cast(condition, tf.float32)


def route(g1_ded, g1_sh, g_aux, gamma=1.0, variant="literal", eps=1e-12):
    """The DRGrad router (Eq. 1–2) on flat gradients; see the module docstring.

    Args:
      g1_ded: ``[d]`` gradient of the dedicated primary tower T1′ (g1′).
      g1_sh: ``[d]`` gradient of the shared primary tower T1″ (g1″).
      g_aux: ``[n_aux, d]`` (or ``[d]`` for one task) gradients of the auxiliary towers.
      gamma: the exponent γ > 0 of the norm-ratio weights λ.
      variant: "literal" (Eq. 1–2 as printed) or "paired".
      eps: floor of every denominator.

    Returns:
      ``(g_r_ded, g_r_sh, stats)``: the routed additions g′R1 and g″R1 (``[d]``) and
      ``{"xi1": [n_aux], "lambda1": [n_aux], "xi2": scalar, "lambda2": scalar}``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not gamma > 0:
        raise ValueError(f"gamma must be a number > 0, got {gamma!r}")
    g1_ded = tf.convert_to_tensor(g1_ded, tf.float32)
    g1_sh = tf.convert_to_tensor(g1_sh, tf.float32)
    g_aux = tf.convert_to_tensor(g_aux, tf.float32)
    if g_aux.shape.rank == 1:
        g_aux = g_aux[tf.newaxis]
    if g1_ded.shape.rank != 1 or g1_sh.shape.rank != 1 or g_aux.shape.rank != 2:
        raise ValueError("route takes 1-D g1_ded, g1_sh and [n_aux, d] g_aux")
    if not (g1_ded.shape[0] == g1_sh.shape[0] == g_aux.shape[1]) and None not in (
            g1_ded.shape[0], g1_sh.shape[0], g_aux.shape[1]):
        raise ValueError(f"gradient sizes differ: g1′ {g1_ded.shape}, g1″ {g1_sh.shape}, "
                         f"g_aux {g_aux.shape}; the towers must have identical shapes")
    eps = tf.constant(eps, tf.float32)
    norm_ded = tf.norm(g1_ded)
    norm_sh = tf.norm(g1_sh)
    norm_aux = tf.norm(g_aux, axis=1)                                     # [n]
    xi1 = tf.linalg.matvec(g_aux, g1_ded) / tf.maximum(norm_ded * norm_aux, eps)
    lambda1 = tf.pow(tf.clip_by_value(norm_ded / tf.maximum(norm_aux, eps), 0.0, 1.0), gamma)
    xi2 = tf.reduce_sum(g1_ded * g1_sh) / tf.maximum(norm_ded * norm_sh, eps)
    lambda2 = tf.pow(tf.clip_by_value(norm_ded / tf.maximum(norm_sh, eps), 0.0, 1.0), gamma)
    if variant == "literal":
        coef_sh = tf.reduce_mean((1.0 - _indicator(xi1 < 0) * xi1) * lambda1)
        coef_aux = _indicator(xi2 >= 0) * lambda2 * tf.ones_like(xi1)
    else:
        coef_sh = (1.0 - _indicator(xi2 < 0) * xi2) * lambda2
        coef_aux = _indicator(xi1 >= 0) * lambda1
    g_r_ded = coef_sh * g1_sh + tf.linalg.matvec(g_aux, coef_aux, transpose_a=True)
    g_r_sh = -tf.reduce_mean(_indicator(xi1 * xi2 < 0) * xi1 * xi2) * g1_sh
    stats = {"xi1": xi1, "lambda1": lambda1, "xi2": xi2, "lambda2": lambda2}
    return g_r_ded, g_r_sh, stats


@register("drgrad")
class DRGrad(GradientStrategy):
    """Router + updater on a split backbone (see the module docstring).

    Args:
      gamma: γ > 0 in λ = clip(‖g1′‖/‖g‖, 0, 1)^γ (paper default 1).
      variant: router variant, "literal" (Eq. 1–2 as printed) or "paired".
      router: False disables routing (T1′, T1″ keep their own gradients).
      updater: "literal" (Eq. 7), "ema" (bounded) or "none" (μ fixed at ½, ½).
      ema_decay: β of the "ema" updater, in [0, 1).
      temperature: τ > 0 of the "ema" updater's softmax.
      eps: denominator floor of the router.
    """

    needs_task_gradients = False

    def __init__(self, gamma=1.0, variant="literal", router=True, updater="literal",
                 ema_decay=0.99, temperature=1.0, eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
            raise ValueError(f"gamma must be a number > 0, got {gamma!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not isinstance(router, bool):
            raise ValueError(f"router must be True or False, got {router!r}")
        if updater not in UPDATERS:
            raise ValueError(f"updater must be one of {UPDATERS}, got {updater!r}")
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if not float(eps) > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.gamma = float(gamma)
        self.variant = variant
        self.router = router
        self.updater = updater
        self.ema_decay = float(ema_decay)
        self.temperature = float(temperature)
        self.eps = float(eps)
        self._aux_tasks = ()
        self._mixer = None

    def required_groups(self, model):
        backbone = model.backbone
        if not getattr(backbone, "split_primary", False):
            raise ValueError(f"strategy drgrad needs a split backbone (split_mmoe), got "
                             f"{type(backbone).__name__}")
        return ("t1_dedicated", "t1_shared") + tuple(f"tower/{t}" for t in backbone.tasks[1:])

    def build(self, model):
        backbone = model.backbone
        self._aux_tasks = tuple(backbone.tasks[1:])
        groups = backbone.variable_groups()
        sizes = {name: sum(int(v.shape.num_elements()) for v in groups[name])
                 for name in self.required_groups(model)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"drgrad needs towers of identical shapes, got sizes {sizes}")
        self._mixer = weakref.ref(model.mixer)
        self.sigma = self.add_state("sigma", shape=(2,))
        super().build(model)

    def stat_names(self, tasks):
        names = ["xi2", "lambda2", "mu_dedicated", "norm_dedicated", "norm_shared"]
        for task in tasks[1:]:
            names += [f"xi1/{task}", f"lambda1/{task}", f"cos_shared/{task}",
                      f"norm_ratio/{task}"]
        return tuple(names)

    def combine(self, inputs):
        summed = inputs.summed
        g1_ded = flatten(summed["t1_dedicated"])
        g1_sh = flatten(summed["t1_shared"])
        g_aux = tf.stack([flatten(summed[f"tower/{t}"]) for t in self._aux_tasks])
        g_r_ded, g_r_sh, route_stats = route(g1_ded, g1_sh, g_aux, self.gamma, self.variant,
                                             self.eps)
        grads = {f"tower/{t}": list(summed[f"tower/{t}"]) for t in self._aux_tasks}
        if self.router:
            grads["t1_dedicated"] = unflatten(g1_ded + g_r_ded, inputs.variables["t1_dedicated"])
            grads["t1_shared"] = unflatten(g1_sh + g_r_sh, inputs.variables["t1_shared"])
        else:
            grads["t1_dedicated"] = list(summed["t1_dedicated"])
            grads["t1_shared"] = list(summed["t1_shared"])
        eps = tf.constant(self.eps)
        norm_ded = tf.norm(g1_ded)
        norm_sh = tf.norm(g1_sh)
        norm_aux = tf.norm(g_aux, axis=1)
        cos_shared = tf.linalg.matvec(g_aux, g1_sh) / tf.maximum(norm_sh * norm_aux, eps)
        stats = {"xi2": route_stats["xi2"], "lambda2": route_stats["lambda2"],
                 "norm_dedicated": norm_ded, "norm_shared": norm_sh}
        for k, task in enumerate(self._aux_tasks):
            stats[f"xi1/{task}"] = route_stats["xi1"][k]
            stats[f"lambda1/{task}"] = route_stats["lambda1"][k]
            stats[f"cos_shared/{task}"] = cos_shared[k]
            stats[f"norm_ratio/{task}"] = norm_aux[k] / tf.maximum(norm_ded, eps)
        stats["mu_dedicated"] = self._mixer().mu[0]
        return grads, stats

    def after_apply(self, inputs, grads):
        if self.updater == "none":
            return
        norms = tf.stack([tf.norm(flatten(grads["t1_dedicated"])),
                          tf.norm(flatten(grads["t1_shared"]))])
        if self.updater == "literal":
            sigma = self.sigma.assign_add(norms)
            mu = tf.nn.softmax(sigma)
        else:
            sigma = self.sigma.assign(self.ema_decay * self.sigma + (1.0 - self.ema_decay) * norms)
            mu = tf.nn.softmax(sigma / self.temperature)
        self._mixer().mu.assign(mu)

    def get_config(self):
        return {"gamma": self.gamma, "variant": self.variant, "router": self.router,
                "updater": self.updater, "ema_decay": self.ema_decay,
                "temperature": self.temperature, "eps": self.eps}
