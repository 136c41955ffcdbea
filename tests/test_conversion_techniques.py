"""Tier 3's fast-training techniques (snnlib.tiers.conversion.cnn): the whitening layer
whitens, the derandomised flips alternate, Lookahead averages as its formula says, test-time
augmentation averages the six views, training with all of them resumes to the same weights,
a distilled network learns from its teacher, and a network with a whitening layer and global
pooling still converts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from _tiny_cnn import class_images as _class_images

from snnlib import runs
from snnlib.tiers import conversion as C
from snnlib.tiers.conversion import cnn

pytestmark = pytest.mark.filterwarnings(
    "ignore:tier 3's reproducible arithmetic caps the CPU kernels:RuntimeWarning")

STEM = C.ConvNetParams(widths=(6, 8), pool_after=(0, 1), whitening_px=2, global_pool=True,
                       identity_init=True)


def _smooth_images(n: int, seed: int = 0) -> torch.Tensor:
    """Float images whose neighbouring pixels and colours are correlated."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 36, 36, generator=g)
    x = nn.functional.avg_pool2d(x, 5, stride=1)  # (n, 3, 32, 32), spatially correlated
    x = 0.6 * x + 0.4 * x.mean(1, keepdim=True)  # colours correlated
    return (x - x.min()) / (x.max() - x.min())


def test_params_of_the_techniques_are_validated():
    with pytest.raises(ValueError, match="whitening_px"):
        C.ConvNetParams(whitening_px=0)
    with pytest.raises(ValueError, match="whitening_px"):
        C.ConvNetParams(whitening_px=True)
    with pytest.raises(TypeError, match="global_pool"):
        C.ConvNetParams(global_pool="yes")
    with pytest.raises(ValueError, match="no position"):
        C.ConvNetParams(widths=(4,) * 5, pool_after=(0, 1, 2, 3, 4), whitening_px=2)  # 31 -> 0
    with pytest.raises(ValueError, match="translate_px"):
        C.TrainParams(translate_px=17)
    with pytest.raises(ValueError, match="bias_lr_scale"):
        C.TrainParams(bias_lr_scale=0)
    with pytest.raises(ValueError, match="lookahead"):
        C.TrainParams(lookahead=1)


def test_the_network_counts_its_weights_and_activations():
    net = C.ConvNet(STEM)
    assert STEM.whitening_width == 24 and STEM.input_side() == 31 and STEM.final_side() == 7
    assert sum(w.numel() for w in net.parameters()) == STEM.n_weights()
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o[0].numel()))
             for m in net.features if isinstance(m, nn.Conv2d)]
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    for h in hooks:
        h.remove()
    assert sum(sizes) == STEM.activations_per_image()  # 24 x 31^2 + 6 x 31^2 + 8 x 15^2
    assert sum(sizes) == 24 * 31 ** 2 + 6 * 31 ** 2 + 8 * 15 ** 2
    # identity start: the second convolution's first 6 filters pass their inputs through,
    # its other 2 start at random (the first's 6 filters, fewer than its 24 inputs, all pass)
    w = net.features[6].weight
    dirac = torch.zeros(6, 6, 3, 3)
    dirac[range(6), range(6), 1, 1] = 1
    assert torch.equal(w[:6], dirac) and w[6:].abs().min() > 0
    assert torch.equal(net.features[2].weight[:, :6, 1, 1], torch.eye(6))


def test_the_whitening_layer_decorrelates_the_patches_and_splits_them_on_and_off():
    x = _smooth_images(300)
    net = C.ConvNet(STEM)
    assert not net.whitening.weight.any()  # not set before training
    values = C.set_whitening(net, x)
    assert torch.all(values[:-1] >= values[1:]) and values[-1] > 0
    with torch.no_grad():
        z = net.whitening(x)  # (n, 24, 31, 31), before the ReLU
    on, off = z[:, :12], z[:, 12:]
    torch.testing.assert_close(off, -on)  # an OFF copy of every ON filter
    flat = on.permute(0, 2, 3, 1).reshape(-1, 12).double()
    assert flat.mean(0).abs().max() < 1e-4  # the bias removes the mean patch
    cov = flat.T @ flat / len(flat)
    # covariance diag(lambda / (lambda + eps)): decorrelated, unit variance where lambda >> eps
    expected = values.double() / (values.double() + cnn.WHITENING_EPS * values.double().mean())
    torch.testing.assert_close(cov, torch.diag(expected), atol=2e-3, rtol=2e-3)
    assert expected[0] > 0.999
    with pytest.raises(ValueError, match="no whitening layer"):
        C.set_whitening(C.ConvNet(C.ConvNetParams(widths=(4,), pool_after=(0,))), x)


