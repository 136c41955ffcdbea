"""benchmarks/peer_conversion.py: its SpikingJelly copies, how it steps them, and its refusal
without SpikingJelly (which the project does not install)."""

import sys
import types

import pytest
import torch

from _benchmarks import load_benchmark


@pytest.fixture
def peer(monkeypatch):
    return load_benchmark("peer_conversion", monkeypatch)


def test_each_mode_is_tried_layer_wise_and_channel_wise(peer):
    variants = peer.peer_variants(["99.9%", "Max"])
    assert [name for name, _ in variants] == [
        "SpikingJelly, 99.9%, layer-wise",
        "SpikingJelly, 99.9%, channel-wise, half threshold, pool before spikes",
        "SpikingJelly, Max, layer-wise",
        "SpikingJelly, Max, channel-wise, half threshold, pool before spikes"]
    assert variants[0][1] == {"mode": "99.9%"}
    assert variants[3][1] == {"mode": "Max", "channel_wise": True, "half_threshold": True,
                              "pre_spike_maxpool": True}


class _Clocked(torch.nn.Module):
    """A stand-in for a converted network: for its first two steps after a reset it votes for
    class 0, then for class 1."""

    def __init__(self):
        super().__init__()
        self.t = 0

    def forward(self, x):
        self.t += 1
        out = torch.zeros(len(x), 3)
        out[:, 0 if self.t <= 2 else 1] = 1.0
        return out


def test_the_peer_is_scored_on_its_outputs_summed_from_a_reset(peer, monkeypatch):
    resets = []

    def reset_net(net):
        resets.append(net.t)
        net.t = 0

    functional = types.ModuleType("spikingjelly.activation_based.functional")
    functional.reset_net = reset_net
    package = types.ModuleType("spikingjelly.activation_based")
    package.functional = functional
    monkeypatch.setitem(sys.modules, "spikingjelly", types.ModuleType("spikingjelly"))
    monkeypatch.setitem(sys.modules, "spikingjelly.activation_based", package)
    monkeypatch.setitem(sys.modules, "spikingjelly.activation_based.functional", functional)
    labels = torch.ones(150, dtype=torch.long)
    res = peer.run_peer(_Clocked(), torch.zeros(150, 3, 4, 4), labels, [2, 4, 5])
    # sums after T steps: class 0 has min(T, 2), class 1 has T - 2; a tie goes to class 0
    assert res["accuracy"] == {2: 0.0, 4: 0.0, 5: 1.0}
    assert resets == [0, 5]  # one reset before each batch of 100 (the second after 5 steps)
    assert res["image_steps_per_s"] == pytest.approx(150 * 5 / res["wall_s"])


def test_without_spikingjelly_it_says_how_to_install_it(peer, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "spikingjelly", None)  # import fails
    monkeypatch.setattr(sys, "argv", ["peer_conversion.py", "--checkpoint", "x.pt"])
    with pytest.raises(SystemExit) as stop:
        peer.main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "SpikingJelly 2.0 is needed" in err
    assert 'pip install --no-deps spikingjelly==2.0.0 "loguru>=0.7,<1"' in err


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0", "4"], "--steps must be positive"),
    (["--percentiles", "0"], "--percentiles must lie in"),
    (["--channel-percentiles", "101"], "--channel-percentiles must lie in"),
    (["--append", "r.json"], "--append and --name go together"),
])
def test_bad_arguments_are_refused_before_anything_runs(peer, monkeypatch, capsys, argv,
                                                        message):
    monkeypatch.setattr(sys, "argv", ["peer_conversion.py", "--checkpoint", "x.pt", *argv])
    with pytest.raises(SystemExit) as stop:
        peer.main()
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
