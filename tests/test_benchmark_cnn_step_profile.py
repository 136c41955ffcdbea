"""benchmarks/cnn_step_profile.py: the convolution multiply-accumulates behind its TFLOP/s."""

import importlib.util
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cnn_step_profile",
                                               ROOT / "benchmarks" / "cnn_step_profile.py")
step_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_profile)


def test_conv_macs_are_output_positions_times_fan_in():
    # 32 x 32 x 5 outputs of 3 x 3 x 3 inputs; then 16 x 16 x 6 outputs of (5 / 1) x 2 x 2
    # (valid padding, stride 2: (32 - 2) / 2 + 1 = 16), then a grouped 1 x 1 convolution:
    # 16 x 16 x 4 outputs of 6 / 2 inputs each
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(5, 6, 2, stride=2), nn.Conv2d(6, 4, 1, groups=2),
                        nn.Flatten(), nn.Linear(4 * 16 * 16, 10))
    total, first = step_profile.conv_macs_per_image(net)
    assert first == 32 * 32 * 5 * 3 * 9
    assert total == first + 16 * 16 * 6 * 5 * 4 + 16 * 16 * 4 * 3
    assert net.training  # handed back in its mode


def test_conv_macs_of_the_full_profiles_cnn():
    from snnlib import profiles
    from snnlib.tiers.conversion import cnn
    from snnlib.tiers.conversion.run import params_for_profile

    net, _ = params_for_profile(profiles.get_profile("full"))
    model = cnn.ConvNet(net).eval()
    total, first = step_profile.conv_macs_per_image(model.features)
    # whitening 2 x 2 (no padding): 31 x 31 x 24 of 12; then 31 (64 of 24 x 9), pooled to 15:
    # 15 (64 of 64 x 9), 15 (256 of 64 x 9), pooled to 7: 7 (256 of 256 x 9) twice, pooled
    # to 3: 3 (256 of 256 x 9)
    expected = [31 * 31 * 24 * 12, 31 * 31 * 64 * 24 * 9, 15 * 15 * 64 * 64 * 9,
                15 * 15 * 256 * 64 * 9, 7 * 7 * 256 * 256 * 9, 7 * 7 * 256 * 256 * 9,
                3 * 3 * 256 * 256 * 9]
    assert first == expected[0]
    assert total == sum(expected)
    assert not model.training
    assert torch.is_grad_enabled()
