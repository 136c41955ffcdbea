"""Max pooling in tier 3: the CNN's max pool of rates and its spiking copy
(snnlib.tiers.conversion.SpikingMaxPool), whose output sums over time to the max pool of
its inputs' sums, so that a max-pooling network converts as an average-pooling one does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from snnlib.tiers import conversion as C

from _tiny_cnn import converted_agreement, trained_like

TINY = C.ConvNetParams(widths=(4, 6), pool_after=(0, 1))
TINY_MAX = replace(TINY, pool="max")

pytestmark = pytest.mark.filterwarnings(
    "ignore:tier 3's reproducible arithmetic caps the CPU kernels:RuntimeWarning")


def _run(pool: C.SpikingMaxPool, inputs: list[torch.Tensor]) -> torch.Tensor:
    pool.reset_state()
    return torch.stack([pool(x) for x in inputs])


def test_spikes_in_give_spikes_out_whose_count_is_the_max_of_the_counts():
    g = torch.Generator().manual_seed(0)
    rates = torch.rand(3, 5, 8, 8, generator=g)
    spikes = [(torch.rand(rates.shape, generator=g) < rates).float() for _ in range(40)]
    out = _run(C.SpikingMaxPool(2), spikes)
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # a spike train again
    counts = torch.stack(spikes).sum(0)
    torch.testing.assert_close(out.sum(0), F.max_pool2d(counts, 2))
    # after any number of steps, not only the last: the running count is the running max
    torch.testing.assert_close(out[:7].sum(0), F.max_pool2d(torch.stack(spikes[:7]).sum(0), 2))
    # the events it passes on are its spike map
    pool = C.SpikingMaxPool(2)
    _run(pool, spikes)
    torch.testing.assert_close(pool.spike_map, out.abs().sum(dim=(0, 1, 2)))


def test_signed_spikes_and_currents_sum_to_the_max_of_their_sums():
    g = torch.Generator().manual_seed(1)
    signed = [torch.randint(-1, 2, (2, 3, 6, 6), generator=g).float() for _ in range(30)]
    out = _run(C.SpikingMaxPool(2), signed)
    assert set(out.unique().tolist()) <= {-1.0, 0.0, 1.0}
    torch.testing.assert_close(out.sum(0), F.max_pool2d(torch.stack(signed).sum(0), 2))
    currents = [torch.randn(2, 3, 9, 9, generator=g) for _ in range(25)]
    out = _run(C.SpikingMaxPool(3), currents)
    assert out.shape[-2:] == (3, 3)
    torch.testing.assert_close(out.sum(0), F.max_pool2d(torch.stack(currents).sum(0), 3),
                               atol=1e-5, rtol=1e-5)


def test_bursts_in_give_bursts_out_counted_as_their_spikes():
    """Behind neurons firing up to 4 spikes of 1/4 a step, the pool's output sums to the max
    of the inputs' sums and passes on at most one a step, and each 1/4 of it is an event."""
    g = torch.Generator().manual_seed(2)
    bursts = [torch.randint(0, 5, (2, 3, 6, 6), generator=g).float() / 4 for _ in range(20)]
    pool = C.SpikingMaxPool(2, burst=4)
    out = _run(pool, bursts)
    assert set((4 * out).unique().tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    torch.testing.assert_close(out.sum(0), F.max_pool2d(torch.stack(bursts).sum(0), 2))
    torch.testing.assert_close(pool.spike_map, 4 * out.abs().sum(dim=(0, 1, 2)))


def test_a_burst_network_is_simulated_with_burst_neurons_and_pools():
    """simulate(burst=2) runs every activation as IFNeurons(burst=2): on a one-layer network
    with analog input, the output layer's sum after T steps is its weights times the
    staircase of 2 T levels of the layer's currents; the bursts count as events."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 16 * 16, 10))
    x = torch.rand(6, 3, 32, 32)
    y = [0, 1, 2, 3, 4, 5]
    plain = C.simulate(net, x, y, steps=[4], v0=0.5)
    burst = C.simulate(net, x, y, steps=[4], v0=0.5, burst=2)
    with torch.no_grad():
        z = net[0](x)
        staircase = torch.clamp(torch.floor(z * 8 + 0.5), 0, 8) / 8
        logits = net[4](net[3](F.max_pool2d(staircase, 2)))
    np.testing.assert_array_equal(burst["predictions"][4], logits.argmax(1).numpy())
    # every spike of a burst is an event: the layer fires 8 x the staircase's value in spikes
    events = float(8 * staircase.sum()) / len(x)
    assert burst["spikes_per_image"][0] == pytest.approx(events, rel=1e-4)
    assert burst["spikes_per_image"][0] > plain["spikes_per_image"][0]


def test_the_pool_refuses_a_new_batch_without_a_reset_and_odd_pools():
    pool = C.SpikingMaxPool(2)
    pool(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="reset_state"):
        pool(torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match="kernel_size"):
        C.SpikingMaxPool(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, stride=1),
                        nn.Flatten(), nn.Linear(2 * 31 * 31, 10))
    with pytest.raises(ValueError, match=r"net\[2\].*stride"):
        C.simulate(net, torch.rand(2, 3, 32, 32), [0, 1], steps=[2])


def test_params_choose_the_pool_and_max_pooling_comes_after_the_activation():
    net = C.ConvNet(TINY_MAX)
    kinds = [type(m).__name__ for m in net.features]
    assert kinds[:5] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d"]
    assert not any(isinstance(m, nn.AvgPool2d) for m in net.features)
    with pytest.raises(ValueError, match="pool must be"):
        C.ConvNetParams(pool="min")
    with pytest.raises(ValueError, match="bn_scale=False"):
        C.ConvNetParams(pool="max", pool_first=True)
    # folding is exact, and the max pool stays
    model = trained_like(TINY_MAX)
    folded = C.fold_batchnorm(model)
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)
    assert sum(isinstance(m, nn.MaxPool2d) for m in folded) == 2


def test_a_max_pooling_network_converts_and_counts_the_spikes_the_pool_passes():
    x = torch.rand(200, 3, 32, 32)
    out, normed, _ = converted_agreement(C.fold_batchnorm(trained_like(TINY_MAX, seed=1)), x,
                                         [8, 256, 1024])
    # the CNN's decisions spread over the classes and sit close to each other, so agreement
    # needs many steps (an average-pooling twin of this net agrees on 85% at T = 256)
    acc = out["accuracy"]
    assert acc[8] < acc[256] < acc[1024] and acc[1024] >= 0.85
    assert out["neurons"] == [4 * 32 * 32, 6 * 16 * 16]
    first, second = out["pool_maps"]
    assert first.shape == (16, 16) and second.shape == (8, 8)
    # the pool passes at most the spikes of its most active input: fewer than it receives
    assert 0 < first.sum() < out["spike_maps"][0].sum()
    # the next layer's accumulates come from what the pool passes, through its 3 x 3 synapses
    conv = normed[3]
    fan = torch.autograd.functional.jacobian(
        lambda v: F.conv2d(v, torch.ones_like(conv.weight), padding=1).sum(),
        torch.ones(1, 4, 16, 16))[0, 0]
    ops = out["synaptic_ops_per_image"]
    assert ops["per_layer_accumulates"][0] == pytest.approx(float((first * fan.numpy()).sum()),
                                                            rel=1e-5)
    with pytest.raises(ValueError, match="pool_maps"):
        C.synaptic_operations(normed, [torch.as_tensor(m) for m in out["spike_maps"]], 256)


def test_with_every_neuron_spiking_once_a_max_pool_passes_a_quarter_of_the_spikes():
    """An average pool's input spike crosses the next layer's synapses of its pooled position
    (sum pooling's fan-out); when all four inputs of a max pool spike once, it passes one
    spike: a quarter of the accumulates."""
    nets = {kind: C.fold_batchnorm(trained_like(replace(TINY, pool=kind), seed=2))
            for kind in ("avg", "max")}
    ones = [torch.full((32, 32), 4.0), torch.full((16, 16), 6.0)]
    avg = C.synaptic_operations(nets["avg"], ones, steps=1)
    pooled = [torch.full((16, 16), 4.0), torch.full((8, 8), 6.0)]
    mx = C.synaptic_operations(nets["max"], ones, steps=1, pool_maps=pooled)
    assert mx["per_layer_accumulates"] == pytest.approx([a / 4 for a in avg["per_layer_accumulates"]])
    assert mx["cnn_multiply_accumulates"] == avg["cnn_multiply_accumulates"]


def test_the_output_layer_gets_exactly_the_max_pool_of_the_first_layers_counts(tmp_path):
    """Constant input: a first-layer IF neuron (v0 = 1/2) fires n = clip(floor(T z + 1/2), 0, T)
    times in T steps; the pool passes max n of each window, so the output layer's summed input
    is W maxpool(n) + T b exactly, whatever order the spikes came in (in parts too)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(5 * 16 * 16, 10))
    with torch.no_grad():
        net[0].weight.uniform_(-0.3, 0.3)
        net[0].bias.uniform_(-0.2, 0.4)
        net[4].weight.uniform_(-1.0, 1.0)
        net[4].bias.uniform_(-1.0, 1.0)
    images = torch.rand(120, 3, 32, 32)
    labels = np.zeros(120, dtype=int)
    out = C.simulate(net, images, labels, steps=[3, 5], v0=0.5)
    parts = C.simulate_parts(net, images, labels, steps=[3, 5], v0=0.5, folder=tmp_path,
                             part_images=50, progress=False)
    with torch.no_grad():
        z = net[0](images)
        for t in (3, 5):
            n = torch.clamp(torch.floor(t * z + 0.5), 0, t)
            expected = net[4](F.max_pool2d(n, 2).flatten(1)) + (t - 1) * net[4].bias
            assert np.array_equal(out["predictions"][t], expected.argmax(1).numpy())
            assert np.array_equal(parts["predictions"][t], out["predictions"][t])
        np.testing.assert_allclose(parts["pool_maps"][0], out["pool_maps"][0], rtol=1e-6)
        assert len(set(expected.argmax(1).tolist())) > 3, "vacuous: the network gives one class"
        # the pool's events: the max of each window's counts after T = 5 steps
        torch.testing.assert_close(torch.as_tensor(out["pool_maps"][0]),
                                   F.max_pool2d(n, 2).sum(dim=(0, 1)) / len(images))
    np.testing.assert_allclose(parts["synaptic_ops_per_image"]["per_layer_accumulates"],
                               out["synaptic_ops_per_image"]["per_layer_accumulates"], rtol=1e-5)


def test_airbench_order_max_pools_the_currents_and_folds_and_converts():
    """Pool straight after the convolution, batch norm without a learned scale: the batch norm
    folds through the max pool (positive scales), and the spiking copy max-pools the summed
    currents, so that it approaches its CNN as T grows."""
    params = replace(TINY_MAX, pool_first=True, bn_scale=False)
    model = trained_like(params, seed=1)
    for m in model.features:
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1.0)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds[:4] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    folded = C.fold_batchnorm(model)
    x = torch.rand(200, 3, 32, 32)
    torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)
    out, _, _ = converted_agreement(folded, x, [1, 256])
    assert out["accuracy"][256] >= 0.9
    assert out["pool_maps"] == [None, None]  # no max pool between spikes and synapses
    # a negative scale cannot fold through a max pool
    bn = next(m for m in model.features if isinstance(m, nn.BatchNorm2d))
    bn.weight.data[0] = -1.0
    with pytest.raises(ValueError, match="max pool"):
        C.fold_batchnorm(model)


