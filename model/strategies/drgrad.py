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
  (docs/REFERENCE.md): μ′ > 0.99 within ~11 steps, after which T1″ gets ~zero gradient.
* ``updater="ema"`` (bounded alternative): σ ← β·σ + (1 − β)·n, μ = softmax(σ/τ). σ is an
  average of recent norms, so μ′ − μ″ reflects the current norm gap and cannot run away with
  training length.
* ``updater="none"``: μ stays ½, ½ (the "Split-MMoE + router" ablation).

μ lives in the model's `TowerMixer` (read by `call`, so it is saved and served); σ lives here.

Upstream routing (``route_level="upstream"``). Table 1 gives the routed gradients
"for v1" and "for vs", the representations the dedicated gate and the shared gate (+ PPNet)
produce, ``[B, d]`` each (d = expert_units). With L = Σ_t w_t·L_t (each L_t a batch mean, so
row b of a representation gradient is example b's gradient divided by B)::

    g1′(v1) = ∂(w1·L1)/∂v1        (through T1′ only: v1 feeds nothing else)
    g1″(vs) = ∂(w1·L1)/∂vs        (through T1″: vs reaches L1 only through T1″)
    gk(vs)  = ∂(wk·Lk)/∂vs        (through the auxiliary tower Tk), k = 2..n

all ``[B, d]`` (vs and v1 have the same shape, so Table 1's "for v1" terms, which are
gradients w.r.t. vs, can be added to v1's). The router above, applied to (g1′(v1), g1″(vs),
{gk(vs)}) in place of the tower gradients, gives g′R1 and g″R1 and::

    dv1 = g1′(v1) + g′R1
    dvs = g1″(vs) + g″R1 + Σ_k gk(vs)

(without routing, dv1 and dvs are exactly ∂L/∂v1 and ∂L/∂vs). ``upstream_mode`` picks the
granularity of ξ and λ: ``"batch"`` flattens each ``[B, d]`` gradient to one vector (one ξ per
batch, as for the towers); ``"example"`` routes every row on its own (one ξ per example: the
per-user gradients of Fig. 3(c)), vectorized with cosines along axis 1 (see `route`, which
accepts ``[B, d]`` inputs). Every variable upstream of v1 and vs (embeddings, experts, gates,
PPNet) then gets ``tape.gradient([v1, vs], upstream, output_gradients=[dv1, dvs])`` (+ its
regularization gradient) instead of its summed-loss gradient. The embeddings feed both v1
and vs through the experts and gates, so their gradient is the sum of both paths'
contributions, and, computed through the embedding lookup (a gather), it stays a
`tf.IndexedSlices`. The towers keep the tower-level routing (Eq. 4–5) above, and the updater
is unchanged. Cost: one extra backward through the towers per task (to the representations).

``variant="upstream"`` is accepted as shorthand for ``variant="literal",
route_level="upstream"`` (the bench's ``upstream`` preset passes it); `get_config` writes the
normalized form.
"""
import weakref

import tensorflow as tf

from drgrad.model.backbones.base import dedicated_output, shared_output
from drgrad.model.strategies import register
from drgrad.model.strategies.base import GradientStrategy, flatten, unflatten

VARIANTS = ("literal", "paired")
UPDATERS = ("literal", "ema", "none")
ROUTE_LEVELS = ("towers", "upstream")
UPSTREAM_MODES = ("batch", "example")


def _indicator(condition):
    return tf.cast(condition, tf.float32)


def route(g1_ded, g1_sh, g_aux, gamma=1.0, variant="literal", eps=1e-12):
    """The DRGrad router (Eq. 1–2); see the module docstring.

    On 1-D gradients it routes once; on ``[B, d]`` gradients it routes every row on its own
    (one ξ and λ per row, cosines along the last axis), which equals calling it row by row.

    Args:
      g1_ded: ``[d]`` or ``[B, d]`` gradient of the dedicated primary side (g1′).
      g1_sh: same shape, gradient of the shared primary side (g1″).
      g_aux: ``[n_aux, d]`` / ``[n_aux, B, d]`` gradients of the auxiliary tasks, or one
          auxiliary gradient shaped like g1_ded.
      gamma: the exponent γ > 0 of the norm-ratio weights λ.
      variant: "literal" (Eq. 1–2 as printed) or "paired".
      eps: floor of every denominator.

    Returns:
      ``(g_r_ded, g_r_sh, stats)``: the routed additions g′R1 and g″R1 (shaped like g1_ded)
      and ``{"xi1": [n_aux(, B)], "lambda1": [n_aux(, B)], "xi2": [(B)], "lambda2": [(B)]}``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not gamma > 0:
        raise ValueError(f"gamma must be a number > 0, got {gamma!r}")
    g1_ded = tf.convert_to_tensor(g1_ded, tf.float32)
    g1_sh = tf.convert_to_tensor(g1_sh, tf.float32)
    g_aux = tf.convert_to_tensor(g_aux, tf.float32)
    rank = g1_ded.shape.rank
    if rank not in (1, 2) or g1_sh.shape.rank != rank:
        raise ValueError(f"route takes g1_ded and g1_sh of the same rank, 1 ([d]) or 2 ([B, d]); "
                         f"got shapes {g1_ded.shape} and {g1_sh.shape}")
    if g_aux.shape.rank == rank:
        g_aux = g_aux[tf.newaxis]
    if g_aux.shape.rank != rank + 1:
        raise ValueError(f"g_aux must be shaped [n_aux] + {g1_ded.shape.as_list()}, got "
                         f"{g_aux.shape}")
    if not g1_ded.shape.is_compatible_with(g1_sh.shape) or not g1_ded.shape.is_compatible_with(
            g_aux.shape[1:]):
        raise ValueError(f"gradient sizes differ: g1′ {g1_ded.shape}, g1″ {g1_sh.shape}, "
                         f"g_aux {g_aux.shape}; the routed sides must have identical shapes")
    eps = tf.constant(eps, tf.float32)
    norm_ded = tf.norm(g1_ded, axis=-1)                                   # [] or [B]
    norm_sh = tf.norm(g1_sh, axis=-1)
    norm_aux = tf.norm(g_aux, axis=-1)                                    # [n(, B)]
    xi1 = tf.reduce_sum(g_aux * g1_ded, axis=-1) / tf.maximum(norm_ded * norm_aux, eps)
    lambda1 = tf.pow(tf.clip_by_value(norm_ded / tf.maximum(norm_aux, eps), 0.0, 1.0), gamma)
    xi2 = tf.reduce_sum(g1_ded * g1_sh, axis=-1) / tf.maximum(norm_ded * norm_sh, eps)
    lambda2 = tf.pow(tf.clip_by_value(norm_ded / tf.maximum(norm_sh, eps), 0.0, 1.0), gamma)
    if variant == "literal":
        coef_sh = tf.reduce_mean((1.0 - _indicator(xi1 < 0) * xi1) * lambda1, axis=0)
        coef_aux = _indicator(xi2 >= 0) * lambda2 * tf.ones_like(xi1)
    else:
        coef_sh = (1.0 - _indicator(xi2 < 0) * xi2) * lambda2
        coef_aux = _indicator(xi1 >= 0) * lambda1
    coef_r_sh = -tf.reduce_mean(_indicator(xi1 * xi2 < 0) * xi1 * xi2, axis=0)
    g_r_ded = coef_sh[..., tf.newaxis] * g1_sh + tf.reduce_sum(
            coef_aux[..., tf.newaxis] * g_aux, axis=0)
    g_r_sh = coef_r_sh[..., tf.newaxis] * g1_sh
    stats = {"xi1": xi1, "lambda1": lambda1, "xi2": xi2, "lambda2": lambda2}
    return g_r_ded, g_r_sh, stats


def route_representations(g1_ded, g1_sh, g_aux, gamma=1.0, variant="literal", mode="batch",
                          eps=1e-12):
    """Upstream routing: ``(dv1, dvs, stats)`` from the ``[B, d]`` representation gradients.

    ``dv1 = g1′(v1) + g′R1`` and ``dvs = g1″(vs) + g″R1 + Σ_k gk(vs)`` (module docstring), with
    the router applied over the whole batch (``mode="batch"``: one ξ) or per row
    (``mode="example"``: one ξ per example). ``g_aux``: ``[n_aux, B, d]``.
    """
    if mode not in UPSTREAM_MODES:
        raise ValueError(f"upstream_mode must be one of {UPSTREAM_MODES}, got {mode!r}")
    g1_ded = tf.convert_to_tensor(g1_ded, tf.float32)
    g1_sh = tf.convert_to_tensor(g1_sh, tf.float32)
    g_aux = tf.convert_to_tensor(g_aux, tf.float32)
    if mode == "batch":
        n_aux = g_aux.shape[0]
        r_ded, r_sh, stats = route(tf.reshape(g1_ded, [-1]), tf.reshape(g1_sh, [-1]),
                                   tf.reshape(g_aux, [n_aux, -1]), gamma, variant, eps)
        r_ded = tf.reshape(r_ded, tf.shape(g1_ded))
        r_sh = tf.reshape(r_sh, tf.shape(g1_sh))
    else:
        r_ded, r_sh, stats = route(g1_ded, g1_sh, g_aux, gamma, variant, eps)
    return g1_ded + r_ded, g1_sh + r_sh + tf.reduce_sum(g_aux, axis=0), stats


@register("drgrad")
class DRGrad(GradientStrategy):
    """Router + updater on a split backbone (see the module docstring).

    Args:
      gamma: γ > 0 in λ = clip(‖g1′‖/‖g‖, 0, 1)^γ (paper default 1).
      variant: router formula, "literal" (Eq. 1–2 as printed) or "paired"; "upstream" is
          shorthand for variant="literal", route_level="upstream".
      router: False disables routing at every level (T1′, T1″ and the variables upstream of
          v1 / vs keep their plain gradients).
      route_level: "towers" (Eq. 4–5 on the tower weights only) or "upstream" (also route the
          gradients of the representations v1 / vs into gates, experts, PPNet, embeddings).
      upstream_mode: "batch" (one ξ per batch) or "example" (one ξ per example), for
          route_level="upstream".
      updater: "literal" (Eq. 7), "ema" (bounded) or "none" (μ fixed at ½, ½).
      ema_decay: β of the "ema" updater, in [0, 1).
      temperature: τ > 0 of the "ema" updater's softmax.
      eps: denominator floor of the router.
    """

    needs_task_gradients = False

    def __init__(self, gamma=1.0, variant="literal", router=True, updater="literal",
                 ema_decay=0.99, temperature=1.0, eps=1e-12, route_level="towers",
                 upstream_mode="batch", **kwargs):
        super().__init__(**kwargs)
        if variant == "upstream":
            variant, route_level = "literal", "upstream"
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
            raise ValueError(f"gamma must be a number > 0, got {gamma!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if route_level not in ROUTE_LEVELS:
            raise ValueError(f"route_level must be one of {ROUTE_LEVELS}, got {route_level!r}")
        if upstream_mode not in UPSTREAM_MODES:
            raise ValueError(f"upstream_mode must be one of {UPSTREAM_MODES}, got "
                             f"{upstream_mode!r}")
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
        self.route_level = route_level
        self.upstream_mode = upstream_mode
        self._primary = None
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
        self._primary = backbone.tasks[0]
        self._aux_tasks = tuple(backbone.tasks[1:])
        if self.routes_representations and tuple(backbone.representation_names) != ("v1", "vs"):
            raise ValueError(f"route_level='upstream' needs a backbone exposing v1 and vs "
                             f"(split_mmoe), got {type(backbone).__name__}")
        groups = backbone.variable_groups()
        sizes = {name: sum(int(v.shape.num_elements()) for v in groups[name])
                 for name in self.required_groups(model)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"drgrad needs towers of identical shapes, got sizes {sizes}")
        if (self.routes_representations and self.upstream_mode == "batch"
                and tf.distribute.has_strategy()):
            raise ValueError("drgrad route_level='upstream' with upstream_mode='batch' routes on "
                             "the batch's [B, d] representation gradients, which a tf.distribute "
                             "replica holds only part of; use upstream_mode='example' (exact "
                             "per example) or route_level='towers' under tf.distribute")
        self._mixer = weakref.ref(model.mixer)
        self.sigma = self.add_state("sigma", shape=(2,))
        super().build(model)

    def stat_names(self, tasks):
        names = ["xi2", "lambda2", "mu_dedicated", "norm_dedicated", "norm_shared"]
        for task in tasks[1:]:
            names += [f"xi1/{task}", f"lambda1/{task}", f"cos_shared/{task}",
                      f"norm_ratio/{task}"]
        if self.routes_representations:
            names += ["upstream/xi2"]
            for task in tasks[1:]:
                names += [f"upstream/xi1/{task}", f"upstream/conflict/{task}"]
        return tuple(names)

    @property
    def routes_representations(self):
        return self.router and self.route_level == "upstream"

    def route_representations(self, rep_grads):
        """``{"v1": dv1, "vs": dvs}`` (module docstring) and the upstream router's statistics:
        mean ξ2, mean ξ1 per auxiliary task, and the fraction of rows (of ξ values) with
        ξ1 < 0 (a conflict with the primary task)."""
        primary = self._primary
        g_aux = tf.stack([rep_grads[t]["vs"] for t in self._aux_tasks])
        dv1, dvs, route_stats = route_representations(
                rep_grads[primary]["v1"], rep_grads[primary]["vs"], g_aux, self.gamma,
                self.variant, self.upstream_mode, self.eps)
        xi1 = tf.reshape(route_stats["xi1"], [len(self._aux_tasks), -1])
        stats = {"upstream/xi2": tf.reduce_mean(route_stats["xi2"])}
        for k, task in enumerate(self._aux_tasks):
            stats[f"upstream/xi1/{task}"] = tf.reduce_mean(xi1[k])
            stats[f"upstream/conflict/{task}"] = tf.reduce_mean(_indicator(xi1[k] < 0))
        return {"v1": dv1, "vs": dvs}, stats

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
                "temperature": self.temperature, "eps": self.eps,
                "route_level": self.route_level, "upstream_mode": self.upstream_mode}