def test_derandomised_flips_flip_exactly_the_images_asked():
    x = torch.rand(6, 3, 32, 32)
    flip = torch.tensor([True, False, True, False, False, True])
    out = cnn._augment(x, torch.Generator().manual_seed(0), 0, flip)
    torch.testing.assert_close(out[flip], x[flip].flip(3))
    torch.testing.assert_close(out[~flip], x[~flip])


def test_derandomised_flips_alternate_from_epoch_to_epoch(monkeypatch):
    images, labels = _class_images(48)
    images[:, 0, 0, 0] = np.arange(48)  # each image's first value names it
    real, seen = cnn._augment, []

    def spy(x, generator, pad=4, flip=None):
        seen.append((torch.round(x[:, 0, 0, 0] * 255).long(), flip.clone()))
        return real(x, generator, pad, flip)

    monkeypatch.setattr(cnn, "_augment", spy)
    p = C.TrainParams(epochs=3, batch_size=16, max_lr=0.05, alternate_flips=True)
    C.train_cnn(C.ConvNet(C.ConvNetParams(widths=(4,), pool_after=(0,))), images, labels, p,
                seed=1, progress=False)
    assert len(seen) == 3 * 3  # 3 batches an epoch
    by_epoch = []
    for epoch in range(3):
        flips = torch.zeros(48, dtype=torch.long) - 1
        for ids, flip in seen[3 * epoch:3 * epoch + 3]:
            flips[ids] = flip.long()
        assert bool((flips >= 0).all())  # every image once an epoch
        by_epoch.append(flips.bool())
    assert 0 < int(by_epoch[0].sum()) < 48  # a random half, roughly, in the first
    assert torch.equal(by_epoch[1], ~by_epoch[0])  # then every image the other way
    assert torch.equal(by_epoch[2], by_epoch[0])


def test_lookahead_moves_the_weights_to_their_running_average():
    net = nn.Linear(3, 2)
    look = cnn._Lookahead(net)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    look.update(net, 0.75)  # average = 0.75 start + 0.25 now; the weights become it
    torch.testing.assert_close(net.weight, start["weight"] + 0.25)
    torch.testing.assert_close(look.average["weight"], start["weight"] + 0.25)
    with torch.no_grad():
        net.weight.add_(4.0)
    look.update(net, 1.0)  # rho = 1: back to the average
    torch.testing.assert_close(net.weight, start["weight"] + 0.25)
    torch.testing.assert_close(net.bias, start["bias"])


def test_test_time_augmentation_averages_six_views():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    x = torch.rand(3, 3, 32, 32)
    net(x)
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    views = [(0.25, x), (0.125, padded[..., :32, :32]), (0.125, padded[..., 2:, 2:])]
    expected = sum(w * (net(v) + net(v.flip(3))) for w, v in views)
    with torch.no_grad():
        torch.testing.assert_close(C.tta_logits(net, x), expected)
    pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))
    with torch.no_grad():  # a network blind to mirror images and shifts: the same logits
        torch.testing.assert_close(C.tta_logits(pooled, x), pooled(x), atol=2e-2, rtol=0)
    # a CNN in training mode (a new one, say): evaluated with its running statistics, which
    # stay as they were, without a graph, and handed back in training mode
    cnn = C.ConvNet(C.ConvNetParams(widths=(4, 6), pool_after=(0, 1))).train()
    stats = {k: v.clone() for k, v in cnn.state_dict().items() if "running" in k}
    logits = C.tta_logits(cnn, x)
    assert not logits.requires_grad and cnn.training
    assert all(torch.equal(cnn.state_dict()[k], v) for k, v in stats.items())
    torch.testing.assert_close(logits, C.tta_logits(cnn.eval(), x))
    with pytest.raises(TypeError, match="must be float32 images"):
        C.tta_logits(cnn, x.double())


