"""Brian2's compiled code built side by side (snnlib._brian2_build, neurons.brian2_target,
neurons.connect_brian2): the same modules and the same numbers as Brian2's own build, and
networks that Brian2 generates the same code for when they are built again."""

from __future__ import annotations

import gc

import numpy as np
import pytest

b2 = pytest.importorskip("brian2")
b2.BrianLogger.suppress_name("unused_brian_object")

from snnlib import neurons as nrn  # noqa: E402
from snnlib.tiers.brian_stdp import network as N  # noqa: E402
from snnlib.tiers.brian_stdp import output as O  # noqa: E402


@pytest.fixture
def empty_cache(tmp_path):
    """Brian2's Cython cache in an empty folder for this test (restored after it)."""
    previous = b2.prefs.codegen.runtime.cython.cache_dir
    b2.prefs.codegen.runtime.cython.cache_dir = str(tmp_path)
    yield tmp_path
    b2.prefs.codegen.runtime.cython.cache_dir = previous


def test_modules_built_by_workers_give_the_spikes_of_numpy_code_and_land_in_the_cache(empty_cache):
    """A LIF group (state update, threshold, reset, two monitors) compiled by the worker
    pool spikes at the same steps as Brian2's numpy code; its modules are then in Brian2's
    cache, where a second network of the same code finds them."""
    from snnlib import _brian2_build as build

    assert nrn.brian2_target("cython") == build.ParallelCythonCodeObject.class_name
    assert nrn.brian2_target("numpy") == "numpy"
    p = nrn.LIFParams()
    current = np.random.default_rng(0).uniform(0.0, 3.0, size=(300, 6))  # nA
    spikes_np, v_np = nrn.simulate_lif_brian2(current, p, codegen_target="numpy")
    assert list(empty_cache.glob("*.so")) == []
    gc.collect()  # each run's clock then gets the same name, and so the same code
    spikes_cy, v_cy = nrn.simulate_lif_brian2(current, p, codegen_target="cython")
    assert spikes_np.sum() >= 10
    np.testing.assert_array_equal(spikes_cy, spikes_np)
    np.testing.assert_allclose(v_cy, v_np, rtol=0, atol=1e-9)
    modules = sorted(empty_cache.glob("*.so"))
    assert len(modules) >= 3 and build._WORKERS is not None  # built by the workers
    assert build._WORKERS.processes
    gc.collect()
    again = nrn.simulate_lif_brian2(current, p, codegen_target="cython")
    np.testing.assert_array_equal(again[0], spikes_np)
    assert sorted(empty_cache.glob("*.so")) == modules  # nothing compiled twice


def test_module_cached_finds_brians_own_module_and_only_it(empty_cache):
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager

    from snnlib._brian2_build import module_cached

    code = "def main(_namespace):\n    return 41 + 1\n"
    assert not module_cached(code)
    assert cython_extension_manager.create_extension(code).main({}) == 42
    assert module_cached(code) and not module_cached(code.replace("41", "40"))


def test_connect_brian2_makes_the_synapses_that_connect_makes():
    g = b2.NeuronGroup(5, "v : 1", name="g_connect")
    i, j = np.array([0, 0, 3, 4, 2]), np.array([1, 4, 0, 0, 2])
    a = b2.Synapses(g, g, "w : 1", name="a_connect")
    a.connect(i=i, j=j)
    b = b2.Synapses(g, g, "w : 1", name="b_connect")
    previous = b2.prefs.codegen.target
    nrn.connect_brian2(b, i=i, j=j)
    assert b2.prefs.codegen.target == previous
    np.testing.assert_array_equal(np.asarray(b.i), np.asarray(a.i))
    np.testing.assert_array_equal(np.asarray(b.j), np.asarray(a.j))
    with pytest.raises(TypeError, match="connect_brian2: synapses must be brian2.Synapses"):
        nrn.connect_brian2(g, i=i, j=j)


def _generated_code(net) -> list[str]:
    """The code Brian2 generated for every code object of a network that has run."""
    return sorted(str(getattr(c.code, "run", "")) for obj in net.objects
                  for c in obj._code_objects)


def _tier1_params() -> N.Tier1Params:
    return N.Tier1Params(layer1=N.ConvLayerParams(n_filters=4, patch_batch=10),
                         layer2=N.ConvLayerParams(n_filters=3, field_px=3, w_sum_mv=10.0,
                                                  patch_batch=10),
                         codegen_target="numpy", features_pool=(2, 2))


def test_a_tier1_network_built_again_gets_the_same_code_while_the_first_lives():
    """Brian2 names a clock in the code it generates; every object of a tier-1 network runs
    on one clock of a fixed name, so a second network of the same layout needs no new
    compiled module (a new clock per object was named clock_1, clock_2, ...)."""
    p = _tier1_params()
    f1, _ = N.initial_layer(p, 1, seed=0)
    f2, _ = N.initial_layer(p, 2, seed=0)
    x = np.random.default_rng(0).random((1, 2, 32, 32)) * 0.5
    nets = []
    for _ in range(2):
        net = N.FrozenLayers(p, [f1, f2], [np.full(4, -8.0), np.full(3, -10.0)], batch=1)
        net.run(x, seed=1)
        nets.append(net)
    assert _generated_code(nets[0].net) == _generated_code(nets[1].net)
    assert {o.clock.name for o in nets[1].net.objects} == {"tier1_clock"}
    learners = []
    for _ in range(2):
        learner = N.ConvLearner(p, 1, seed=0)
        learner.step(np.random.default_rng(1).random((10, p.inputs1)))
        learners.append(learner)
    assert _generated_code(learners[0].net) == _generated_code(learners[1].net)
    assert {o.clock.name for o in learners[1].net.objects} == {"tier1_clock"}


def test_an_output_layer_built_again_gets_the_same_code_while_the_first_lives():
    f, y = O.toy_features(40, seed=0, n_classes=4, per_class=3)
    p = O.PopulationParams(n_classes=4, neurons_per_class=3, steps=10, eval_steps=20, epochs=1,
                           eta=0.05, codegen_target="numpy")
    readouts = []
    for _ in range(2):
        readout = O.PopulationReadout(p, f.shape[1], seed=0)
        readout.fit(f, y)
        readouts.append(readout)
    assert _generated_code(readouts[0].net) == _generated_code(readouts[1].net)
    assert {o.clock.name for o in readouts[1].net.objects} == {"out_clock"}


def test_rstdp_synapses_run_on_a_given_clock_of_their_dt_only():
    from snnlib import plasticity as P

    g = b2.NeuronGroup(2, "v : 1", threshold="v > 1", name="g_clock")
    rule = P.RSTDPParams(stdp=P.STDPParams(dt_ms=0.5))
    clock = b2.Clock(dt=0.5 * b2.ms, name="given_clock")
    syn = P.build_rstdp_synapses(g, g, rule, name="on_given_clock", clock=clock)
    assert syn.clock is clock
    with pytest.raises(ValueError, match=r"clock must be a brian2.Clock with dt = p.stdp.dt_ms"):
        P.build_rstdp_synapses(g, g, rule, name="on_wrong_clock",
                               clock=b2.Clock(dt=1.0 * b2.ms, name="wrong_clock"))
