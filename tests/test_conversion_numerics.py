"""Tier 3's arithmetic (snnlib.tiers.conversion.numerics): the ci and book profiles compute
reproducibly (the ci-size CNN trained twice, with other thread settings around it, ends with
the same weights bit for bit), the full profile keeps its speed features, the settings are
restored after a run, caches made with other arithmetic are not taken for this run's, and
the CPU kernels are capped only when nothing has computed before."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import warnings
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from snnlib import profiles, runs
from snnlib.tiers import conversion as C
from snnlib.tiers.conversion import numerics as N

CI = profiles.get_profile("ci")

pytestmark = pytest.mark.filterwarnings(
    "ignore:tier 3's reproducible arithmetic caps the CPU kernels:RuntimeWarning")
"""Tests compute before a run caps the kernels: the run warns that it cannot (and keys its
caches by the kernels it used); a fresh interpreter is tested apart."""


def _images(n: int, seed: int = 0):
    """Class-dependent noisy images (uint8) and their labels, every class present."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    base = rng.integers(40, 216, (10, 1, 1, 3))
    images = np.clip(base[labels] + rng.normal(0, 40, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    return images, labels


def test_profiles_choose_their_arithmetic():
    for name in ("ci", "book"):
        p = profiles.get_profile(name)
        assert N.numerics_for_profile(p) == N.REPRODUCIBLE
        assert C.params_for_profile(p)[1].bf16 is False
    full = profiles.get_profile("full")
    assert N.numerics_for_profile(full) == N.Numerics(bf16=C.bf16_supported(),
                                                      compile_activations=True,
                                                      channels_last=True)
    assert C.params_for_profile(full)[1].bf16 == C.bf16_supported()
    assert N.REPRODUCIBLE == N.Numerics(reproducible=True, threads=2, bf16=False, cpu_isa="avx2")
    assert N.REPRODUCIBLE.describe() == ("float32, 2 threads, deterministic algorithms, CPU "
                                         "kernels capped at AVX2")
    assert N.Numerics(bf16=True).describe() == ("bfloat16 autocast, PyTorch's default threads, "
                                                "the CPU's fastest kernels")
    assert N.fast().describe().endswith("the CPU's fastest kernels, QCFS compiled, "
                                        "channels-last training")


def test_numerics_are_validated():
    with pytest.raises(ValueError, match="threads"):
        N.Numerics(reproducible=True)
    with pytest.raises(ValueError, match="bf16"):
        N.Numerics(reproducible=True, threads=2, bf16=True)
    with pytest.raises(ValueError, match="threads"):
        N.Numerics(threads=0)
    with pytest.raises(ValueError, match="cpu_isa"):
        N.Numerics(cpu_isa="avx512")
    with pytest.raises(ValueError, match="compile_activations=False"):
        N.Numerics(reproducible=True, threads=2, compile_activations=True)
    with pytest.raises(TypeError, match="compile_activations"):
        N.Numerics(compile_activations="yes")
    with pytest.raises(ValueError, match="channels_last=False"):
        N.Numerics(reproducible=True, threads=2, channels_last=True)
    with pytest.raises(TypeError, match="channels_last"):
        N.Numerics(channels_last="yes")
    with pytest.raises(TypeError, match="numerics"):
        N.use_numerics("reproducible")
    with pytest.raises(TypeError, match="profile"):
        N.numerics_for_profile("ci")


def _state() -> tuple:
    return (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            torch.backends.mkldnn.deterministic, torch.get_float32_matmul_precision(),
            N.activations_compiled())


def test_scope_applies_the_numerics_and_restores_the_settings():
    before = _state()
    torch.set_num_threads(1)
    try:
        outside = _state()
        env_before = {k: os.environ.get(k) for k in N._ENV}
        with N.numerics_scope(N.REPRODUCIBLE):
            assert _state() == (2, True, True, False, True, "highest", False)
            used = N.numerics_in_use()
            assert used["threads"] == 2 and used["deterministic_algorithms"] is True
            kept = {k: v for k, v in asdict(N.REPRODUCIBLE).items()
                    if k not in ("compile_activations", "channels_last")}
            assert N.fingerprint(N.REPRODUCIBLE) == {  # the keys of caches made before the flag
                **kept, "threads_in_use": 2,
                "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        assert _state() == outside
        assert all(os.environ.get(k) == env_before.get(k) for k in N._ENV)  # children not capped
        with pytest.raises(KeyError), N.numerics_scope(N.REPRODUCIBLE):
            raise KeyError("a run that fails")
        assert _state() == outside  # restored after a failure too
        with N.numerics_scope(N.Numerics()):  # the fast path changes nothing
            assert _state() == outside
        with N.numerics_scope(N.Numerics(compile_activations=True)):
            assert _state() == (*outside[:-1], True) and N.numerics_in_use()[
                "activations_compiled"] is True
        assert _state() == outside and outside[-1] is False
        assert N.fingerprint(N.Numerics(bf16=True)) is None
        with N.numerics_scope(None) as none:  # no numerics: the process's own settings
            assert none is None and _state() == outside
        assert N.fingerprint(None) is None
    finally:
        torch.set_num_threads(before[0])


def test_ci_size_training_is_reproducible_whatever_the_threads_around_it(tmp_path):
    """The ci profile's CNN and training, twice from the same seed, with 1 and 3 threads set
    outside: the same weights, losses and predictions, bit for bit."""
    cp, tp = C.params_for_profile(CI)
    images, labels = _images(CI.conversion.train_images)
    threads = torch.get_num_threads()
    results = []
    try:
        for outside in (1, 3):
            torch.set_num_threads(outside)
            torch.manual_seed(2026)
            model = C.ConvNet(cp)
            start = [t.clone() for t in model.state_dict().values()]
            history = C.train_cnn(model, images, labels, tp, seed=2026, progress=False,
                                  numerics=N.REPRODUCIBLE)
            assert torch.get_num_threads() == outside  # restored
            predictions = C.evaluate_cnn(C.fold_batchnorm(model), C.images_to_tensor(images[:50]),
                                         labels[:50])["predictions"]
            results.append((model.state_dict(), history["loss"], predictions))
            assert any(not torch.equal(a, b) for a, b in zip(start, model.state_dict().values())), (
                "vacuous: training changed no weight")
    finally:
        torch.set_num_threads(threads)
    (w1, loss1, p1), (w2, loss2, p2) = results
    assert loss1 == loss2 and np.array_equal(p1, p2)
    for key in w1:
        assert torch.equal(w1[key], w2[key]), key


def test_channels_last_training_computes_the_same_network():
    """Training in the channels-last memory format (the full profile's) is the same arithmetic
    in another memory order: float32 weights within rounding of the default format's, weights
    that moved from their start, and a network handed back in the default format."""
    images, labels = _images(64)
    params = C.ConvNetParams(widths=(8, 8, 16), pool_after=(0, 2), whitening_px=2)
    p = C.TrainParams(epochs=2, batch_size=16)
    trained = []
    for layout in (False, True):
        torch.manual_seed(0)
        model = C.ConvNet(params)
        start = {k: t.clone() for k, t in model.state_dict().items()}
        seen = []

        def during(epoch, history, model=model, seen=seen):
            seen.append(all(m.weight.is_contiguous(memory_format=torch.channels_last)
                            for m in model.modules() if isinstance(m, torch.nn.Conv2d)))

        history = C.train_cnn(model, images, labels, p, seed=0, progress=False,
                              numerics=N.Numerics(channels_last=layout), on_epoch=during)
        assert seen == [layout] * p.epochs  # the format it trained in
        for name, w in model.named_parameters():
            assert w.is_contiguous(), name
        trained.append((model.state_dict(), history["loss"]))
        moved = [k for k in start if k.endswith("weight") and start[k].dim() == 4
                 and not torch.equal(start[k], model.state_dict()[k])]
        assert moved, "vacuous: training moved no convolution's weights"
    (w_default, loss_default), (w_last, loss_last) = trained
    np.testing.assert_allclose(loss_last, loss_default, rtol=1e-4)
    for key in w_default:
        # Within rounding of the tensor's scale: the two formats sum the same products in
        # other orders, and eight steps of SGD and batch norm carry those differences on. With
        # one thread (oneDNN presumably picking other kernels than with two), after other
        # tests in the same process, they reached 3.7e-4 of a tensor's largest weight, and a
        # weight near zero differed by 1.3e-4, past an elementwise 1e-4 + 1e-3 |w|. A format
        # mixed up would differ by the weights' whole size.
        last, default = w_last[key].float(), w_default[key].float()
        scale = float(default.abs().max()) or 1.0
        assert float((last - default).abs().max()) <= 2e-3 * scale, key


def test_without_channels_last_a_batch_keeps_the_layout_it_comes_in():
    """The default memory format leaves each batch as the images give it (without
    augmentation, the strides of ``images_to_tensor``'s channels-last view), as before the
    option existed; channels-last training gives the network channels-last batches even where
    they come in the default format (augmented crops)."""
    images, labels = _images(32)
    p = C.TrainParams(epochs=1, batch_size=16, augment=False)
    reference = C.images_to_tensor(images[:16]).stride()
    for numbers, want, params in ((None, reference, p), (N.Numerics(), reference, p),
                                  (N.Numerics(channels_last=True), None,
                                   replace(p, augment=True))):
        model = C.ConvNet(C.ConvNetParams(widths=(4, 4), pool_after=(0, 1)))
        seen = []
        model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        C.train_cnn(model, images, labels, params, seed=0, progress=False, numerics=numbers)
        assert seen, "vacuous: the network saw no batch"
        if want is None:
            assert all(x.is_contiguous(memory_format=torch.channels_last) for x in seen)
        else:
            assert all(x.stride() == want for x in seen), [x.stride() for x in seen]


def test_a_checkpoint_of_other_arithmetic_is_another_runs(tmp_path):
    images, labels = _images(32)
    params = C.ConvNetParams(widths=(4, 4), pool_after=(0, 1))
    p = C.TrainParams(epochs=1, batch_size=16)
    path = tmp_path / "cnn.pt"
    C.train_cnn(C.ConvNet(params), images, labels, p, seed=0, progress=False, checkpoint=path,
                numerics=N.REPRODUCIBLE)
    saved = runs.load_torch(path)["numerics"]
    assert saved["threads_in_use"] == 2 and saved["reproducible"] is True
    C.train_cnn(C.ConvNet(params), images, labels, p, seed=0, progress=False, checkpoint=path,
                numerics=N.REPRODUCIBLE)  # the same arithmetic: resumes (finished)
    with pytest.raises(ValueError, match="another training run"):
        C.train_cnn(C.ConvNet(params), images, labels, p, seed=0, progress=False,
                    checkpoint=path)  # the process's own arithmetic
    # the full profile's checkpoints are keyed by their parameters alone (they resume anywhere)
    fast = tmp_path / "fast.pt"
    C.train_cnn(C.ConvNet(params), images, labels, p, seed=0, progress=False, checkpoint=fast)
    C.train_cnn(C.ConvNet(params), images, labels, p, seed=0, progress=False, checkpoint=fast,
                numerics=N.Numerics())
    with pytest.raises(ValueError, match="bf16"):
        C.train_cnn(C.ConvNet(params), images, labels, replace(p, bf16=True), seed=0,
                    progress=False, numerics=N.REPRODUCIBLE)


def test_simulation_parts_are_keyed_by_the_arithmetic(tmp_path):
    torch.manual_seed(0)
    net = C.fold_batchnorm(C.ConvNet(C.ConvNetParams(widths=(4, 4), pool_after=(0, 1))).eval())
    x = torch.rand(6, 3, 32, 32)
    labels = np.arange(6) % 10
    normed, _ = C.normalise(net, x)
    kwargs = dict(steps=[4], folder=tmp_path, part_images=6, progress=False)
    with_numerics = C.simulate_parts(normed, x, labels, numerics=N.REPRODUCIBLE, **kwargs)
    key = str(runs.load_npz(tmp_path / "part_000000_000006.npz")["key"])
    without = C.simulate_parts(normed, x, labels, **kwargs)  # recomputed under another key
    assert str(runs.load_npz(tmp_path / "part_000000_000006.npz")["key"]) != key
    assert with_numerics["accuracy"] == without["accuracy"]
    assert with_numerics["spikes_per_image"] == without["spikes_per_image"]
    with pytest.raises(ValueError, match="bf16"):
        C.simulate_parts(normed, x, labels, numerics=N.REPRODUCIBLE, bf16=True, **kwargs)


def _python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (no PyTorch computation before it); it prints JSON."""
    env = {k: v for k, v in os.environ.items() if k not in N._ENV}  # not capped beforehand
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the kernel cap is for x86-64 processors")
def test_the_cpu_kernels_are_capped_only_before_the_first_computation():
    first = _python(
        "import json, warnings\n"
        "from snnlib.tiers.conversion import numerics as N\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    used = N.use_numerics(N.REPRODUCIBLE)\n"
        "print(json.dumps({**used, 'warnings': len(w)}))")
    late = _python(
        "import json, warnings, torch\n"
        "torch.ones(8).exp().sum()  # the kernels are chosen here\n"
        "native = torch.backends.cpu.get_cpu_capability()\n"
        "from snnlib.tiers.conversion import numerics as N\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    used = N.use_numerics(N.REPRODUCIBLE)\n"
        "print(json.dumps({**used, 'native': native, 'warnings': [str(x.message) for x in w]}))")
    native = late["native"]
    if native in ("DEFAULT", "NO AVX"):
        pytest.skip(f"this processor has no AVX2 ({native})")
    assert late["cpu_capability"] == native  # kept: chosen before the cap
    if native != "AVX2":
        assert len(late["warnings"]) == 1
        assert "before any PyTorch computation" in late["warnings"][0]
    else:
        assert late["warnings"] == []
    assert first["cpu_capability"] == "AVX2" and first["warnings"] == 0
    assert first["onednn_max_cpu_isa"] == "AVX2" and first["mkl_cbwr"] == "COMPATIBLE,STRICT"
    assert first["threads"] == 2 and first["deterministic_algorithms"] is True


def test_a_late_cap_keys_caches_by_the_kernels_really_used():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # this process computed before
        with N.numerics_scope(N.REPRODUCIBLE):
            key = N.fingerprint(N.REPRODUCIBLE)
    assert key["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
