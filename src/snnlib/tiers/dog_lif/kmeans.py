"""The non-spiking counterpart of tier 2's layer: k-means centroids of whitened patches and their
triangle code (Coates, Ng & Lee 2011).

Tier 2's layer learns by STDP under winner-take-all: each neuron drifts towards the patches it
wins, like a centroid of k-means. Coates et al. (2011) learned features exactly that way, without
spikes: k-means on whitened patches, then the *triangle* code of every patch (how much closer
it is to each centroid than to the centroids on average), summed over image regions and read out
by a linear classifier. Fitted with the tier's retina (:class:`RetinaFit`) to the same patches,
pooled on the same grid and read out by the same kind of classifier, the k-means features say
what the spikes cost (``benchmarks/kmeans_reference.py``). They are not the tier minus its
spikes alone: k-means codes the whitened values themselves, where the tier scales and clips
them and splits them into ON and OFF inputs.

References
----------
Coates, A., Ng, A. & Lee, H. (2011). An analysis of single-layer networks in unsupervised
feature learning. *AISTATS*.
Arthur, D. & Vassilvitskii, S. (2007). k-means++: the advantages of careful seeding. *SODA*.
Lloyd, S. (1982). Least squares quantization in PCM. *IEEE Trans. Inf. Theory* 28, 129-137.
"""

from __future__ import annotations

import numpy as np
import torch

from ... import _validate as check
from ... import runs, viz
from .layer import DoGLIFParams, RetinaFit, _as_float, _checked_images, _pool

__all__ = ["kmeans_features", "kmeans_fit", "reference_table", "sample_patches",
           "triangle_code"]


def _tensor(x) -> torch.Tensor:
    """A checked array as a tensor (numpy arrays are shared, not copied)."""
    return x if torch.is_tensor(x) else torch.as_tensor(x)


