"""IGBv2: improvable-gap balancing with a learned (reinforcement-learning) weighting policy.

Reference:
    Dai, Y., Fei, N., Lu, Z. "Improvable Gap Balancing for Multi-Task Learning." UAI 2023.
    arXiv:2307.15429.

IGB weights the tasks by how much each can still improve instead of by raw loss size. Both of
its algorithms train on the scale-invariant loss ``sum_k w_k log l_k`` (its gradient is
``sum_k (w_k / l_k) grad l_k``) with weights summing to K:

* IGBv1: ``w = K softmax(l / l_base)``, ``l_base`` the mean loss of the first epoch.
* IGBv2 (this file): a policy maps the state ``s = l / l_base`` to ``w``; the reward of an
  action is the worst relative one-step improvement ``min_k (l_k(t-1) - l_k(t)) / l_base,k``;
  the first epochs use random weights ``K softmax(N(0, I))`` (RLW) for exploration.

Our simplification of the RL part, and why. The official code trains a Soft Actor-Critic agent
(twin Q networks, a replay buffer of 10^4 transitions, bursts of ~50 off-policy updates every
50 steps) in Python next to the training loop. That cannot live inside a compiled
`train_step` (variable-size buffer, Python-side schedules) and would dominate the step cost of a
ranking model. The reward, however, is **one-step** (it scores only the immediately following
loss change), so the problem is a contextual bandit and a policy-gradient learner on the same
state, action and reward needs no critic or buffer. We use:

* a linear-Gaussian policy on the weight logits: ``z = W s + b + sigma * xi``, ``xi ~ N(0, I)``,
  ``w = K softmax(z)`` (``W`` starts at 0, ``b`` at 0: equal weights plus exploration noise);
* REINFORCE with a moving-average reward baseline and a running RMS normalization of the
  advantage ``A``: ``W += lr * A * (xi / sigma) s^T``, ``b += lr * A * xi / sigma``, once per
  applied step (TF ops, state in non-trainable variables);
* ``warmup_steps`` of RLW weights while ``l_base`` is averaged (the paper's first epochs).

Hyperparameters: warmup_steps = 500 (the reference's 5 random epochs, expressed in steps),
sigma = 0.3, policy_lr = 0.01, baseline_decay = 0.9, seed = 0 (all ours: the SAC settings have
no counterpart).

Variable groups: none. IGBv2 is a loss-weighting method (the `loss_weights` hook), so every
variable, embeddings included, gets the gradient of the weighted loss; no per-task backward
passes. The reported total loss is therefore ``sum_k w_k`` (about K); per-task losses are
unweighted.
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import GradientStrategy

_TINY = 1e-12


def igb_reward(previous_losses, losses, base_losses):
    """``min_k (l_k(t-1) - l_k(t)) / l_base,k``: the worst relative improvement."""
    return tf.reduce_min((previous_losses - losses) / tf.maximum(base_losses, _TINY))


def policy_weights(state, kernel, bias, noise, sigma):
    """``K softmax(W s + b + sigma * xi)`` for the state ``s = l / l_base``."""
    k = tf.cast(tf.shape(state)[0], state.dtype)
    logits = tf.linalg.matvec(kernel, state) + bias + sigma * noise
    return k * tf.nn.softmax(logits)


@register("igbv2")
class IGBv2(GradientStrategy):
    """IGBv2 (Dai et al., UAI 2023) with an in-graph REINFORCE policy in place of SAC.

    Args:
        warmup_steps: steps of random (RLW) weights while the base losses are averaged (>= 1).
        sigma: exploration noise of the policy on the logits (> 0).
        policy_lr: policy-gradient step size (>= 0).
        baseline_decay: EMA decay of the reward baseline and advantage scale, in [0, 1).
        seed: seed of the exploration noise.
        name: module name.
    """

    groups = ()
    needs_task_gradients = False

    def __init__(self, warmup_steps=500, sigma=0.3, policy_lr=0.01, baseline_decay=0.9, seed=0,
                 name=None):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"warmup_steps must be an int >= 1, got {warmup_steps!r}")
        if not float(sigma) > 0.0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if not float(policy_lr) >= 0.0:
            raise ValueError(f"policy_lr must be >= 0, got {policy_lr}")
        if not 0.0 <= float(baseline_decay) < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        super().__init__(name=name)
        self.warmup_steps = warmup_steps
        self.sigma = float(sigma)
        self.policy_lr = float(policy_lr)
        self.baseline_decay = float(baseline_decay)
        self.seed = seed

    def build(self, model):
        k = len(model.task_names)
        add = self.add_state
        self._step = add("step", dtype=tf.int64, initial_value=0)
        self._base = add("base_losses", shape=(k,))
        self._kernel = add("policy_kernel", shape=(k, k))
        self._bias = add("policy_bias", shape=(k,))
        self._noise = add("noise", shape=(k,))            # xi of this step's action
        self._state = add("state", shape=(k,))            # s of this step's action
        self._prev_noise = add("previous_noise", shape=(k,))
        self._prev_state = add("previous_state", shape=(k,))
        self._prev_losses = add("previous_losses", shape=(k,))
        self._baseline = add("reward_baseline")
        self._adv_sq = add("advantage_mean_square", initial_value=1.0)
        self._weights = add("weights", shape=(k,), initial_value=1.0)
        super().build(model)

    def stat_names(self, tasks):
        return ("reward",) + tuple(f"weight/{t}" for t in tasks)

    def loss_weights(self, task_losses, alpha):
        tasks = list(task_losses)
        losses = tf.stop_gradient(tf.stack([tf.cast(task_losses[t], tf.float32) for t in tasks]))
        k = len(tasks)
        key = tf.stack([tf.constant(self.seed, tf.int64), self._step])
        noise = tf.random.stateless_normal([k], seed=key)
        warm = self._step < self.warmup_steps
        state = tf.where(warm, tf.ones([k]), losses / tf.maximum(self._base, _TINY))
        weights = tf.where(warm, k * tf.nn.softmax(noise),
                           policy_weights(state, self._kernel, self._bias, noise, self.sigma))
        self._noise.assign(noise)
        self._state.assign(state)
        self._weights.assign(weights)
        # d/dtheta [w_k log l_k] = (w_k / l_k) dl_k/dtheta: the weight on the plain loss.
        scale = weights / tf.maximum(losses, _TINY)
        return {t: tf.stop_gradient(alpha[t] * scale[i]) for i, t in enumerate(tasks)}

    def combine(self, inputs):
        grads, _ = super().combine(inputs)
        tasks = list(inputs.task_losses)
        stats = {"reward": self._reward(inputs)}
        stats.update({f"weight/{t}": self._weights[i] for i, t in enumerate(tasks)})
        return grads, stats

    def _reward(self, inputs):
        losses = tf.stack([tf.cast(inputs.task_losses[t], tf.float32) for t in inputs.task_losses])
        reward = igb_reward(self._prev_losses, losses, self._base)
        return tf.where(self._step > self.warmup_steps, reward, 0.0)  # undefined before

    def after_apply(self, inputs, grads):
        del grads
        losses = tf.stack([tf.cast(inputs.task_losses[t], tf.float32) for t in inputs.task_losses])
        step = self._step
        warmup = tf.cast(self.warmup_steps, tf.int64)
        # Base losses: running mean over the warm-up steps.
        n = tf.cast(step + 1, tf.float32)
        self._base.assign(tf.where(step < warmup, self._base + (losses - self._base) / n,
                                   self._base))
        # Policy update for the previous action (taken by the policy, i.e. after warm-up).
        learn = step > warmup
        reward = igb_reward(self._prev_losses, losses, self._base)
        advantage = reward - self._baseline
        decay = self.baseline_decay
        adv_sq = decay * self._adv_sq + (1.0 - decay) * tf.square(advantage)
        normalized = advantage / (tf.sqrt(adv_sq) + _TINY)
        score = self._prev_noise / self.sigma  # grad of log N(z; mu, sigma^2) wrt mu: (z - mu) / sigma^2
        lr = tf.where(learn, self.policy_lr, 0.0) * normalized
        self._kernel.assign_add(lr * score[:, tf.newaxis] * self._prev_state[tf.newaxis, :])
        self._bias.assign_add(lr * score)
        self._baseline.assign(tf.where(step >= warmup,
                                       decay * self._baseline + (1.0 - decay) * reward,
                                       self._baseline))
        self._adv_sq.assign(tf.where(learn, adv_sq, self._adv_sq))
        self._prev_losses.assign(losses)
        self._prev_noise.assign(self._noise)
        self._prev_state.assign(self._state)
        self._step.assign_add(1)

    def get_config(self):
        return {"warmup_steps": self.warmup_steps, "sigma": self.sigma,
                "policy_lr": self.policy_lr, "baseline_decay": self.baseline_decay,
                "seed": self.seed}