def test_training_with_every_technique_learns_and_resumes_to_the_same_weights(tmp_path):
    images, labels = _class_images(96)
    p = C.TrainParams(epochs=3, batch_size=16, max_lr=0.05, translate_px=2, alternate_flips=True,
                      bias_lr_scale=8.0, lookahead=True, label_smoothing=0.2)
    torch.manual_seed(0)
    full = C.ConvNet(STEM)
    hist = C.train_cnn(full, images, labels, p, seed=1, progress=False)
    x = C.images_to_tensor(images)
    assert C.evaluate_cnn(full, x, labels)["accuracy"] >= 0.9
    assert C.evaluate_cnn(full, x, labels, tta=True)["accuracy"] >= 0.9
    whitened = C.ConvNet(STEM)
    C.set_whitening(whitened, x[:cnn.WHITENING_PATCH_IMAGES])
    torch.testing.assert_close(full.whitening.weight, whitened.whitening.weight)  # fixed
    assert full.whitening.bias.ne(whitened.whitening.bias).any()  # its bias learned
    assert len(hist["loss"]) == 3

    def stop_after_two(epoch, history):
        if epoch == 2:  # 6 steps an epoch: the average started at step 10, in epoch 2
            raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        C.train_cnn(C.ConvNet(STEM), images, labels, p, seed=1, progress=False,
                    checkpoint=tmp_path / "cnn.pt", on_epoch=stop_after_two)
    saved = torch.load(tmp_path / "cnn.pt", weights_only=False)
    assert saved["lookahead"] is not None and saved["epoch"] == 2
    resumed = C.ConvNet(STEM)  # zero whitening, fresh weights: all from the checkpoint
    C.train_cnn(resumed, images, labels, p, seed=1, progress=False,
                checkpoint=tmp_path / "cnn.pt")
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_made_before_the_technique_fields_still_resumes(tmp_path):
    from dataclasses import asdict

    images, labels = _class_images(32)
    tiny = C.ConvNetParams(widths=(4,), pool_after=(0,))
    p = C.TrainParams(epochs=2, batch_size=16, max_lr=0.05)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        C.train_cnn(C.ConvNet(tiny), images, labels, p, seed=1, progress=False,
                    checkpoint=tmp_path / "cnn.pt", on_epoch=lambda e, h: (_ for _ in ()).throw(
                        KeyboardInterrupt()))
    state = runs.load_torch(tmp_path / "cnn.pt")
    new = {"translate_px", "alternate_flips", "bias_lr_scale", "lookahead", "cycle_momentum",
           "optimizer", "muon_lr", "muon_momentum"}
    state["params"] = {k: v for k, v in state["params"].items() if k not in new}
    state["model_params"] = {k: v for k, v in state["model_params"].items()
                             if k not in {"whitening_px", "global_pool", "identity_init",
                                          "pool_first", "bn_scale", "logit_scale"}}
    del state["lookahead"], state["muon_optimizer"], state["muon_scheduler"]
    runs.save_torch(tmp_path / "cnn.pt", state)  # as the earlier code wrote it
    resumed = C.ConvNet(tiny)
    again = C.train_cnn(resumed, images, labels, p, seed=1, progress=False,
                        checkpoint=tmp_path / "cnn.pt")
    assert len(again["loss"]) == 2 and not (tmp_path / "cnn.pt.stale").exists()
    torch.manual_seed(0)
    whole = C.ConvNet(tiny)  # the same training, never interrupted
    C.train_cnn(whole, images, labels, p, seed=1, progress=False)
    for a, b in zip(resumed.state_dict().values(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert asdict(p)["translate_px"] == 4  # the defaults are what the earlier code did


@pytest.mark.parametrize("cycle", [True, False])
def test_the_momentum_cycles_around_its_value_or_stays(tmp_path, cycle):
    images, labels = _class_images(32)
    tiny = C.ConvNetParams(widths=(4,), pool_after=(0,))
    p = C.TrainParams(epochs=2, batch_size=16, max_lr=0.05, momentum=0.8, cycle_momentum=cycle)
    seen = []

    def momentum(epoch, history):
        seen.append(runs.load_torch(tmp_path / "cnn.pt")["optimizer"]["param_groups"][0]
                    ["momentum"])

    torch.manual_seed(0)
    C.train_cnn(C.ConvNet(tiny), images, labels, p, seed=1, progress=False,
                checkpoint=tmp_path / "cnn.pt", on_epoch=momentum)
    if cycle:  # between 0.75 (at the learning rate's peak) and 0.85, never the value itself
        assert all(0.75 <= m <= 0.85 and m != pytest.approx(0.8) for m in seen)
    else:
        assert seen == [0.8, 0.8]
    with pytest.raises(ValueError, match="cycle_momentum"):
        C.TrainParams(momentum=0.97)
    assert C.TrainParams(momentum=0.97, cycle_momentum=False).momentum == 0.97


def test_a_whitened_globally_pooled_network_converts():
    images, labels = _class_images(64, seed=3)
    torch.manual_seed(0)
    net = C.ConvNet(STEM)
    C.train_cnn(net, images, labels, C.TrainParams(epochs=2, batch_size=16, max_lr=0.05),
                seed=0, progress=False)
    x = C.images_to_tensor(images)
    folded = C.fold_batchnorm(net)
    torch.testing.assert_close(folded(x), net(x), atol=1e-4, rtol=1e-4)
    normed, lambdas = C.normalise(folded, x, percentile=100.0)
    assert len(lambdas) == 3  # the whitening's ReLU and the two convolutions'
    cnn_pred = net(x).argmax(1)
    out = C.simulate(normed, x, cnn_pred.numpy(), steps=[256])
    assert out["accuracy"][256] >= 0.95  # agrees with its CNN


def test_distillation_targets_mix_the_label_with_the_teachers_probabilities():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    soft = torch.softmax(logits, 1)
    onehot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(cnn.distilled_targets(labels, logits, 0.0, 3), onehot)
    torch.testing.assert_close(cnn.distilled_targets(labels, logits, 1.0, 3), soft)
    mixed = cnn.distilled_targets(labels, logits, 0.3, 3)
    torch.testing.assert_close(mixed, 0.7 * onehot + 0.3 * soft)
    torch.testing.assert_close(mixed.sum(1), torch.ones(2))
    # the loss the training takes with them: the cross-entropy with the targets smoothed,
    # q = (1 - eps) targets + eps / K, as TrainParams.distill writes it
    student = torch.tensor([[0.1, 0.2, 0.3], [1.0, -1.0, 0.0]])
    q = 0.8 * mixed + 0.2 / 3
    expected = -(q * torch.log_softmax(student, 1)).sum(1).mean()
    torch.testing.assert_close(nn.CrossEntropyLoss(label_smoothing=0.2)(student, mixed), expected)


def test_a_distilled_network_learns_from_its_teacher_not_the_labels(tmp_path):
    images, labels = _class_images(96)
    x = C.images_to_tensor(images)
    p = C.TrainParams(epochs=3, batch_size=16, max_lr=0.05, label_smoothing=0.2)
    torch.manual_seed(0)
    teacher = C.ConvNet(STEM)
    C.train_cnn(teacher, images, labels, p, seed=1, progress=False)
    assert C.evaluate_cnn(teacher, x, labels)["accuracy"] >= 0.9
    teacher.train().zero_grad(set_to_none=True)  # handed back as it came, without gradients
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    taught = replace(p, distill=1.0)
    wrong = np.zeros_like(labels)  # every image labelled 0: only the teacher knows better

    def student(labels_given, params, checkpoint=None, on_epoch=None):
        torch.manual_seed(5)
        net = C.ConvNet(STEM)
        C.train_cnn(net, images, labels_given, params, seed=2, progress=False, teacher=teacher,
                    checkpoint=checkpoint, on_epoch=on_epoch)
        return net

    alone = student(wrong, taught)
    assert teacher.training  # back in its own mode, unchanged (eval mode: the same statistics)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert all(w.grad is None for w in teacher.parameters())
    assert C.evaluate_cnn(alone, x, labels)["accuracy"] >= 0.9
    # with the teacher's share at 1 the labels play no part: the same weights, bit for bit
    for a, b in zip(alone.state_dict().values(), student(labels, taught).state_dict().values()):
        assert torch.equal(a, b)
    half = student(wrong, replace(p, distill=0.5)).state_dict()
    assert any(not torch.equal(a, b) for a, b in zip(alone.state_dict().values(), half.values()))
    torch.manual_seed(5)
    blind = C.ConvNet(STEM)  # the same start without the teacher: the wrong labels win
    C.train_cnn(blind, images, wrong, p, seed=2, progress=False)
    assert C.evaluate_cnn(blind, x, labels)["accuracy"] <= 0.6

    def stop(epoch, history):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        student(wrong, taught, checkpoint=tmp_path / "s.pt", on_epoch=stop)
    assert teacher.training
    other = C.ConvNet(STEM)  # another teacher: the checkpoint is another run's
    with pytest.raises(runs.CheckpointError, match="another training run"):
        C.train_cnn(C.ConvNet(STEM), images, wrong, taught, seed=2, progress=False,
                    teacher=other, checkpoint=tmp_path / "s.pt")
    assert other.training
    resumed = student(wrong, taught, checkpoint=tmp_path / "s.pt")
    for a, b in zip(resumed.state_dict().values(), alone.state_dict().values()):
        assert torch.equal(a, b)


def test_distillation_needs_its_teacher_and_a_share_in_range():
    images, labels = _class_images(8)
    net = C.ConvNet(STEM)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="distill"):
            C.TrainParams(distill=bad)
    with pytest.raises(ValueError, match="give the trained network as teacher"):
        C.train_cnn(net, images, labels, C.TrainParams(epochs=1, distill=0.5), seed=0,
                    progress=False)
    with pytest.raises(ValueError, match="uses no teacher"):
        C.train_cnn(net, images, labels, C.TrainParams(epochs=1), seed=0, progress=False,
                    teacher=C.ConvNet(STEM))
    with pytest.raises(TypeError, match="teacher"):
        C.train_cnn(net, images, labels, C.TrainParams(epochs=1, distill=0.5), seed=0,
                    progress=False, teacher="the CNN")
    with pytest.raises(ValueError, match="another network"):
        C.train_cnn(net, images, labels, C.TrainParams(epochs=1, distill=0.5), seed=0,
                    progress=False, teacher=net)
    windows = C.TrainParams(epochs=2, distill=0.5, small_crop_px=24, small_crop_epochs=1)
    with pytest.raises(ValueError, match="small_crop_px"):
        C.train_cnn(net, images, labels, windows, seed=0, progress=False,
                    teacher=C.ConvNet(STEM))
    five = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5))
    with pytest.raises(ValueError, match="5 classes"):
        C.train_cnn(net, images, labels, C.TrainParams(epochs=1, distill=0.5), seed=0,
                    progress=False, teacher=five)