def _sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(n, k)`` between rows of ``x`` and of ``c`` (rounding may give tiny
    negative values; they are clamped to 0)."""
    return ((x * x).sum(1, keepdim=True) + (c * c).sum(1)[None] - 2.0 * x @ c.T).clamp_(min=0.0)


def kmeans_fit(patches, k: int, *, iterations: int = 10, seed: int = 0,
               chunk: int = 50_000) -> tuple[torch.Tensor, list[float]]:
    """k-means centroids of ``(n, d)`` patches by Lloyd's algorithm.

    Starting from k-means++ seeds (Arthur & Vassilvitskii 2007: the first centroid is a patch
    drawn at random, each next one a patch drawn with probability proportional to its squared
    distance to the nearest centroid so far), each iteration assigns every patch :math:`x_i` to
    its nearest centroid, :math:`a_i = \\arg\\min_k \\lVert x_i - c_k \\rVert`, and moves each
    centroid to the mean of its patches,

    .. math:: c_k \\leftarrow \\frac{1}{|\\{i: a_i = k\\}|} \\sum_{i: a_i = k} x_i ,

    a centroid without patches staying where it is. Neither step can raise the mean squared
    distance of the patches to their centroids, :math:`J = \\frac1n \\sum_i \\lVert x_i -
    c_{a_i} \\rVert^2`.

    Parameters
    ----------
    patches : array or tensor ``(n, d)``, finite, ``n <= 2**24``
    k : int
        Centroids, at most ``n``.
    iterations : int
        Lloyd iterations (assignment, then update).
    seed : int
        Seeds the k-means++ draws: the same seed gives the same centroids.
    chunk : int
        Patches whose distances to every centroid are computed at once (memory:
        about ``12 * chunk * k`` bytes).

    Returns
    -------
    centroids : torch.Tensor ``(k, d)``, float32
    objective : list of float
        :math:`J` at each iteration's assignment, before its update (non-increasing up to
        rounding; the returned centroids, after the last update, fit at least as well).
    """
    where = "kmeans_fit"
    x = check.array("patches", patches, ndim=2, where=where)
    x = (x if torch.is_tensor(x) else torch.as_tensor(x)).float()
    check.positive_int("k", k, where=where)
    check.positive_int("iterations", iterations, where=where)
    check.integer("seed", seed, low=0, where=where)
    check.positive_int("chunk", chunk, where=where)
    if k > x.shape[0]:
        raise ValueError(f"{where}: k ({k}) centroids need at least as many patches, got "
                         f"{x.shape[0]}.")
    if x.shape[0] > 2 ** 24:
        raise ValueError(f"{where}: at most 2**24 patches (k-means++ draws among them), got "
                         f"{x.shape[0]}; sample fewer.")
    check.fits_in_memory(f"k-means of {x.shape[0]} patches in chunks of chunk={chunk} against "
                         f"{k} centroids", 4 * (3 * min(chunk, len(x)) * k + 2 * x.numel()),
                         where=where)
    g = torch.Generator().manual_seed(int(seed))
    c = _kmeans_pp(x, k, g)
    objective = []
    for _ in range(iterations):
        nearest = torch.empty(len(x), dtype=torch.long)
        total = 0.0
        for s in range(0, len(x), chunk):
            best, nearest[s:s + chunk] = _sq_distances(x[s:s + chunk], c).min(1)
            total += float(best.double().sum())
        objective.append(total / len(x))
        counts = torch.bincount(nearest, minlength=k).float()
        sums = torch.zeros_like(c).index_add_(0, nearest, x)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1.0)[:, None], c)
    return c, objective


def _kmeans_pp(x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """k-means++ seeds: ``k`` rows of ``x``, each next one drawn with probability proportional to
    its squared distance to the nearest one drawn so far (uniformly once every row is a seed)."""
    c = torch.empty(k, x.shape[1])
    c[0] = x[torch.randint(0, len(x), (1,), generator=g)]
    d2 = ((x - c[0]) ** 2).sum(1)
    for j in range(1, k):
        weights = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)
        c[j] = x[torch.multinomial(weights, 1, generator=g)]
        d2 = torch.minimum(d2, ((x - c[j]) ** 2).sum(1))
    return c


def triangle_code(patches, centroids) -> torch.Tensor:
    """The triangle code of ``(n, d)`` patches against ``(k, d)`` centroids, ``(n, k)``.

    .. math:: f_k(x) = \\max\\left(0,\\ \\bar z(x) - z_k(x)\\right), \\quad
              z_k(x) = \\lVert x - c_k \\rVert, \\quad \\bar z(x) = \\frac1K \\sum_j z_j(x)

    (Coates et al. 2011): a patch is coded by the centroids it is closer to than average, with
    how much closer; the others read 0, so about half the code is zero, like a competition
    between the centroids. The distances come from the expanded square
    :math:`\\lVert x\\rVert^2 + \\lVert c\\rVert^2 - 2 x \\cdot c` in float32 (one matrix product),
    so a distance far below the patches' norm (a patch on a centroid) reads as about
    :math:`10^{-3}` of it rather than 0.
    """
    where = "triangle_code"
    x = _tensor(check.array("patches", patches, ndim=2, where=where))
    c = _tensor(check.array("centroids", centroids, ndim=2, where=where))
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"{where}: patches (n, d) and centroids (k, d) must share d, got "
                         f"shapes {tuple(x.shape)} and {tuple(c.shape)}.")
    return _triangle(x.float(), c.float())


def _triangle(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """:func:`triangle_code` of float tensors already checked."""
    z = _sq_distances(x, c).sqrt_()
    return (z.mean(1, keepdim=True) - z).clamp_(min=0.0)


def sample_patches(images, retina: RetinaFit, p: DoGLIFParams, n: int, *, seed: int,
                   block: int = 1000) -> torch.Tensor:
    """``n`` whitened patches ``(n, 3 * p.patch_px**2)`` drawn uniformly at random, with
    replacement, from every position (``p.patch_px``, ``p.stride_px``) of ``images``: the
    signed values of ``retina`` (before the tier's scaling and ON/OFF split), whitened
    ``block`` images at a time."""
    where = "sample_patches"
    check.instance("retina", retina, RetinaFit, where=where)
    retina._check_params(p, where)
    checked = _checked_images(images, "images", where)
    check.positive_int("n", n, where=where)
    check.integer("seed", seed, low=0, where=where)
    check.positive_int("block", block, where=where)
    d = p.n_inputs // 2
    check.fits_in_memory(f"{n} patches, whitened block={block} images at a time",
                         4 * (n * d + 4 * min(block, len(checked)) * p.side ** 2 * d),
                         where=where)
    per_image = p.side ** 2
    g = torch.Generator().manual_seed(int(seed))
    pick = torch.randint(0, len(checked) * per_image, (n,), generator=g)
    which, place = pick // per_image, pick % per_image
    out = torch.empty(n, d)
    for s in range(0, len(checked), block):
        inside = (which >= s) & (which < s + block)
        if inside.any():
            signed = retina._signed(_as_float(checked[s:s + block]), p)  # (block, L, d)
            out[inside] = signed[which[inside] - s, place[inside]]
    return out


def kmeans_features(images, retina: RetinaFit, p: DoGLIFParams, centroids, *,
                    batch: int = 100) -> np.ndarray:
    """Pooled triangle codes of images, ``(N, k * p.pool**2)``, in the layout of
    :meth:`DoGLIF.features <snnlib.tiers.dog_lif.DoGLIF.features>` (feature
    ``k * p.pool**2 + r`` is centroid ``k`` summed over region ``r``, row by row).

    Every ``p.patch_px`` patch at stride ``p.stride_px`` is whitened by ``retina`` (its signed
    values, before the tier's scaling and ON/OFF split), coded by :func:`triangle_code` and
    the codes are summed over a ``p.pool x p.pool`` grid of image regions, as the tier sums
    its spike counts. ``batch`` images are coded at once (memory: about
    ``4 * batch * p.side**2 * (3 k + 4 d)`` bytes for ``k`` centroids of ``d`` values).
    """
    where = "kmeans_features"
    check.instance("retina", retina, RetinaFit, where=where)
    retina._check_params(p, where)
    c = _tensor(check.array("centroids", centroids, ndim=2, where=where)).float()
    if c.shape[1] != p.n_inputs // 2:
        raise ValueError(f"{where}: centroids must be (k, {p.n_inputs // 2}) for "
                         f"{p.patch_px}-pixel patches of 3 channels, got shape {tuple(c.shape)}.")
    check.positive_int("batch", batch, where=where)
    checked = _checked_images(images, "images", where)
    n_patches = min(batch, len(checked)) * p.side ** 2
    k, d = c.shape
    check.fits_in_memory(f"the features of {len(checked)} images and the distances of "
                         f"{n_patches} patches (batch={batch} images) to {k} centroids",
                         4 * (len(checked) * k * p.pool ** 2 + n_patches * (3 * k + 4 * d)),
                         where=where)
    out = np.zeros((len(checked), k * p.pool ** 2), dtype=np.float32)
    for s in range(0, len(checked), batch):
        signed = retina._signed(_as_float(checked[s:s + batch]), p)  # (n, L, d)
        n = signed.shape[0]
        code = _triangle(signed.reshape(-1, d), c)  # checked once, above
        out[s:s + n] = _pool(code, n, p.side, p.pool).numpy()
    return out


def reference_table(path):
    """The k-means features on the validation split: one row per run of
    ``benchmarks/kmeans_reference.py`` stored in the JSON list at ``path`` (in the order stored),
    with its centroids, patch side, pooling grid, features per image, training and validation
    images, validation accuracy and images per second of the feature extraction."""
    found = runs.stored_benchmark_runs(
        path, "kmeans.reference_table", "kmeans_reference.py",
        ("name", "centroids", "patch_px", "pool", "features", "train_images", "val_images",
         "val_accuracy", "images_per_s"))
    if not found:
        raise ValueError(f"kmeans.reference_table: {path} holds no run of "
                         "benchmarks/kmeans_reference.py")
    rows = {r["name"]: {"centroids": r["centroids"],
                        "patch (px)": f"{r['patch_px']} x {r['patch_px']}",
                        "pooling": f"{r['pool']} x {r['pool']}", "features": r["features"],
                        "training images": r["train_images"],
                        "validation images": r["val_images"],
                        "validation accuracy": r["val_accuracy"],
                        "images/s": r["images_per_s"]}
            for r in found}
    return viz.table(rows, formats={"validation accuracy": ".2%", "images/s": ".0f"},
                     caption="k-means triangle features of whitened patches (the tier's "
                             "retina), a standardised logistic regression; validation split")
