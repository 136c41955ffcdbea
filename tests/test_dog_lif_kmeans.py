"""Tier 2's non-spiking counterpart (snnlib.tiers.dog_lif.kmeans) against theory: Lloyd's
algorithm finds separated clusters, never raises its objective and stops at a fixed point; the
triangle code is its formula; the pooled features sum the codes of the tier's whitened patches
in the tier's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snnlib.tiers import dog_lif as D
from snnlib.tiers.dog_lif import kmeans as K
from snnlib.tiers.dog_lif import layer as L

from test_dog_lif import _images


def _blobs(n_per: int = 200, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four tight clusters (std 0.1) around centres 4 apart in ``d`` dimensions."""
    g = torch.Generator().manual_seed(seed)
    centres = 4.0 * torch.eye(4, d)
    x = torch.cat([c + 0.1 * torch.randn(n_per, d, generator=g) for c in centres])
    return x, centres


def test_kmeans_finds_separated_clusters_and_its_objective_never_rises():
    x, centres = _blobs()
    c, objective = K.kmeans_fit(x, 4, iterations=10, seed=0)
    # every true centre has a centroid within the clusters' noise of it
    nearest = torch.cdist(centres, c).min(1).values
    assert nearest.max() < 0.05
    # J ends at the clusters' own spread: d * 0.1**2 per patch, up to sampling
    assert objective[-1] == pytest.approx(8 * 0.01, rel=0.15)
    assert all(b <= a * (1 + 1e-6) for a, b in zip(objective, objective[1:]))
    assert objective[-1] < 0.7 * objective[0]  # seeds are patches; the means fit better


def test_kmeans_stops_at_a_fixed_point_where_each_centroid_is_its_patches_mean():
    x = torch.randn(500, 5, generator=torch.Generator().manual_seed(1))
    c, _ = K.kmeans_fit(x, 6, iterations=60, seed=3)
    assign = torch.cdist(x, c).argmin(1)
    for k in range(6):
        members = x[assign == k]
        if len(members):
            assert torch.allclose(members.mean(0), c[k], atol=1e-5)
    one, _ = K.kmeans_fit(x, 1, iterations=2, seed=0)
    assert torch.allclose(one[0], x.mean(0), atol=1e-6)  # one centroid: the mean


def test_kmeans_is_seeded():
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(2))
    a, ja = K.kmeans_fit(x, 5, seed=5)
    b, jb = K.kmeans_fit(x, 5, seed=5)
    c, _ = K.kmeans_fit(x, 5, seed=6)
    assert torch.equal(a, b) and ja == jb
    assert not torch.equal(a, c)


def test_kmeans_with_more_centroids_than_distinct_patches_keeps_them_all_on_patches():
    # k-means++ runs out of distance to draw by (uniform draws then), and some centroids are
    # left without patches: they stay where they are, on patches
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    c, objective = K.kmeans_fit(x, 3, iterations=3, seed=0)
    assert torch.isfinite(c).all()
    assert all(any(torch.equal(row, p) for p in x) for row in c)
    assert {tuple(row.tolist()) for row in c} == {(0.0, 0.0), (1.0, 0.0)}
    assert objective[-1] == 0.0


def test_triangle_code_is_its_formula():
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(40, 6, generator=g), torch.randn(7, 6, generator=g)
    z = torch.cdist(x.double(), c.double())
    expected = (z.mean(1, keepdim=True) - z).clamp(min=0)
    code = K.triangle_code(x, c)
    assert code.shape == (40, 7)
    assert torch.allclose(code.double(), expected, atol=1e-4)
    # a patch on a centroid is coded by the mean distance to the centroids there
    on = K.triangle_code(c[2:3], c)
    assert on[0, 2] == pytest.approx(float(torch.cdist(c[2:3], c).mean()), abs=5e-3)
    # centroids farther than average read 0; the nearest reads the most
    assert torch.equal(code.argmax(1), z.argmin(1))
    assert ((code == 0) == (z >= z.mean(1, keepdim=True))).all()