def test_a_gelu_training_and_its_relu_twin_never_share_a_checkpoint(tmp_path):
    images, labels = _class_images(32)
    relu_params = C.ConvNetParams(widths=(4,), pool_after=(0,))
    gelu_params = replace(relu_params, activation="gelu")
    p = C.TrainParams(epochs=2, batch_size=16, max_lr=0.05)

    def stop(epoch, history):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        C.train_cnn(C.ConvNet(gelu_params), images, labels, p, seed=1, progress=False,
                    checkpoint=tmp_path / "cnn.pt", on_epoch=stop)
    # the same weights would load, but a ReLU network is another training run
    with pytest.raises(runs.CheckpointError, match="another training run"):
        C.train_cnn(C.ConvNet(relu_params), images, labels, p, seed=1, progress=False,
                    checkpoint=tmp_path / "cnn.pt")
    resumed = C.train_cnn(C.ConvNet(gelu_params), images, labels, p, seed=1, progress=False,
                          checkpoint=tmp_path / "cnn.pt")
    assert len(resumed["loss"]) == 2
    # a GELU teacher and its ReLU twin share their weights, not their checkpoints
    torch.manual_seed(3)
    teacher = C.ConvNet(gelu_params).eval()
    taught = replace(p, distill=0.5)
    with pytest.raises(KeyboardInterrupt):
        C.train_cnn(C.ConvNet(relu_params), images, labels, taught, seed=2, progress=False,
                    teacher=teacher, checkpoint=tmp_path / "s.pt", on_epoch=stop)
    with pytest.raises(runs.CheckpointError, match="another training run"):
        C.train_cnn(C.ConvNet(relu_params), images, labels, taught, seed=2, progress=False,
                    teacher=C.relu_twin(teacher), checkpoint=tmp_path / "s.pt")
