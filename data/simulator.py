"""`drgrad data simulate`: a multi-task recommender log with known structure.

The model (data/README.md "Simulated logs" states it in words, with the knobs and presets):

* Population: `users`, `items`, `authors`. Each day d (0-based) adds a cohort of
  ceil(users * new_user_share) users and ceil(items * new_item_share) items (cold start). A row's
  user is, with probability `new_user_share`, a uniform draw from the day's cohort, else a
  Zipf(`zipf_users`) draw by activity rank over the users born before day d (the rank is a
  random key drawn at birth, so newcomers join at random ranks); items the same way with
  `new_item_share` / `zipf_items`. Each item has an author (Zipf(`zipf_authors`) by author id),
  a duration (log-normal, median 30 s) and latent factors; each user a device, a city (both
  fixed per user) and latent factors.
* Signals: shared affinity s = p_u(d) . q_i(d) / sqrt(k), with the item side mixing its own and
  its author's factors; factors drift by `drift` radians a day (x(d) = cos(d drift) x + sin(d
  drift) x', x' an independent copy), so the distribution of s never changes but who likes what
  does (independent of day 0's after pi / (2 drift) days, 31 at the default). Task t has its
  own factors too: o_t = p_ut . q_it / sqrt(k_t), and its signal is
  z_t = c_t s + sqrt(1 - c_t^2) o_t (the `angle` generator of `data.synthetic`: corr(z_t,
  z_primary) = c_t; c_primary = 1, an auxiliary task's c_t is `cos` or its own, negated when it
  `opposes` the primary, like dislike vs click). For the **conflict users** (a
  `conflict_user_fraction` of users) c_t of `conflict_task` is negated: that task runs against
  the primary for them only (DRGrad, Fig. 3(c): where a personalized gate should help).
* Labels: logit_t = b_t + signal_scale (z_t + noise_t e) / sqrt(1 + noise_t^2) + context_t, with
  e ~ N(0, 1) and context_t = context_scale (a_t cos(2 pi (hour - h_t) / 24) + device_t) +
  duration_effect_t z(log duration); label_t ~ Bernoulli(sigmoid(logit_t)), and a nested task
  (`parent`) is 1 only where its parent is (GradCraft's EffectiveView > LongView > CompleteView).
  Each b_t is solved (bisection) so that the expected positive rate on a day-0 calibration
  sample equals the task's `rate`.
* Rows of a day have timestamps at the quantiles of a diurnal profile (sorted `ts`, unix
  seconds) and go to eval with probability `eval_fraction`, to test with probability
  `test_fraction` (one uniform draw per row decides; train keeps the rest).

Everything is drawn from `numpy.random.SeedSequence(seed)` children keyed by what they make
(population block, day and chunk of `CHUNK_ROWS` rows), so a seed fixes every byte whatever the
number of worker processes, and memory is the population's plus one chunk's.
"""
import datetime
import math
from typing import Dict, Tuple

import numpy as np

from drgrad.data.simulator_config import TIMESTAMP, Config