def test_the_chapters_figure_draws_the_pool_following_its_most_active_input():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snnlib.tiers.conversion import plots

    fig = plots.max_pool_spikes(rates=(0.2, 0.45, 0.5, 0.3), steps=40, seed=1)
    counts = [line.get_ydata() for line in fig.axes[1].get_lines()]
    inputs, output = np.stack(counts[:4]), counts[4]
    # at every step the pool's running count is the largest of the inputs' running counts
    np.testing.assert_array_equal(output, inputs.max(axis=0))
    assert output[-1] > 0
    plt.close(fig)
    with pytest.raises(ValueError, match="rates"):
        plots.max_pool_spikes(rates=(0.2, 0.5))
    with pytest.raises(ValueError, match="rates"):
        plots.max_pool_spikes(rates=(0.2, 0.5, 1.5, 0.1))
    with pytest.raises(ValueError, match="steps"):
        plots.max_pool_spikes(steps=0)


def test_a_global_max_pool_converts_over_the_whole_map():
    params = replace(TINY_MAX, widths=(4, 6, 8), pool_after=(0, 1, 2), global_pool=True,
                     global_max=True)
    model = trained_like(params, seed=5)
    assert isinstance(model.features[-3], nn.MaxPool2d) and model.features[-3].kernel_size == 4
    x = torch.rand(200, 3, 32, 32)
    out, _, _ = converted_agreement(C.fold_batchnorm(model), x, [8, 256, 1024])
    acc = out["accuracy"]  # deeper, and close decisions: slower than the others (its average-
    assert acc[8] < acc[256] < acc[1024] and acc[1024] >= 0.7  # pooling twin: 66% at 1,024)
    # the last layer's spikes reach the linear layer through its pool and the global pool:
    # the second one's spikes, one position
    assert out["pool_maps"][-1].shape == (1, 1)
    assert out["synaptic_ops_per_image"]["per_layer_accumulates"][-1] == pytest.approx(
        10 * float(out["pool_maps"][-1].sum()), rel=1e-5)
    with pytest.raises(ValueError, match="global_max"):
        replace(params, pool="avg")
    with pytest.raises(ValueError, match="global_max"):
        replace(params, global_pool=False)
    assert "global max pooling" in C.record.describe_cnn(__import__("dataclasses").asdict(params))


