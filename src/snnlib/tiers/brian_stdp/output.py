"""Tier 1, the output layer for the convolutional network: class populations that learn by R-STDP (Brian2).

**Input.** The hidden layers' pooled spike counts of an image
(:func:`.network.features`) drive Poisson inputs. Each feature is standardised
with the training images' mean and spread (a gain control) and split into an
ON and an OFF input, :math:`u^+ = [z]_+ / z_{max}` and
:math:`u^- = [-z]_+ / z_{max}`, which fire at ``u x max_rate_hz``.

**Output.** ``neurons_per_class`` LIF neurons per class. A spike of a class-``c``
neuron lowers the potential of every neuron of the other classes by
``inhibition_mv`` (lateral inhibition between class populations).

**Tonic input.** One more input fires at ``max_rate_hz`` for every image (when
``tonic_input`` is on): its weight onto a neuron is a bias that learns like any
other weight.

**Learning** (reward-modulated STDP; Izhikevich 2007, Florian 2007). Images
are shown one after another in one Brian2 run. Every input-to-output synapse
keeps an eligibility trace :math:`e_{ij}` of pre-before-post pairings, cleared
at the start of each image: at each spike of output neuron :math:`j` it grows
by the number of spikes input :math:`i` has fired so far in the image (earlier
steps: a spike of the same step cannot have caused it),

.. math:: e_{ij} = \\sum_{t \\in T_j} \\#\\{s \\in S_i : s < t\\},

with :math:`T_j` and :math:`S_i` the steps of the image's spikes of neuron
:math:`j` and input :math:`i`: the all-to-all pairing of
:func:`snnlib.plasticity.build_rstdp_synapses` without depression and with
traces that outlast the image, except that a pair within one step does not count. While learning, the population of the **first** output spike decides
(``decide_by="first_spike"``): a race that a population wins with a
probability that grows with its rate, so the layer tries classes it is not
sure of. At the end of the image a reward arrives: :math:`r = 1` for a right
decision, :math:`0` for a wrong one. From it the layer subtracts its own
**prediction** of the reward, :math:`\\hat r`, which does not see the label:

- ``"confidence"``: the deciding population's share of the output spikes that
  followed the first, each population's count raised to ``confidence_power``
  :math:`n` (divisive normalisation with an exponent, Carandini & Heeger 2012):

  .. math:: \\hat r = \\frac{N'_a{}^{n}}{\\sum_c N'_c{}^{n}},

  where :math:`N'_c` is population ``c``'s spike count, less the first spike for
  the deciding population ``a`` (``1 / n_classes`` after a single spike). With
  :math:`n = 1` this is :math:`(N_a - 1) / (N - 1)`. A confident decision
  predicts a reward, so a right one teaches little and a wrong one much (as in
  attention-gated reinforcement learning, Roelfsema & van Ooyen 2005, where the
  chosen unit's activity is the prediction). The prediction stands for the
  probability that the race picks ``a``; :math:`n > 1` makes it sharper than
  the plain share of spikes;
- ``"running_mean"``: the running mean of past rewards (time constant
  ``baseline_images`` images), the same for every image;
- ``"none"``: :math:`\\hat r = 0`.

The deciding population's synapses learn by their eligibility per output
spike:

.. math:: \\Delta w_{ij} = \\eta\\, (r - \\hat r)\\, \\frac{e_{ij}}{\\max(n_j, 1)},

where :math:`n_j` is neuron ``j``'s spike count. With ``competitors`` =
:math:`\\kappa > 0`, every other population ``c`` that fired learns the other way,
in proportion to its share :math:`s_c` of the image's output spikes (the gradient of
a softmax policy's log-probability has this sign for the actions not taken):
:math:`\\Delta w_{ij} = -\\kappa\\, \\eta\\, (r - \\hat r)\\, s_c\\, e_{ij} / n_j`.
With ``conserve`` on, the
change is then made zero-sum twice: first over each deciding neuron's inputs,
then over each input's output neurons,

.. math:: \\Delta w_{ij} \\leftarrow \\Delta w_{ij} - \\langle \\Delta w_{\\cdot j} \\rangle,
          \\qquad \\Delta w_{ij} \\leftarrow \\Delta w_{ij} - \\langle \\Delta w_{i \\cdot} \\rangle,

so that every neuron's summed input weight and every input's summed output
weight stay where they started (synaptic resources are redistributed, not
created): what the deciding population gains the others lose, and no neuron
runs away with ever larger weights.

Weights are signed: a negative weight stands for a path through an
inhibitory interneuron (a shortcut against Dale's law).

**Deciding.** With learning off, the population that fired most over
``eval_steps`` decides (the greedy choice; a random tied class; no spike: no
decision).

**Homeostasis.** Each neuron's threshold offset rises or falls so that the
neuron fires on about ``fire_target`` of the images. With
``decision_eta_mv`` > 0, a population's thresholds also rise by
``decision_eta_mv`` x 0.9 when it decides and fall by ``decision_eta_mv`` x
0.1 when another population does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ... import _validate as check
from ...neurons import _named_clock, _seed_brian2, connect_brian2, run_brian2

__all__ = ["PopulationParams", "PopulationReadout", "toy_features"]

V_REST_MV = -65.0
DECIDE_BY = ("first_spike", "most_spikes")
PREDICTIONS = ("confidence", "running_mean", "none")


@dataclass(frozen=True)
class PopulationParams:
    """The R-STDP output layer (units in the names; validated on construction).

    Attributes
    ----------
    n_classes, neurons_per_class : int
    steps, dt_ms : int, float
        Time steps of ``dt_ms`` per image while learning.
    eval_steps : int
        Time steps per image when deciding with learning off (more evidence, fewer
        random decisions).
    max_rate_hz : float
        Rate of an input of intensity 1.
    z_max : float
        Standardised features are clipped to ``[-z_max, z_max]`` and divided by it.
    tau_mem_ms, v_gap_mv : float
        Output neurons: membrane time constant; threshold minus rest (= reset).
    inhibition_mv : float
        Lateral inhibition between class populations.
    eta, eta_decay : float
        Learning rate (mV per pairing per output spike and unit of reward prediction
        error) of the first epoch; each later epoch's is ``eta_decay`` times the one before.
    decide_by : str
        Who decides while learning: ``"first_spike"`` (the population of the first output
        spike) or ``"most_spikes"`` (as when learning is off).
    prediction : str
        The reward prediction subtracted from the reward: ``"confidence"``,
        ``"running_mean"`` (time constant ``baseline_images`` images) or ``"none"``
        (see the module docstring).
    conserve : bool
        Keep every neuron's and every input's summed weight (zero-sum changes).
    tonic_input : bool
        One more input that fires at ``max_rate_hz`` for every image (a learned bias).
    fire_target, theta_eta_mv, decision_eta_mv : float
        Homeostasis (see the module docstring).
    confidence_power : float
        The exponent :math:`n` of the ``"confidence"`` prediction (1: the share of spikes).
    init_drive : float
        The random excitatory starting weights give an average image this many
        times the threshold gap of input.
    epochs : int
        Passes over the training features.
    """

    n_classes: int = 10
    neurons_per_class: int = 10
    steps: int = 20
    eval_steps: int = 20
    dt_ms: float = 1.0
    max_rate_hz: float = 200.0
    z_max: float = 3.0
    tau_mem_ms: float = 20.0
    v_gap_mv: float = 10.0
    inhibition_mv: float = 2.0
    eta: float = 0.1
    eta_decay: float = 1.0
    decide_by: str = "first_spike"
    prediction: str = "confidence"
    baseline_images: float = 100.0
    conserve: bool = True
    tonic_input: bool = True
    fire_target: float = 0.5
    theta_eta_mv: float = 0.05
    decision_eta_mv: float = 0.0
    competitors: float = 0.0
    confidence_power: float = 1.0
    init_drive: float = 1.5
    epochs: int = 5
    codegen_target: str = "cython"

    def __post_init__(self) -> None:
        for name in ("n_classes", "neurons_per_class", "steps", "eval_steps", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PopulationParams.{name} must be a positive integer, got {value!r}.")
        if self.n_classes < 2:
            raise ValueError(f"PopulationParams.n_classes must be at least 2, got {self.n_classes}.")
        for name in ("dt_ms", "max_rate_hz", "z_max", "tau_mem_ms", "v_gap_mv",
                     "baseline_images", "init_drive", "confidence_power"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float))
                                               and math.isfinite(value) and value > 0):
                raise ValueError(f"PopulationParams.{name} must be a finite number > 0, got {value!r}.")
        for name in ("inhibition_mv", "eta", "theta_eta_mv", "decision_eta_mv", "competitors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float))
                                               and math.isfinite(value) and value >= 0):
                raise ValueError(f"PopulationParams.{name} must be a finite number >= 0, got {value!r}.")
        for name in ("fire_target", "eta_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise ValueError(f"PopulationParams.{name} must be in (0, 1], got {value!r}.")
        for name in ("conserve", "tonic_input"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"PopulationParams.{name} must be True or False, "
                                 f"got {getattr(self, name)!r}.")
        if not isinstance(self.decide_by, str) or self.decide_by not in DECIDE_BY:
            raise ValueError(f"PopulationParams.decide_by must be one of {DECIDE_BY}, "
                             f"got {self.decide_by!r}.")
        if not isinstance(self.prediction, str) or self.prediction not in PREDICTIONS:
            raise ValueError(f"PopulationParams.prediction must be one of {PREDICTIONS}, "
                             f"got {self.prediction!r}.")
        if self.max_rate_hz * self.dt_ms / 1000.0 > 1:
            raise ValueError(f"max_rate_hz={self.max_rate_hz} x dt_ms={self.dt_ms} is more than "
                             "one spike per step; lower the rate or the step.")
        if not isinstance(self.codegen_target, str) or self.codegen_target not in ("cython", "numpy"):
            raise ValueError(f"PopulationParams.codegen_target must be 'cython' or 'numpy', got "
                             f"{self.codegen_target!r}.")

    @property
    def n_neurons(self) -> int:
        return self.n_classes * self.neurons_per_class


class PopulationReadout:
    """The output layer in Brian2 (see the module docstring).

    ``fit(features, labels)`` learns for ``epochs`` passes; ``predict(features)``
    decides with learning off. ``history`` holds, per epoch, the training
    accuracy (of the decisions made while learning), and, when ``fit`` is
    given held-out ``validation`` features, their accuracy.
    """

    def __init__(self, p: PopulationParams, n_features: int, *, seed: int) -> None:
        import brian2 as b2

        where = "PopulationReadout"
        check.instance("p", p, PopulationParams, where=where)
        check.positive_int("n_features", n_features, where=where)
        check.integer("seed", seed, low=0, where=where)
        n_syn = (2 * n_features + 1) * p.n_neurons + p.n_neurons ** 2
        # Brian2's synapses, and the numpy index grids that wire them
        check.fits_in_memory(f"an output layer for n_features={n_features} ({n_syn:,} synapses)",
                             40 * n_syn, where=where)
        self.p, self.seed, self.n_features = p, seed, int(n_features)
        self.n_in, n = 2 * self.n_features + int(p.tonic_input), p.n_neurons
        # numpy code generation runs the inhibition's clip() in a Python loop and says so
        b2.BrianLogger.suppress_name("numpy_generator")
        clock = _named_clock(p.dt_ms, "out_clock")
        # Poisson inputs (as brian2.PoissonGroup) that count their spikes of the image
        self.inputs = b2.NeuronGroup(self.n_in, "rates : Hz\nfired : 1",
                                     threshold="rand() < rates * dt", reset="fired += 1",
                                     clock=clock, name="out_inputs")
        ns = {"v_rest": V_REST_MV * b2.mV, "v_th": (V_REST_MV + p.v_gap_mv) * b2.mV,
              "tau": p.tau_mem_ms * b2.ms, "w_inh": p.inhibition_mv * b2.mV}
        self.neurons = b2.NeuronGroup(
            n, "dv/dt = (v_rest - v) / tau : volt\ntheta : volt\nn_spikes : 1\nfirst_step : 1",
            threshold="v > v_th + theta", method="exact",
            # the step of a neuron's first spike of the image (0 before it fires)
            reset="v = v_rest\nfirst_step += (t / dt - first_step) * int(n_spikes == 0)\n"
                  "n_spikes += 1",
            namespace=ns, clock=clock, name="out_neurons")
        # the eligibility: at a spike of neuron j, e_ij grows by the spikes input i has fired
        # so far in the image (counted by the input, so that an input spike costs a synapse
        # nothing beyond its effect on the potential)
        self.syn = b2.Synapses(self.inputs, self.neurons, "w : 1\nelig : 1",
                               on_pre="v_post += w * mV", on_post="elig += fired_pre",
                               clock=clock, name="out_synapses")
        pre, post = np.meshgrid(np.arange(self.n_in), np.arange(n), indexing="ij")
        # synapse i * N + j: (input, neuron)
        connect_brian2(self.syn, i=pre.ravel(), j=post.ravel())
        self._bind_arrays()
        inhibition = b2.Synapses(self.neurons, self.neurons,
                                 on_pre="v_post = clip(v_post - w_inh, v_rest, v_post)",
                                 namespace=ns, clock=clock, name="out_inhibition")
        a, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        other = (a // p.neurons_per_class != c // p.neurons_per_class).ravel()
        connect_brian2(inhibition, i=a.ravel()[other], j=c.ravel()[other])
        self.klass = np.arange(n) // p.neurons_per_class
        self.rng = np.random.default_rng([seed, 7])
        self.w: np.ndarray | None = None  # (inputs, neurons), mV
        self.theta = np.zeros(n)
        self.reward_baseline = 0.0
        self.mu = self.sd = None
        self.history: dict[str, list] = {"train_accuracy": [], "no_decision": []}

        @b2.network_operation(clock=clock, when="start", name="out_boundary")
        def boundary():
            if self._step % self._steps == 0:
                self._boundary()
            self._step += 1

        self.net = b2.Network(self.inputs, self.neurons, self.syn, inhibition, boundary)

    def _bind_arrays(self) -> None:
        """The arrays Brian2 simulates with, written in place at every image's end (setting
        them through Brian2 checks units and indices: a fifth of the run at 1,440 features);
        bound again before every run and load, in case Brian2 moved them."""
        self._w_now, self._elig_now, self._fired_now = (
            self.syn.variables["w"].get_value(), self.syn.variables["elig"].get_value(),
            self.inputs.variables["fired"].get_value())

    # --- inputs ------------------------------------------------------------------------------
    def intensities(self, features) -> np.ndarray:
        """Input intensities in [0, 1] of features ``(N, n_features)``: ``(N, 2 n_features)``
        ON then OFF, and a last column of ones for the tonic input when it is on."""
        z = np.clip((np.asarray(features, float) - self.mu) / self.sd,
                    -self.p.z_max, self.p.z_max) / self.p.z_max
        parts = [np.maximum(z, 0), np.maximum(-z, 0)]
        if self.p.tonic_input:
            parts.append(np.ones((len(z), 1)))
        return np.hstack(parts)

    def _check(self, features, labels=None) -> np.ndarray:
        try:
            f = np.asarray(features, dtype=float)
        except (TypeError, ValueError) as err:
            raise TypeError(f"features must be a numeric array (N, {self.n_features}), got "
                            f"{type(features).__name__} ({err})") from None
        if f.ndim != 2 or f.shape[1] != self.n_features or len(f) < 1:
            raise ValueError(f"features must be (N >= 1, {self.n_features}), got {f.shape}.")
        if not np.isfinite(f).all():
            raise ValueError("features must be finite (no NaN or inf).")
        if labels is not None:
            y = np.asarray(labels)
            if y.shape != (len(f),) or not np.issubdtype(y.dtype, np.integer) \
                    or y.min() < 0 or y.max() >= self.p.n_classes:
                raise ValueError(f"labels must be {len(f)} integers in [0, {self.p.n_classes}), "
                                 f"got shape {y.shape} ({y.dtype}).")
        return f

    # --- one image after another -------------------------------------------------------------
    def _boundary(self) -> None:
        """Close the image that just ended (decide, reward, learn), open the next one."""
        import brian2 as b2

        p = self.p
        if self._pos > 0:
            counts = np.asarray(self.neurons.n_spikes).copy()
            pop = np.bincount(self.klass, weights=counts, minlength=p.n_classes)
            if pop.max() == 0:
                decision = -1
            elif self._learn and p.decide_by == "first_spike":  # a random one of the first
                first = np.where(counts > 0, np.asarray(self.neurons.first_step), np.inf)
                decision = int(self.klass[np.argmin(first + 0.5 * self._ties.random(len(first)))])
            else:
                decision = int(np.argmax(pop + 1e-3 * self._ties.random(p.n_classes)))
            self._decisions.append(decision)
            self._counts.append(counts)
            if self._learn:
                self._reward(counts, decision, int(self._labels[self._pos - 1]))
        if self._pos < len(self._u):
            self.inputs.rates = self._u[self._pos] * p.max_rate_hz * b2.Hz
            self.neurons.v = V_REST_MV * b2.mV
            self.neurons.n_spikes = 0
            self.neurons.first_step = 0
            if self._learn:
                self._elig_now[:] = 0
                self._fired_now[:] = 0
        self._pos += 1

    def _reward(self, counts: np.ndarray, decision: int, label: int) -> None:
        import brian2 as b2

        p = self.p
        if decision >= 0:
            r = 1.0 if decision == label else 0.0
            delta = r - self.predicted_reward(counts, decision)
            self.reward_baseline += (r - self.reward_baseline) / p.baseline_images
            e = self._elig_now.reshape(self.n_in, p.n_neurons)
            deciders = self.klass == decision
            dw = np.zeros_like(self.w)
            dw[:, deciders] = self._eta * delta * e[:, deciders] / np.maximum(counts[deciders], 1)
            learners = deciders
            if p.competitors > 0 and counts.sum() > 0:
                # the populations that competed learn the other way, by their share of the spikes
                pop = np.bincount(self.klass, weights=counts, minlength=p.n_classes)
                share = (pop / pop.sum())[self.klass]
                others = ~deciders & (counts > 0)
                dw[:, others] = (-p.competitors * self._eta * delta * share[others]
                                 * e[:, others] / counts[others])
                learners = deciders | others
            if p.conserve:
                dw[:, learners] -= dw[:, learners].mean(axis=0, keepdims=True)
                dw -= dw.mean(axis=1, keepdims=True)
            self.w += dw
            self._w_now[:] = self.w.ravel()
            self.theta += p.decision_eta_mv * (deciders - 1.0 / p.n_classes)
        self.theta += p.theta_eta_mv * ((counts > 0) - p.fire_target)
        np.clip(self.theta, -0.9 * p.v_gap_mv, None, out=self.theta)
        self.neurons.theta = self.theta * b2.mV

    def predicted_reward(self, counts: np.ndarray, decision: int) -> float:
        """The reward the layer predicts for a decision, from its spike counts (``prediction``).

        ``"confidence"``: :math:`N'_a{}^n / \\sum_c N'_c{}^n`, the deciding population's share of
        the spikes after the first, each population's count to the power ``confidence_power``
        (``1 / n_classes`` when there was one spike);
        ``"running_mean"``: the mean of past rewards; ``"none"``: 0. The label is not used.
        """
        p = self.p
        if p.prediction == "running_mean":
            return float(self.reward_baseline)
        if p.prediction == "none":
            return 0.0
        pop = np.bincount(self.klass, weights=counts, minlength=p.n_classes)
        pop[decision] = max(pop[decision] - 1.0, 0.0)  # the spikes after the first
        if pop.sum() <= 0:
            return 1.0 / p.n_classes
        pop = pop ** p.confidence_power
        return float(pop[decision] / pop.sum())

    def _show(self, u: np.ndarray, labels, *, learn: bool, steps: int, seed: int) -> np.ndarray:
        import brian2 as b2

        self._bind_arrays()
        self._u, self._labels, self._learn, self._steps = u, labels, learn, steps
        self.syn.post.active = learn  # the eligibility only matters while learning
        self._pos, self._step, self._decisions, self._counts = 0, 0, [], []
        self._ties = np.random.default_rng([seed, 11])  # a random class among tied ones
        _seed_brian2(seed)
        # one more step: the boundary at its start closes the last image
        run_brian2(self.net, (len(u) * steps + 1) * self.p.dt_ms, self.p.codegen_target)
        self.last_counts = np.array(self._counts[:len(u)]).reshape(len(u), self.p.n_neurons)
        return np.array(self._decisions[:len(u)])

    # --- the public interface ----------------------------------------------------------------
    def fit(self, features, labels, *, validation=None, progress: bool = False) -> dict:
        """Learn from training features ``(N, n_features)``; their labels make the reward.

        Calling ``fit`` again continues from the current weights (more epochs).
        ``validation``: optional ``(features, labels)`` of held-out training images,
        scored after every epoch into ``history["validation_accuracy"]``.
        """
        from ...progress import tqdm

        f = self._check(features, labels)
        y = np.asarray(labels)
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise TypeError(f"PopulationReadout.fit: validation must be None or (features, "
                                f"labels), got {type(validation).__name__}")
            try:
                self._check(*validation)
            except ValueError as err:
                raise ValueError(f"PopulationReadout.fit: validation: {err}") from None
        check.flag("progress", progress, where="PopulationReadout.fit")
        p = self.p
        if self.w is None:  # the gain control and the random excitatory start
            self.mu, self.sd = f.mean(axis=0), f.std(axis=0) + 1e-6
            inputs = self.intensities(f).sum(axis=1).mean() * p.max_rate_hz * p.dt_ms / 1000
            per_image = max(inputs * p.steps, 1e-9)
            self.w = self.rng.uniform(0, 2 * p.init_drive * p.v_gap_mv / per_image,
                                      (self.n_in, p.n_neurons))
            self._w_now[:] = self.w.ravel()
        u = self.intensities(f)
        for _ in tqdm(range(p.epochs), disable=not progress, desc="output layer learns",
                      unit="epoch"):
            order = self.rng.permutation(len(f))
            self._eta = p.eta * p.eta_decay ** len(self.history["train_accuracy"])
            decisions = self._show(u[order], y[order], learn=True, steps=p.steps,
                                   seed=int(self.rng.integers(2**31)))
            self.history["train_accuracy"].append(float(np.mean(decisions == y[order])))
            self.history["no_decision"].append(float(np.mean(decisions < 0)))
            if validation is not None:
                pred = self.predict(validation[0])
                self.history.setdefault("validation_accuracy", []).append(
                    float(np.mean(pred == np.asarray(validation[1]))))
        return self.history

    def predict(self, features, *, seed: int = 1) -> np.ndarray:
        """Decisions for features ``(N, n_features)`` (-1: no output spike), learning off.

        Each output neuron's spike count per image is left in ``last_counts`` ``(N, neurons)``.
        """
        if self.w is None:
            raise ValueError("the output layer has not learned yet: call fit first.")
        check.integer("seed", seed, low=0, where="PopulationReadout.predict")
        f = self._check(features)
        return self._show(self.intensities(f), None, learn=False, steps=self.p.eval_steps,
                          seed=seed)

    def state_dict(self) -> dict:
        """Everything that ``fit`` changes, as arrays (for :meth:`load_state` and checkpoints)."""
        if self.w is None:
            raise ValueError("the output layer has not learned yet: call fit first.")
        import json

        return {"w": self.w, "theta": self.theta, "mu": self.mu, "sd": self.sd,
                "reward_baseline": np.array(self.reward_baseline),
                "train_accuracy": np.array(self.history["train_accuracy"]),
                "no_decision": np.array(self.history["no_decision"]),
                "validation_accuracy": np.array(self.history.get("validation_accuracy", [])),
                "rng": np.array(json.dumps(self.rng.bit_generator.state))}

    def load_state(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (of a readout with the same parameters and inputs)."""
        import json

        import brian2 as b2

        where = "PopulationReadout.load_state"
        keys = ("w", "theta", "mu", "sd", "reward_baseline", "train_accuracy", "no_decision",
                "validation_accuracy", "rng")
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"{where}: state must be a dict of arrays (state_dict gives one), got "
                            f"{type(state).__name__}")
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f"{where}: state lacks {missing} (it must come from state_dict)")
        w = np.asarray(state["w"], dtype=float)
        if w.shape != (self.n_in, self.p.n_neurons):
            raise ValueError(f"the saved weights are {w.shape}, this output layer has "
                             f"{(self.n_in, self.p.n_neurons)}.")
        check.array("state['w']", w, where=where)
        check.array("state['theta']", np.asarray(state["theta"], dtype=float),
                    shape=(self.p.n_neurons,), where=where)
        for key in ("mu", "sd"):
            check.array(f"state[{key!r}]", np.asarray(state[key], dtype=float),
                        shape=(self.n_features,), where=where)
        self.w = w.copy()
        self._bind_arrays()
        self._w_now[:] = self.w.ravel()
        self.theta = np.asarray(state["theta"], dtype=float).copy()
        self.neurons.theta = self.theta * b2.mV
        self.mu, self.sd = np.asarray(state["mu"], float), np.asarray(state["sd"], float)
        self.reward_baseline = float(state["reward_baseline"])
        self.history = {"train_accuracy": [float(a) for a in state["train_accuracy"]],
                        "no_decision": [float(a) for a in state["no_decision"]]}
        if len(state["validation_accuracy"]):
            self.history["validation_accuracy"] = [float(a) for a in state["validation_accuracy"]]
        self.rng.bit_generator.state = json.loads(str(state["rng"]))

    def weights(self) -> np.ndarray:
        """``(neurons, inputs)`` weights in mV (ON inputs first, then OFF, then the tonic input)."""
        return self.w.T.copy()


def toy_features(n: int, *, seed: int, n_classes: int = 4, per_class: int = 3
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A task that reward alone can teach: class ``c`` raises features ``c * per_class`` to
    ``(c + 1) * per_class - 1`` by 2 on top of uniform noise in [0, 1).

    Returns ``(features (n, n_classes * per_class), labels (n,))``; a linear readout
    separates the classes perfectly.
    """
    where = "toy_features"
    check.positive_int("n", n, where=where)
    check.integer("seed", seed, low=0, where=where)
    check.positive_int("n_classes", n_classes, where=where)
    check.positive_int("per_class", per_class, where=where)
    check.fits_in_memory(f"n={n} x {n_classes * per_class} features",
                         8 * n * (n_classes * per_class + 1), where=where)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    f = rng.random((n, n_classes * per_class))
    for c in range(n_classes):
        f[y == c, c * per_class:(c + 1) * per_class] += 2.0
    return f, y