def test_features_pool_the_codes_of_the_tiers_whitened_patches_in_the_tiers_layout():
    p = D.DoGLIFParams(n_filters=5, pool=2)
    images = _images(6)
    fit = D.RetinaFit.fit(images, p, seed=0)
    c = torch.randn(5, p.n_inputs // 2, generator=torch.Generator().manual_seed(0))
    f = K.kmeans_features(images, fit, p, c, batch=4)
    assert f.shape == (6, 5 * 4) and f.dtype == np.float32
    signed = fit._signed(L._float_images(images), p)  # (6, 28 * 28, 75)
    code = K.triangle_code(signed.reshape(-1, 75), c).reshape(6, 28, 28, 5)
    top_left = code[:, :14, :14].sum((1, 2))  # region 0 of each centroid: feature k * 4 + 0
    top_right = code[:, :14, 14:].sum((1, 2))  # region 1: the first row of regions goes first
    bottom_left = code[:, 14:, :14].sum((1, 2))
    assert np.allclose(f[:, 0::4], top_left.numpy(), rtol=1e-4)
    assert np.allclose(f[:, 1::4], top_right.numpy(), rtol=1e-4)
    assert np.allclose(f[:, 2::4], bottom_left.numpy(), rtol=1e-4)
    assert np.allclose(f.reshape(6, 5, 4).sum(2), code.sum((1, 2)).numpy(), rtol=1e-4)


@pytest.mark.parametrize("call, match", [
    (lambda: K.kmeans_fit(torch.zeros(3, 2), 4), r"k \(4\) centroids need at least"),
    (lambda: K.kmeans_fit(torch.zeros(6), 2), "patches must have 2 dimensions"),
    (lambda: K.kmeans_fit(torch.zeros(6, 2), 0), "k must be a positive integer"),
    (lambda: K.kmeans_fit([["a", "b"]], 1), "patches must be a numeric array"),
    (lambda: K.triangle_code(torch.zeros(3, 2), torch.zeros(0, 2)), "centroids must not be empty"),
    (lambda: K.kmeans_fit(torch.zeros(6, 2), 2, iterations=0), "iterations"),
    (lambda: K.kmeans_fit(torch.full((6, 2), float("nan")), 2), "patches"),
    (lambda: K.triangle_code(torch.zeros(3, 2), torch.zeros(4, 3)), "must share d"),
])
def test_bad_input_is_refused_with_a_message(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_features_refuse_centroids_of_another_patch_size():
    p = D.DoGLIFParams(n_filters=5)
    images = _images(2)
    fit = D.RetinaFit.fit(images, p, seed=0)
    with pytest.raises(ValueError, match=r"centroids must be \(k, 75\)"):
        K.kmeans_features(images, fit, p, torch.zeros(5, 12))


def test_the_reference_table_shows_each_stored_run(tmp_path):
    run = {"name": "the tier's geometry", "centroids": 512, "patch_px": 5, "pool": 3,
           "zca_eps": 0.1, "features": 4608, "train_images": 5000, "val_images": 2000,
           "val_accuracy": 0.6355, "images_per_s": 140.2}
    path = tmp_path / "kmeans.json"
    two = {**run, "name": "two layers", "features": 8704, "val_accuracy": 0.6912,
           "second_layer": {"centroids": 1024, "pool": 2}}
    scales = {**run, "name": "two scales", "features": 9216, "val_accuracy": 0.7398,
              "val_accuracy_first_layer": 0.7326,
              "second_scale": {"downsample": 2, "centroids": 512, "features": 4608}}
    path.write_text(json.dumps([run, {**run, "name": "Coates", "centroids": 1600,
                                      "patch_px": 6, "pool": 2, "val_accuracy": 0.7,
                                      "zca_eps": 0.3}, two, scales]))
    text = repr(K.reference_table(path))
    assert "ZCA eps" in text
    rows = [line for line in text.splitlines() if line.startswith(("the tier", "Coates", "two"))]
    assert [(" 0.1 " in row, " 0.3 " in row) for row in rows] == [(True, False), (False, True),
                                                                  (True, False), (True, False)]
    assert "63.55%" in text and "70.00%" in text and "5 x 5" in text and "6 x 6" in text
    assert text.index("the tier's geometry") < text.index("Coates") < text.index("two layers")
    assert "1,600" in text and "512 + 1,024" in text and "3 x 3 + 2 x 2" in text
    assert "69.12%" in text and "8,704" in text
    row = next(line for line in text.splitlines() if line.startswith("two scales"))
    for cell in ("512 + 512", "5 x 5 + 10 x 10 (2 x 2 averaged)", "3 x 3 + 3 x 3", "9,216",
                 "73.98%", "73.26%"):
        assert cell in row, cell
    with pytest.raises(FileNotFoundError, match="kmeans_reference.py"):
        K.reference_table(tmp_path / "none.json")
    path.write_text(json.dumps([{"name": "x"}]))
    with pytest.raises(ValueError, match="kmeans_reference.py runs"):
        K.reference_table(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="no run"):
        K.reference_table(path)


def test_features_refuse_centroids_that_are_not_finite():
    p = D.DoGLIFParams(n_filters=5)
    images = _images(2)
    fit = D.RetinaFit.fit(images, p, seed=0)
    with pytest.raises(ValueError, match="centroids"):
        K.kmeans_features(images, fit, p, torch.full((5, 75), float("nan")))


def test_what_would_not_fit_in_memory_is_refused_before_computing(monkeypatch):
    import snnlib._validate as V

    p = D.DoGLIFParams(n_filters=5)
    images = _images(2)
    fit = D.RetinaFit.fit(images, p, seed=0)
    monkeypatch.setattr(V, "_available_bytes", lambda: 1000)
    with pytest.raises(ValueError, match=r"batch=2 images\) to 5 centroids would need about"):
        K.kmeans_features(images, fit, p, torch.zeros(5, 75), batch=2)
    with pytest.raises(ValueError, match="chunk=50000 against 2 centroids would need about"):
        K.kmeans_fit(torch.zeros(100, 3), 2)
    with pytest.raises(ValueError, match="block=1000 images at a time would need about"):
        K.sample_patches(images, fit, p, 100, seed=0)


def test_sampled_patches_are_the_retinas_whitened_patches_drawn_with_a_seed():
    p = D.DoGLIFParams(n_filters=5)
    images = _images(5)
    fit = D.RetinaFit.fit(images, p, seed=0)
    every = fit._signed(L._float_images(images), p).reshape(-1, 75)  # (5 * 28 * 28, 75)
    drawn = K.sample_patches(images, fit, p, 400, seed=3, block=2)  # blocks: 2, 2, 1 images
    assert drawn.shape == (400, 75)
    nearest = torch.cdist(drawn, every, compute_mode="donot_use_mm_for_euclid_dist").min(1)
    assert nearest.values.max() < 1e-4  # each is one of the images' patches, as whitened
    assert len(set(nearest.indices.tolist())) > 300  # drawn from all 3,920, with replacement
    assert torch.equal(drawn, K.sample_patches(images, fit, p, 400, seed=3))  # blocks don't matter
    assert not torch.equal(drawn, K.sample_patches(images, fit, p, 400, seed=4))


def test_neighbourhoods_are_the_maps_places_contrast_normalised():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 4, 6, 5, generator=g)
    u = K.neighbourhoods(maps, size=3)
    assert u.shape == (2, 4 * 3, 3 * 3 * 4)  # 4 x 3 places, row by row
    # place (row 1, column 2) of image 1: its 4 maps at rows 1-3, columns 2-4
    raw = maps[1, :, 1:4, 2:5].reshape(-1)
    expected = (raw - raw.mean()) / raw.var(unbiased=False).sqrt()
    assert torch.allclose(u[1, 1 * 3 + 2], expected, atol=1e-5)
    assert torch.allclose(u.mean(-1), torch.zeros(2, 12), atol=1e-5)
    assert torch.allclose(u.pow(2).mean(-1), torch.ones(2, 12), atol=1e-4)
    # a contrast floor shrinks weak neighbourhoods: variance v / (v + eps)
    v = raw.var(unbiased=False)
    floored = K.neighbourhoods(maps, size=3, eps=float(v))[1, 1 * 3 + 2]
    assert float(floored.pow(2).mean()) == pytest.approx(0.5, rel=1e-4)
    # a flat neighbourhood reads 0, not NaN
    assert torch.equal(K.neighbourhoods(torch.ones(1, 2, 3, 3), 3), torch.zeros(1, 1, 18))


def test_whitening_makes_the_covariance_of_the_kept_directions_the_identity():
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(6, 6, generator=g)
    x = torch.randn(20_000, 6, generator=g) @ mix + 3.0
    mean, w = K.whitening_fit(x, 4, eps=0.0, chunk=3000)  # chunks must not matter
    assert w.shape == (6, 4) and torch.allclose(mean, x.mean(0), atol=1e-3)
    z = ((x - mean) @ w).double()
    assert torch.allclose(torch.cov(z.T), torch.eye(4, dtype=torch.float64), atol=1e-3)
    # the kept directions are the strongest: what they leave out is the weakest variance
    lam = torch.linalg.eigvalsh(torch.cov(x.T.double()))
    rest = (x - mean).double() - z @ torch.linalg.pinv(w.double())
    assert float(rest.pow(2).sum(1).mean()) == pytest.approx(float(lam[:2].sum()), rel=1e-3)
    # eps damps the weak directions: variance lambda / (lambda + eps * mean(lambda))
    _, w2 = K.whitening_fit(x, 4, eps=0.5)
    top = lam.flip(0)[:4]
    shrink = top / (top + 0.5 * top.mean())
    assert torch.allclose(torch.cov(((x - mean) @ w2).double().T).diagonal(), shrink, rtol=1e-3)


def test_the_second_layer_is_fitted_and_codes_as_its_definition_says():
    p = D.DoGLIFParams(n_filters=4)
    images = _images(6)
    fit = D.RetinaFit.fit(images, p, seed=0)
    c1 = torch.randn(4, 75, generator=torch.Generator().manual_seed(0))
    layer = K.SecondLayer.fit(images, fit, p, c1, 5, dims=20, n_patches=500, seed=2, block=4)
    assert layer.centroids.shape == (5, 20) and layer.whitening.shape == (36, 20)
    assert len(layer.objective) == 10 and torch.equal(layer.first, c1)
    # by hand: the first code, 2 x 2 averages (14 x 14 places), 3 x 3 neighbourhoods (12 x 12)
    signed = fit._signed(L._float_images(images), p)
    code = K.triangle_code(signed.reshape(-1, 75), c1).reshape(6, 28, 28, 4)
    maps = torch.nn.functional.avg_pool2d(code.permute(0, 3, 1, 2), 2)
    # the contrast floor: 1% of the variance of every value of the maps
    assert layer.contrast_eps == pytest.approx(0.01 * float(maps.double().var(unbiased=False)),
                                               rel=1e-5)
    u = K.neighbourhoods(maps, 3, eps=layer.contrast_eps)  # (6, 144, 36)
    # the whitening is fitted to n_patches neighbourhoods drawn with the seed, with replacement
    pick = torch.randint(0, 6 * 144, (500,), generator=torch.Generator().manual_seed(2))
    drawn = u[pick // 144, pick % 144]
    mean, w = K.whitening_fit(drawn, 20, eps=0.1)
    assert torch.allclose(layer.mean, mean, atol=1e-5)
    assert torch.allclose(layer.whitening.abs(), w.abs(), rtol=1e-3, atol=1e-4)  # up to sign
    # its centroids are the k-means centroids of the whitened draws, with the same seed
    c2, objective = K.kmeans_fit((drawn - layer.mean) @ layer.whitening, 5, seed=2)
    assert torch.allclose(c2, layer.centroids, atol=1e-4)
    assert objective == pytest.approx(list(layer.objective), rel=1e-4)
    f = layer.features(images, fit, p, batch=4)
    assert f.shape == (6, 5 * 4) and f.dtype == np.float32
    second = K.triangle_code((u.reshape(-1, 36) - layer.mean) @ layer.whitening,
                             layer.centroids).reshape(6, 12, 12, 5)
    for r, (rows, cols) in enumerate([(slice(0, 6), slice(0, 6)), (slice(0, 6), slice(6, 12)),
                                      (slice(6, 12), slice(0, 6)), (slice(6, 12), slice(6, 12))]):
        assert np.allclose(f[:, r::4], second[:, rows, cols].sum((1, 2)).numpy(),
                           rtol=1e-4, atol=1e-4), f"region {r}"
    # with the first layer's features first, from the same code
    both = layer.features(images, fit, p, batch=5, with_first=True)
    assert both.shape == (6, 4 * 9 + 20)
    assert np.allclose(both[:, :36], K.kmeans_features(images, fit, p, c1), rtol=1e-5)
    assert np.allclose(both[:, 36:], f, rtol=1e-5, atol=1e-6)
    # the same seed gives the same layer, whatever the blocks; another seed another draw
    again = K.SecondLayer.fit(images, fit, p, c1, 5, dims=20, n_patches=500, seed=2, block=4)
    assert torch.equal(again.centroids, layer.centroids)
    blocks = K.SecondLayer.fit(images, fit, p, c1, 5, dims=20, n_patches=500, seed=2)
    assert blocks.contrast_eps == pytest.approx(layer.contrast_eps, rel=1e-9)
    assert torch.allclose(blocks.centroids, layer.centroids, atol=1e-4)  # float rounding only
    other = K.SecondLayer.fit(images, fit, p, c1, 5, dims=20, n_patches=500, seed=3)
    assert not torch.allclose(other.centroids, layer.centroids, atol=1e-2)


@pytest.mark.parametrize("call, match", [
    (lambda fit, p, c: K.SecondLayer.fit(_images(2), fit, p, c, 3, dims=40), r"dims \(40\) exceeds"),
    (lambda fit, p, c: K.SecondLayer.fit(_images(2), fit, p, c, 3, size=14),
     "leave 1 places per side"),
    (lambda fit, p, c: K.SecondLayer.fit(_images(2), fit, p, torch.zeros(4, 12), 3),
     r"centroids must be \(k, 75\)"),
    (lambda fit, p, c: K.SecondLayer.fit(_images(2), fit, p, c, 0), "k must be a positive"),
    (lambda fit, p, c: K.SecondLayer.fit(_images(2), fit, p, c, 30, dims=8, n_patches=20),
     r"n_patches \(20\) must be from 2 to 2\*\*24 and at least k \(30\)"),
    (lambda fit, p, c: K.neighbourhoods(torch.zeros(1, 2, 3, 3), 4), r"size \(4\) exceeds"),
    (lambda fit, p, c: K.whitening_fit(torch.zeros(5, 3), 4), r"dims \(4\) must be at most"),
    (lambda fit, p, c: K.whitening_fit(torch.zeros(5, 3), 2, eps=0.0), "fewer than dims"),
    (lambda fit, p, c: K.SecondLayer(c, torch.zeros(36), torch.zeros(36, 5), torch.zeros(3, 4),
                                     0.1), "must agree"),
    (lambda fit, p, c: K.SecondLayer(c, torch.zeros(36), torch.zeros(36, 5), torch.zeros(3, 5),
                                     -1.0), "contrast_eps"),
    (lambda fit, p, c: K.SecondLayer(c, np.zeros(36), torch.zeros(36, 5), torch.zeros(3, 5),
                                     0.1), "mean must be a torch.Tensor"),
    (lambda fit, p, c: K.SecondLayer(c, torch.zeros(36, dtype=torch.long), torch.zeros(36, 5),
                                     torch.zeros(3, 5), 0.1), "mean must be floats"),
    (lambda fit, p, c: K.SecondLayer(c, torch.full((36,), float("nan")), torch.zeros(36, 5),
                                     torch.zeros(3, 5), 0.1), "mean"),
])
def test_the_second_layer_refuses_bad_input_with_a_message(call, match):
    p = D.DoGLIFParams(n_filters=4)
    fit = D.RetinaFit.fit(_images(2), p, seed=0)
    with pytest.raises((ValueError, TypeError), match=match):
        call(fit, p, torch.zeros(4, 75))


def test_the_second_layer_refuses_a_retina_of_another_patch_size():
    p = D.DoGLIFParams(n_filters=4)
    images = _images(4)
    fit = D.RetinaFit.fit(images, p, seed=0)
    c1 = torch.randn(4, 75, generator=torch.Generator().manual_seed(0))
    layer = K.SecondLayer.fit(images, fit, p, c1, 3, dims=10, n_patches=200, seed=0)
    q = D.DoGLIFParams(n_filters=4, patch_px=6)
    with pytest.raises(ValueError, match=r"centroids must be \(k, 108\)"):
        layer.features(images, D.RetinaFit.fit(images, q, seed=0), q)


def test_the_second_layer_keeps_float32_copies_of_what_it_is_given():
    parts = [torch.randn(4, 75, dtype=torch.float64), torch.randn(36, dtype=torch.float64),
             torch.randn(36, 5), torch.randn(3, 5)]
    layer = K.SecondLayer(*parts, 0.1)
    assert all(t.dtype == torch.float32 for t in (layer.first, layer.mean, layer.whitening,
                                                   layer.centroids))
    parts[2].zero_()  # the caller's tensor changes; the frozen layer does not
    assert layer.whitening.abs().sum() > 0 and layer.k == 3


def test_the_code_of_a_coarser_scale_pools_its_twelve_by_twelve_positions():
    """With downsample=2, 5-pixel patches of the 16 x 16 averaged images sit at 12 x 12
    positions; the 3 x 3 grid sums the triangle codes over blocks of 4 x 4 of them."""
    p = D.DoGLIFParams(n_filters=5, downsample=2)
    images = _images(3, seed=4)
    fit = D.RetinaFit.fit(_images(20), p, seed=0)
    c = torch.randn(5, 75, generator=torch.Generator().manual_seed(0))
    got = K.kmeans_features(images, fit, p, c)
    code = K.triangle_code(fit._signed(L._as_float(torch.as_tensor(images)), p).reshape(-1, 75), c)
    blocks = code.reshape(3, 3, 4, 3, 4, 5).sum(dim=(2, 4))  # (image, row, column, centroid)
    assert got.shape == (3, 5 * 9)
    np.testing.assert_allclose(got, blocks.permute(0, 3, 1, 2).reshape(3, -1).numpy(),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="downsample"):
        K.kmeans_features(images, fit, D.DoGLIFParams(n_filters=5), c)


def test_centroids_become_layer_weights_of_the_layers_sum_split_into_on_and_off():
    """w = w_sum [max(c, 0), max(-c, 0)] / |c|_1: non-negative, each neuron's weights sum to
    the layer's w_sum_mv, the ON half is the centroid's positive part and the OFF half its
    negative part, both in proportion to the centroid."""
    p = D.DoGLIFParams(n_filters=3)
    c = torch.randn(3, 75, generator=torch.Generator().manual_seed(0))
    c[1] = c[1].abs()  # a centroid with no negative part: its OFF weights are all 0
    w = K.weights_from_centroids(c, p)
    assert w.shape == (3, 150) and bool((w >= 0).all())
    assert torch.allclose(w.sum(1), torch.full((3,), p.w_sum_mv))
    scale = p.w_sum_mv / c.abs().sum(1, keepdim=True)
    assert torch.allclose(w[:, :75], c.clamp(min=0) * scale, atol=1e-6)
    assert torch.allclose(w[:, 75:], (-c).clamp(min=0) * scale, atol=1e-6)
    assert float(w[1, 75:].abs().max()) == 0.0
    # of patches of one length, the one along a centroid drives its neuron most, at the
    # Cauchy-Schwarz bound w_sum |c|_2 |x|_2 / |c|_1
    x = torch.randn(500, 75, generator=torch.Generator().manual_seed(2))
    x = torch.cat([c[:1], x]) / torch.cat([c[:1], x]).norm(dim=1, keepdim=True)
    drive = L.on_off_inputs(x.clamp(-1, 1)) @ w[0]
    assert int(drive.argmax()) == 0
    assert float(drive[0]) == pytest.approx(p.w_sum_mv * float(c[0].norm() / c[0].abs().sum()),
                                            rel=1e-5)


def test_layer_weights_become_centroids_of_one_length_along_on_minus_off():
    """c = norm (w+ - w-) / |w+ - w-|_2, and the inverse of weights_from_centroids up to each
    centroid's length: the round trip keeps every centroid's direction."""
    p = D.DoGLIFParams(n_filters=4)
    c = torch.randn(4, 75, generator=torch.Generator().manual_seed(1))
    back = K.centroids_from_weights(K.weights_from_centroids(c, p), p, norm=2.5)
    assert torch.allclose(back.norm(dim=1), torch.full((4,), 2.5))
    assert torch.allclose(back, 2.5 * c / c.norm(dim=1, keepdim=True), atol=1e-5)
    # a layer's own weights, whose ON and OFF halves overlap: ON minus OFF, at the asked length
    w = D.DoGLIF(p, seed=0).w_mv
    d = w[:, :75] - w[:, 75:]
    # its drive: a linear part along ON minus OFF and a part blind to each value's sign
    x = torch.randn(7, 75, generator=torch.Generator().manual_seed(3)).clamp(-1, 1)
    assert torch.allclose(L.on_off_inputs(x) @ w.T,
                          0.5 * x @ d.T + 0.5 * x.abs() @ (w[:, :75] + w[:, 75:]).T, atol=1e-4)
    assert torch.allclose(K.centroids_from_weights(w, p, norm=1.0),
                          d / d.norm(dim=1, keepdim=True), atol=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda p: K.weights_from_centroids(torch.zeros(2, 12), p), r"centroids must be \(k, 75\)"),
    (lambda p: K.weights_from_centroids(torch.zeros(2, 75), p), "not all zero"),
    (lambda p: K.weights_from_centroids(torch.full((2, 75), float("inf")), p), "finite"),
    (lambda p: K.weights_from_centroids(torch.ones(2, 75), "p"), "p must be"),
    (lambda p: K.centroids_from_weights(torch.ones(2, 75), p, norm=1.0), r"\(k, 150\)"),
    (lambda p: K.centroids_from_weights(torch.ones(2, 150), p, norm=1.0), "must differ"),
    (lambda p: K.centroids_from_weights(torch.rand(2, 150), p, norm=0.0), "norm"),
    (lambda p: K.centroids_from_weights(torch.rand(2, 150), p, norm=float("nan")), "norm"),
])
def test_the_maps_between_centroids_and_weights_refuse_bad_input_with_a_message(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(D.DoGLIFParams(n_filters=2))


def test_the_dictionaries_table_shows_each_pairing_for_each_stored_run(tmp_path):
    rows = {key: {"what": what, "val_accuracy": acc} for key, what, acc in [
        ("stdp_spikes", "STDP filters, spike counts (the tier)", 0.6265),
        ("kmeans_spikes", "k-means centroids as weights, spike counts", 0.635),
        ("kmeans_triangle", "k-means centroids as fitted, triangle code", 0.6465)]}
    small = {"name": "a", "train_images": 5000, "val_images": 2000, "rows": rows}
    large = {"name": "b", "train_images": 20000, "val_images": 5000,
             "rows": {k: {**v, "val_accuracy": v["val_accuracy"] + 0.05} for k, v in rows.items()
                      if k != "kmeans_spikes"}}
    path = tmp_path / "d.json"
    path.write_text(json.dumps([large, small]))
    text = repr(K.dictionaries_table(path))
    assert "5,000 / 2,000 images" in text and "20,000 / 5,000 images" in text
    assert text.index("5,000 / 2,000 images") < text.index("20,000 / 5,000 images")
    lines = text.splitlines()
    tier = next(line for line in lines if line.startswith("STDP filters"))
    assert "62.65%" in tier and "67.65%" in tier
    swapped = next(line for line in lines if line.startswith("k-means centroids as weights"))
    assert "63.50%" in swapped and "n/a" in swapped  # the second run has no such row
    assert text.index("STDP filters") < text.index("as weights") < text.index("as fitted")
    path.write_text(json.dumps([{**small, "rows": {"stdp_spikes": {"what": "x"}}}]))
    with pytest.raises(ValueError, match="run 'a' .* has rows without"):
        K.dictionaries_table(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="no run"):
        K.dictionaries_table(path)
    with pytest.raises(FileNotFoundError, match="dog_lif_dictionaries.py"):
        K.dictionaries_table(tmp_path / "none.json")
