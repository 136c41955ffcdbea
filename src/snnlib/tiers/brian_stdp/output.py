"""Tier 1, the output layer for the convolutional network: class populations that learn by R-STDP (Brian2).

**Input.** The hidden layers' pooled spike counts of an image
(:func:`.network.features`) drive Poisson inputs. Each feature is standardised
with the training images' mean and spread (a gain control) and split into an
ON and an OFF input, :math:`u^+ = [z]_+ / z_{max}` and
:math:`u^- = [-z]_+ / z_{max}`, which fire at ``u x max_rate_hz``.

**Output.** ``neurons_per_class`` LIF neurons per class. A spike of a class-``c``
neuron lowers the potential of every neuron of the other classes by
``inhibition_mv`` (lateral inhibition between class populations). The decision
is the population that fired most (a random tied class; no spike: no decision).

**Learning** (reward-modulated STDP; Izhikevich 2007, Florian 2007). Images
are shown one after another in one Brian2 run. Every input-to-output synapse
keeps an eligibility trace :math:`e_{ij}` of pre-before-post pairings
(:func:`snnlib.plasticity.build_rstdp_synapses`; the traces outlast an
image). At the end of an image a reward arrives: :math:`r = +1` for a right
decision, :math:`-1` for a wrong one. With ``baseline`` on, the running mean
of past rewards :math:`b` is subtracted; :math:`b` does not see the current
image's label. Only the deciding population's synapses change (the reward is
delivered to it alone):

.. math:: \\Delta w_{ij} = \\eta\\, (r - b)\\, \\big(e_{ij} - n_j\\, m_i\\big),
          \\qquad m_i \\leftarrow (1 - \\beta)\\, m_i
          + \\beta\\, \\frac{\\sum_j e_{ij}}{\\sum_j n_j}.

Here :math:`n_j` is neuron ``j``'s spike count and :math:`m_i` is input ``i``'s
running mean pairing per output spike. This is a heterosynaptic term: an input
that pairs with every output spike, whatever the image, carries no class
information and gains nothing.

Weights are signed: a negative weight stands for a path through an
inhibitory interneuron (a shortcut against Dale's law).

**Homeostasis.** Each neuron's threshold offset rises or falls so that the
neuron fires on about ``fire_target`` of the images. A population's
thresholds also rise by ``decision_eta_mv`` x 0.9 when it decides, and fall
by ``decision_eta_mv`` x 0.1 when another population does. So each class
decides about a tenth of the time, and no population takes every decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PopulationParams", "PopulationReadout", "toy_features"]

V_REST_MV = -65.0


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
        Learning rate (mV per pairing and unit of reward) of the first epoch; each
        later epoch's is ``eta_decay`` times the one before.
    baseline : bool
        Subtract the running mean reward (time constant ``baseline_images`` images).
    fire_target, theta_eta_mv, decision_eta_mv, centre_beta : float
        Homeostasis (see the module docstring) and the rate of the heterosynaptic mean.
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
    eta: float = 0.003
    eta_decay: float = 1.0
    baseline: bool = False
    baseline_images: float = 100.0
    fire_target: float = 0.2
    theta_eta_mv: float = 0.05
    decision_eta_mv: float = 1.0
    centre_beta: float = 0.01
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
                     "baseline_images", "init_drive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float))
                                               and math.isfinite(value) and value > 0):
                raise ValueError(f"PopulationParams.{name} must be a finite number > 0, got {value!r}.")
        for name in ("inhibition_mv", "eta", "theta_eta_mv", "decision_eta_mv"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float))
                                               and math.isfinite(value) and value >= 0):
                raise ValueError(f"PopulationParams.{name} must be a finite number >= 0, got {value!r}.")
        for name in ("fire_target", "centre_beta", "eta_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise ValueError(f"PopulationParams.{name} must be in (0, 1], got {value!r}.")
        if not isinstance(self.baseline, bool):
            raise ValueError(f"PopulationParams.baseline must be True or False, got {self.baseline!r}.")
        if self.max_rate_hz * self.dt_ms / 1000.0 > 1:
            raise ValueError(f"max_rate_hz={self.max_rate_hz} x dt_ms={self.dt_ms} is more than "
                             "one spike per step; lower the rate or the step.")
        if self.codegen_target not in ("cython", "numpy"):
            raise ValueError(f"codegen_target must be 'cython' or 'numpy', got "
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

        from ...plasticity import RSTDPParams, STDPParams, build_rstdp_synapses

        if not isinstance(n_features, (int, np.integer)) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}.")
        self.p, self.seed, self.n_features = p, seed, int(n_features)
        self.n_in, n = 2 * self.n_features, p.n_neurons
        b2.prefs.codegen.target = p.codegen_target
        # numpy code generation runs the inhibition's clip() in a Python loop and says so
        b2.BrianLogger.suppress_name("numpy_generator")
        dt = p.dt_ms * b2.ms
        self.inputs = b2.PoissonGroup(self.n_in, rates=0 * b2.Hz, dt=dt, name="out_inputs")
        ns = {"v_rest": V_REST_MV * b2.mV, "v_th": (V_REST_MV + p.v_gap_mv) * b2.mV,
              "tau": p.tau_mem_ms * b2.ms, "w_inh": p.inhibition_mv * b2.mV}
        self.neurons = b2.NeuronGroup(
            n, "dv/dt = (v_rest - v) / tau : volt\ntheta : volt\nn_spikes : 1",
            threshold="v > v_th + theta", reset="v = v_rest\nn_spikes += 1", method="exact",
            namespace=ns, dt=dt, name="out_neurons")
        long_ms = 1e6  # the traces outlast an image; they are cleared between images
        rule = RSTDPParams(stdp=STDPParams(a_plus=1.0, a_minus=0.0, tau_plus_ms=long_ms,
                                           tau_minus_ms=long_ms, w_min=-1e3, w_max=1e3,
                                           dt_ms=p.dt_ms), tau_elig_ms=long_ms)
        self.syn = build_rstdp_synapses(self.inputs, self.neurons, rule,
                                        on_pre="v_post += w * mV", name="out_synapses")
        pre, post = np.meshgrid(np.arange(self.n_in), np.arange(n), indexing="ij")
        self.syn.connect(i=pre.ravel(), j=post.ravel())  # synapse i * N + j: (input, neuron)
        inhibition = b2.Synapses(self.neurons, self.neurons,
                                 on_pre="v_post = clip(v_post - w_inh, v_rest, v_post)",
                                 namespace=ns, dt=dt, name="out_inhibition")
        a, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        other = (a // p.neurons_per_class != c // p.neurons_per_class).ravel()
        inhibition.connect(i=a.ravel()[other], j=c.ravel()[other])
        self.klass = np.arange(n) // p.neurons_per_class
        self.rng = np.random.default_rng([seed, 7])
        self.w: np.ndarray | None = None  # (inputs, neurons), mV
        self.theta = np.zeros(n)
        self.m = np.zeros(self.n_in)
        self.reward_baseline = 0.0
        self.mu = self.sd = None
        self.history: dict[str, list] = {"train_accuracy": [], "no_decision": []}

        @b2.network_operation(dt=dt, when="start", name="out_boundary")
        def boundary():
            if self._step % self._steps == 0:
                self._boundary()
            self._step += 1

        self.net = b2.Network(self.inputs, self.neurons, self.syn, inhibition, boundary)

    # --- inputs ------------------------------------------------------------------------------
    def intensities(self, features) -> np.ndarray:
        """ON/OFF input intensities in [0, 1], ``(N, 2 n_features)``, of features ``(N, n_features)``."""
        z = np.clip((np.asarray(features, float) - self.mu) / self.sd,
                    -self.p.z_max, self.p.z_max) / self.p.z_max
        return np.hstack([np.maximum(z, 0), np.maximum(-z, 0)])

    def _check(self, features, labels=None) -> np.ndarray:
        f = np.asarray(features, dtype=float)
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
            decision = (int(np.argmax(pop + 1e-3 * self._ties.random(p.n_classes)))
                        if pop.max() > 0 else -1)
            self._decisions.append(decision)
            self._counts.append(counts)
            if self._learn:
                self._reward(counts, decision, int(self._labels[self._pos - 1]))
        if self._pos < len(self._u):
            self.inputs.rates = self._u[self._pos] * p.max_rate_hz * b2.Hz
            self.neurons.v = V_REST_MV * b2.mV
            self.neurons.n_spikes = 0
            if self._learn:
                self.syn.elig = 0
                self.syn.pre_trace = 0
                self.syn.post_trace = 0
        self._pos += 1

    def _reward(self, counts: np.ndarray, decision: int, label: int) -> None:
        import brian2 as b2

        p = self.p
        if decision >= 0:
            r = 1.0 if decision == label else -1.0
            delta = r - self.reward_baseline if p.baseline else r
            self.reward_baseline += (r - self.reward_baseline) / p.baseline_images
            e = np.asarray(self.syn.elig).reshape(self.n_in, p.n_neurons)
            if counts.sum() > 0:
                self.m += p.centre_beta * (e.sum(axis=1) / counts.sum() - self.m)
            deciders = self.klass == decision
            self.w[:, deciders] += self._eta * delta * (e[:, deciders]
                                                    - self.m[:, None] * counts[deciders][None, :])
            self.syn.w = self.w.ravel()
            self.theta += p.decision_eta_mv * (deciders - 1.0 / p.n_classes)
        self.theta += p.theta_eta_mv * ((counts > 0) - p.fire_target)
        np.clip(self.theta, -0.9 * p.v_gap_mv, None, out=self.theta)
        self.neurons.theta = self.theta * b2.mV

    def _show(self, u: np.ndarray, labels, *, learn: bool, steps: int, seed: int) -> np.ndarray:
        import brian2 as b2

        self._u, self._labels, self._learn, self._steps = u, labels, learn, steps
        self._pos, self._step, self._decisions, self._counts = 0, 0, [], []
        self._ties = np.random.default_rng([seed, 11])  # a random class among tied ones
        b2.seed(int(seed))
        # one more step: the boundary at its start closes the last image
        self.net.run((len(u) * steps + 1) * self.p.dt_ms * b2.ms)
        self.last_counts = np.array(self._counts[:len(u)]).reshape(len(u), self.p.n_neurons)
        return np.array(self._decisions[:len(u)])

    # --- the public interface ----------------------------------------------------------------
    def fit(self, features, labels, *, validation=None, progress: bool = False) -> dict:
        """Learn from training features ``(N, n_features)``; their labels make the reward.

        Calling ``fit`` again continues from the current weights (more epochs).
        ``validation``: optional ``(features, labels)`` of held-out training images,
        scored after every epoch into ``history["validation_accuracy"]``.
        """
        from tqdm.auto import tqdm

        f = self._check(features, labels)
        y = np.asarray(labels)
        p = self.p
        if self.w is None:  # the gain control and the random excitatory start
            self.mu, self.sd = f.mean(axis=0), f.std(axis=0) + 1e-6
            inputs = self.intensities(f).sum(axis=1).mean() * p.max_rate_hz * p.dt_ms / 1000
            per_image = max(inputs * p.steps, 1e-9)
            self.w = self.rng.uniform(0, 2 * p.init_drive * p.v_gap_mv / per_image,
                                      (self.n_in, p.n_neurons))
            self.syn.w = self.w.ravel()
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
        f = self._check(features)
        return self._show(self.intensities(f), None, learn=False, steps=self.p.eval_steps,
                          seed=seed)

    def state_dict(self) -> dict:
        """Everything that ``fit`` changes, as arrays (for :meth:`load_state` and checkpoints)."""
        if self.w is None:
            raise ValueError("the output layer has not learned yet: call fit first.")
        import json

        return {"w": self.w, "theta": self.theta, "m": self.m, "mu": self.mu, "sd": self.sd,
                "reward_baseline": np.array(self.reward_baseline),
                "train_accuracy": np.array(self.history["train_accuracy"]),
                "no_decision": np.array(self.history["no_decision"]),
                "validation_accuracy": np.array(self.history.get("validation_accuracy", [])),
                "rng": np.array(json.dumps(self.rng.bit_generator.state))}

    def load_state(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (of a readout with the same parameters and inputs)."""
        import json

        import brian2 as b2

        w = np.asarray(state["w"], dtype=float)
        if w.shape != (self.n_in, self.p.n_neurons):
            raise ValueError(f"the saved weights are {w.shape}, this output layer has "
                             f"{(self.n_in, self.p.n_neurons)}.")
        self.w = w.copy()
        self.syn.w = self.w.ravel()
        self.theta = np.asarray(state["theta"], dtype=float).copy()
        self.neurons.theta = self.theta * b2.mV
        self.m = np.asarray(state["m"], dtype=float).copy()
        self.mu, self.sd = np.asarray(state["mu"], float), np.asarray(state["sd"], float)
        self.reward_baseline = float(state["reward_baseline"])
        self.history = {"train_accuracy": [float(a) for a in state["train_accuracy"]],
                        "no_decision": [float(a) for a in state["no_decision"]]}
        if len(state["validation_accuracy"]):
            self.history["validation_accuracy"] = [float(a) for a in state["validation_accuracy"]]
        self.rng.bit_generator.state = json.loads(str(state["rng"]))

    def weights(self) -> np.ndarray:
        """``(neurons, inputs)`` weights in mV (ON inputs first, then OFF)."""
        return self.w.T.copy()


def toy_features(n: int, *, seed: int, n_classes: int = 4, per_class: int = 3
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A task that reward alone can teach: class ``c`` raises features ``c * per_class`` to
    ``(c + 1) * per_class - 1`` by 2 on top of uniform noise in [0, 1).

    Returns ``(features (n, n_classes * per_class), labels (n,))``; a linear readout
    separates the classes perfectly.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    f = rng.random((n, n_classes * per_class))
    for c in range(n_classes):
        f[y == c, c * per_class:(c + 1) * per_class] += 2.0
    return f, y