CHUNK_ROWS = 50_000
SPLITS = ("train", "eval", "test")  # `World.rows` gives each row's index into this
CALIBRATION_ROWS = 100_000
DEVICES = ("android", "ios", "web", "tablet")
DEVICE_SHARES = (0.55, 0.33, 0.08, 0.04)
CITIES = 50
DURATION_MEDIAN_S = 30.0
DURATION_LOG_SIGMA = 0.8
# Diurnal share of traffic per UTC hour: peak at 20:30, a quarter of it at night.
_HOURS = np.arange(24)
HOUR_SHARES = (1.0 + 0.6 * np.cos(2 * np.pi * (_HOURS + 0.5 - 20.5) / 24))
HOUR_SHARES = HOUR_SHARES / HOUR_SHARES.sum()
# SeedSequence spawn keys: what each random stream makes.
_USERS, _ITEMS, _AUTHORS, _CONTEXT, _CALIBRATION, _ROWS = range(6)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def zipf_cdf(size: int, exponent: float) -> np.ndarray:
    """Cumulative probabilities of ranks 1..size under p(r) ~ r^-exponent."""
    weights = np.arange(1, size + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _draw(cdf: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, uniforms, side="right"), len(cdf) - 1)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class World:
    """The population and parameters of one simulation; `rows(day, chunk)` makes the data."""

    def __init__(self, config: Config):
        self.config = config
        c = config
        self.new_users_per_day = math.ceil(c.users * c.new_user_share)
        self.new_items_per_day = math.ceil(c.items * c.new_item_share)
        num_tasks = len(c.tasks)
        users = [self._people(_USERS, block, c.users if block == 0 else self.new_users_per_day,
                              num_tasks) for block in range(c.days + 1)]
        self.user = {key: np.concatenate([b[key] for b in users]) for key in users[0]}
        items = [self._people(_ITEMS, block, c.items if block == 0 else self.new_items_per_day,
                              num_tasks) for block in range(c.days + 1)]
        self.item = {key: np.concatenate([b[key] for b in items]) for key in items[0]}
        rng = _rng(c.seed, _AUTHORS)
        self.author_factors = rng.standard_normal((c.authors, c.factor_dim)).astype(np.float32)
        context = _rng(c.seed, _CONTEXT)
        self.hour_amplitude = context.standard_normal(num_tasks)
        self.hour_peak = context.uniform(0, 24, num_tasks)
        self.device_effect = context.standard_normal((num_tasks, len(DEVICES)))
        self.cos = c.task_cos()
        self.noise = c.task_noise()
        self.duration_effect = np.array([task.duration_effect for task in c.tasks])
        self.parents = [None if t.parent is None else c.task_names.index(t.parent)
                        for t in c.tasks]
        self.conflict_index = (None if c.conflict_task is None
                               else c.task_names.index(c.conflict_task))
        self.hour_cdf = np.cumsum(HOUR_SHARES)
        self._day_cache = {}
        self.biases = self._calibrate()

    def _people(self, kind: int, block: int, size: int, num_tasks: int) -> Dict[str, np.ndarray]:
        """Attributes of one birth cohort (block 0: the initial population)."""
        c = self.config
        rng = _rng(c.seed, kind, block)
        people = {"key": rng.random(size),
                  "factors": rng.standard_normal((size, c.factor_dim)).astype(np.float32),
                  "drifted": rng.standard_normal((size, c.factor_dim)).astype(np.float32),
                  "tasks": rng.standard_normal((size, num_tasks, c.task_factor_dim)
                                               ).astype(np.float32)}
        if kind == _USERS:
            people["device"] = _draw(np.cumsum(DEVICE_SHARES), rng.random(size))
            people["city"] = _draw(zipf_cdf(CITIES, 1.0), rng.random(size))
            people["conflict"] = rng.random(size) < c.conflict_user_fraction
        else:
            people["author"] = _draw(zipf_cdf(c.authors, c.zipf_authors), rng.random(size))
            people["duration"] = np.round(DURATION_MEDIAN_S * np.exp(
                DURATION_LOG_SIGMA * rng.standard_normal(size)), 1).clip(1.0, 3600.0)
        return people

    def conflict_user_ids(self) -> np.ndarray:
        return np.flatnonzero(self.user["conflict"])

    def new_ids(self, day: int) -> Dict[str, Tuple[int, int]]:
        """`{"user_id": (lo, hi), "item_id": (lo, hi)}`: the cohorts born on `day`."""
        c = self.config
        return {"user_id": (c.users + day * self.new_users_per_day,
                            c.users + (day + 1) * self.new_users_per_day),
                "item_id": (c.items + day * self.new_items_per_day,
                            c.items + (day + 1) * self.new_items_per_day)}

    def date(self, day: int) -> datetime.date:
        return datetime.date.fromisoformat(self.config.start_date) + datetime.timedelta(day)

    def _day(self, day: int) -> Dict:
        """Per-day tables: the established pools in activity order and their Zipf CDFs."""
        if day not in self._day_cache:
            c = self.config
            new = self.new_ids(day)
            tables = {"new": new, "angle": day * c.drift,
                      "start": int(datetime.datetime.combine(
                          self.date(day), datetime.time(), datetime.timezone.utc).timestamp())}
            for column, people, exponent in (("user_id", self.user, c.zipf_users),
                                             ("item_id", self.item, c.zipf_items)):
                pool = new[column][0]
                tables[column] = (np.argsort(-people["key"][:pool], kind="stable"),
                                  zipf_cdf(pool, exponent))
            self._day_cache = {day: tables}  # Days are made in order: keep one.
        return self._day_cache[day]

    def _pick(self, tables, column, share, rng, n):
        order, cdf = tables[column]
        lo, hi = tables["new"][column]
        is_new = rng.random(n) < share
        newcomer = lo + rng.integers(0, max(hi - lo, 1), n)
        return np.where(is_new, newcomer, order[_draw(cdf, rng.random(n))])

    def _features(self, day: int, rng: np.random.Generator, quantiles: np.ndarray):
        """Feature columns and the label scores (logits without the biases), [n, tasks]."""
        c, n = self.config, len(quantiles)
        tables = self._day(day)
        user = self._pick(tables, "user_id", c.new_user_share, rng, n)
        item = self._pick(tables, "item_id", c.new_item_share, rng, n)
        author = self.item["author"][item]
        hour = _draw(self.hour_cdf, quantiles)
        before = self.hour_cdf[hour] - HOUR_SHARES[hour]
        second = hour * 3600 + np.minimum(
            ((quantiles - before) / HOUR_SHARES[hour] * 3600).astype(np.int64), 3599)
        turn, keep = math.sin(tables["angle"]), math.cos(tables["angle"])
        p = keep * self.user["factors"][user] + turn * self.user["drifted"][user]
        q = keep * self.item["factors"][item] + turn * self.item["drifted"][item]
        q = (math.sqrt(1 - c.author_share) * q
             + math.sqrt(c.author_share) * self.author_factors[author])
        shared = np.einsum("nk,nk->n", p, q) / math.sqrt(c.factor_dim)
        own = np.einsum("ntk,ntk->nt", self.user["tasks"][user], self.item["tasks"][item]
                        ) / math.sqrt(c.task_factor_dim)
        cos = np.tile(self.cos, (n, 1))
        if self.conflict_index is not None:
            cos[self.user["conflict"][user], self.conflict_index] *= -1.0
        signal = cos * shared[:, None] + np.sqrt(1.0 - self.cos ** 2) * own
        signal = (signal + self.noise * rng.standard_normal(signal.shape)
                  ) / np.sqrt(1.0 + self.noise ** 2)
        device = self.user["device"][user]
        log_duration = (np.log(self.item["duration"][item] / DURATION_MEDIAN_S)
                        / DURATION_LOG_SIGMA)
        context = (self.hour_amplitude * np.cos(2 * np.pi * (hour[:, None] - self.hour_peak)
                                                / 24) + self.device_effect.T[device])
        scores = (c.signal_scale * signal + c.context_scale * context
                  + self.duration_effect * log_duration[:, None])
        columns = {"user_id": user, "item_id": item, "author_id": author, "hour": hour,
                   "device": np.array(DEVICES)[device],
                   "city": np.array([f"city-{k:03d}" for k in range(CITIES)])[
                       self.user["city"][user]],
                   "duration": self.item["duration"][item], TIMESTAMP: tables["start"] + second}
        return columns, scores

    def _calibrate(self) -> np.ndarray:
        """b_t: the expected rate on a day-0 sample equals each task's rate (bisection)."""
        _, scores = self._features(0, _rng(self.config.seed, _CALIBRATION),
                                   (np.arange(CALIBRATION_ROWS) + 0.5) / CALIBRATION_ROWS)
        biases = np.zeros(len(self.config.tasks))
        probability = np.ones_like(scores)
        for t, task in enumerate(self.config.tasks):
            parent = 1.0 if self.parents[t] is None else probability[:, self.parents[t]]
            low, high = -40.0, 40.0
            for _ in range(60):
                middle = 0.5 * (low + high)
                if np.mean(parent * _sigmoid(middle + scores[:, t])) < task.rate:
                    low = middle
                else:
                    high = middle
            biases[t] = 0.5 * (low + high)
            probability[:, t] = parent * _sigmoid(biases[t] + scores[:, t])
        return biases

    def chunks(self) -> int:
        """Chunks per day."""
        return -(-self.config.rows_per_day // CHUNK_ROWS)

    def rows(self, day: int, chunk: int) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        """`(columns, split)` of one chunk of one day: features, `ts`, 0/1 labels, and each
        row's index into `SPLITS` (train, eval, test)."""
        c = self.config
        start = chunk * CHUNK_ROWS
        stop = min(start + CHUNK_ROWS, c.rows_per_day)
        rng = _rng(c.seed, _ROWS, day, chunk)
        columns, scores = self._features(
            day, rng, (np.arange(start, stop) + 0.5) / c.rows_per_day)
        draws = rng.random(scores.shape)
        labels = draws < _sigmoid(scores + self.biases)
        for t, parent in enumerate(self.parents):
            if parent is not None:
                labels[:, t] &= labels[:, parent]
            columns[c.tasks[t].name] = labels[:, t].astype(np.int64)
        draws = rng.random(stop - start)
        return columns, np.where(draws < c.eval_fraction, 1,
                                 np.where(draws < c.eval_fraction + c.test_fraction, 2, 0))