def test_bfloat16_currents_lose_no_charge_over_many_steps():
    """A pool before the batch norm passes currents; rounded to bfloat16 each step, what it
    passed is made up for at the next step, so the charge stays within one rounding."""
    g = torch.Generator().manual_seed(4)
    currents = [torch.rand(2, 3, 4, 4, generator=g).to(torch.bfloat16) for _ in range(300)]
    out = _run(C.SpikingMaxPool(2), currents)
    assert out.dtype == torch.bfloat16
    expected = F.max_pool2d(torch.stack([c.float() for c in currents]).sum(0), 2)
    err = (out.float().sum(0) - expected).abs().max()
    assert float(err) <= 2.0 ** -7, float(err)  # one rounding of a step's current, not 300


def test_an_average_and_a_max_pooling_net_with_the_same_weights_keep_apart_caches(tmp_path):
    torch.manual_seed(0)
    conv, lin = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 16 * 16, 10)
    nets = {kind: nn.Sequential(conv, nn.ReLU(), pool, nn.Flatten(), lin)
            for kind, pool in (("avg", nn.AvgPool2d(2)), ("max", nn.MaxPool2d(2)))}
    x = torch.rand(20, 3, 32, 32)
    labels = np.zeros(20, dtype=int)
    for kind in ("avg", "max"):  # the same folder: the second must not read the first's parts
        parts = C.simulate_parts(nets[kind], x, labels, steps=[8], folder=tmp_path,
                                 part_images=10, progress=False)
        whole = C.simulate(nets[kind], x, labels, steps=[8])
        assert np.array_equal(parts["predictions"][8], whole["predictions"][8])
    assert not np.array_equal(C.simulate(nets["avg"], x, labels, steps=[8])["predictions"][8],
                              whole["predictions"][8]), "vacuous: both nets decide alike"
