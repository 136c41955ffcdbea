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
           "features": 4608, "train_images": 5000, "val_images": 2000, "val_accuracy": 0.6355,
           "images_per_s": 140.2}
    path = tmp_path / "kmeans.json"
    path.write_text(json.dumps([run, {**run, "name": "Coates", "centroids": 1600,
                                      "patch_px": 6, "pool": 2, "val_accuracy": 0.7}]))
    text = repr(K.reference_table(path))
    assert "63.55%" in text and "70.00%" in text and "5 x 5" in text and "6 x 6" in text
    assert text.index("the tier's geometry") < text.index("Coates")
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
