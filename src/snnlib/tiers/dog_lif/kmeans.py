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

:class:`SecondLayer` stacks a second k-means layer on the first one's code, as Coates & Ng
(2011) built deeper networks: the code averaged over small blocks, its neighbourhoods
contrast-normalised (:func:`neighbourhoods`) and whitened (:func:`whitening_fit`), then
k-means and the triangle code again. It asks whether a second layer of this kind of feature
learner adds what a wider first layer does not.

References
----------
Coates, A., Ng, A. & Lee, H. (2011). An analysis of single-layer networks in unsupervised
feature learning. *AISTATS*.
Coates, A. & Ng, A. (2011). Selecting receptive fields in deep networks. *NIPS*.
Arthur, D. & Vassilvitskii, S. (2007). k-means++: the advantages of careful seeding. *SODA*.
Lloyd, S. (1982). Least squares quantization in PCM. *IEEE Trans. Inf. Theory* 28, 129-137.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import _validate as check
from ... import runs, viz
from ...plasticity import normalize_weights
from .layer import DoGLIFParams, RetinaFit, _as_float, _checked_images, _pool

__all__ = ["SecondLayer", "centroids_from_weights", "dictionaries_table", "kmeans_features",
           "kmeans_fit", "neighbourhoods", "reference_table", "sample_patches", "triangle_code",
           "weights_from_centroids", "whitening_fit"]


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
    out = torch.empty(n, d)
    for s, inside, image, place in _draws(len(checked), p.side ** 2, n, seed, block):
        if inside.any():
            signed = retina._signed(_as_float(checked[s:s + block]), p)  # (block, L, d)
            out[inside] = signed[image, place]
    return out


def _draws(n_images: int, per_image: int, n: int, seed: int, block: int):
    """``n`` places drawn uniformly at random, with replacement (seeded), among ``per_image``
    places of each of ``n_images`` images, handed out ``block`` images at a time: yields the
    block's first image ``s``, the mask of the draws that fall in the block, and their images
    (counted from ``s``) and places."""
    g = torch.Generator().manual_seed(int(seed))
    pick = torch.randint(0, n_images * per_image, (n,), generator=g)
    which, place = pick // per_image, pick % per_image
    for s in range(0, n_images, block):
        inside = (which >= s) & (which < s + block)
        yield s, inside, which[inside] - s, place[inside]


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
    c = _first_centroids(centroids, p, where)
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
        x = _as_float(checked[s:s + batch])
        code = _first_code(x, retina, p, c)  # centroids checked once, above
        out[s:s + len(x)] = _pool(code, len(x), p.side, p.pool).numpy()
    return out


def weights_from_centroids(centroids, p: DoGLIFParams) -> torch.Tensor:
    """The tier's layer weights ``(k, p.n_inputs)`` (mV) that point where ``centroids`` do.

    A centroid :math:`c` of whitened patches is split as the layer splits a patch into ON and
    OFF inputs, and scaled to the layer's fixed weight sum (``p.w_sum_mv``, as
    :func:`~snnlib.plasticity.normalize_weights` keeps STDP's weights):

    .. math:: w = w_\\Sigma \\, \\frac{[\\max(c, 0),\\ \\max(-c, 0)]}{\\lVert c \\rVert_1}.

    Of all patches of one length, the one along its centroid drives such a neuron most: its
    mean drive is proportional to :math:`w \\cdot [\\max(x, 0), \\max(-x, 0)]`, which is at
    most :math:`w_\\Sigma \\lVert c \\rVert_2 \\lVert x \\rVert_2 / \\lVert c \\rVert_1` by
    Cauchy-Schwarz (the ON and OFF parts of :math:`c` never overlap), with equality for
    :math:`x` a positive multiple of :math:`c`. The centroid's length is lost, as STDP's
    normalisation loses it.
    """
    where = "weights_from_centroids"
    check.instance("p", p, DoGLIFParams, where=where)
    c = _first_centroids(centroids, p, where)
    if bool((c.abs().sum(1) == 0).any()):
        raise ValueError(f"{where}: every centroid must be not all zero.")
    return normalize_weights(torch.cat([c.clamp(min=0), (-c).clamp(min=0)], dim=1), p.w_sum_mv)


def centroids_from_weights(w_mv, p: DoGLIFParams, *, norm: float) -> torch.Tensor:
    """Centroids ``(k, p.n_inputs // 2)`` in the whitened space that the layer's weights point to.

    A neuron's ON weights :math:`w^+` and OFF weights :math:`w^-` act on the positive and
    negative parts of a patch :math:`x`, so its drive is proportional to
    :math:`\\tfrac12 (w^+ - w^-) \\cdot x + \\tfrac12 (w^+ + w^-) \\cdot \\lvert x \\rvert`: a
    linear part along :math:`w^+ - w^-` and a part blind to the sign of each value. Its centroid
    is the linear part's direction at length ``norm`` (the weights carry no length of their
    own); the sign-blind part, which is there wherever a value's ON and OFF weights are both
    above 0 (as STDP leaves them), is dropped:

    .. math:: c = \\text{norm} \\, \\frac{w^+ - w^-}{\\lVert w^+ - w^- \\rVert_2}.

    The inverse of :func:`weights_from_centroids` (whose ON and OFF weights never overlap) up to
    each centroid's length.
    """
    where = "centroids_from_weights"
    check.instance("p", p, DoGLIFParams, where=where)
    w = _tensor(check.array("w_mv", w_mv, ndim=2, where=where)).float()
    if w.shape[1] != p.n_inputs:
        raise ValueError(f"{where}: w_mv must be (k, {p.n_inputs}), got {tuple(w.shape)}.")
    norm = check.number("norm", norm, low=0, low_open=True, where=where)
    h = p.n_inputs // 2
    d = w[:, :h] - w[:, h:]
    length = d.norm(dim=1, keepdim=True)
    if bool((length == 0).any()):
        raise ValueError(f"{where}: every neuron's ON and OFF weights must differ.")
    return norm * d / length


def reference_table(path):
    """The k-means features on the validation split: one row per run of
    ``benchmarks/kmeans_reference.py`` stored in the JSON list at ``path`` (in the order stored),
    with its centroids, patch side, pooling grid, the retina's ZCA regulariser
    (``DoGLIFParams.zca_eps``), features per image, training and validation images, validation
    accuracy and images per second of the feature extraction. A run with a second layer shows
    both layers' centroids and pooling ("512 + 1,024"), a run with a second scale both scales'
    centroids and patches (the second's in pixels of the original images, "5 x 5 + 10 x 10 (2 x 2
    averaged)"); their features, accuracy and speed are those of both together, and the column
    "first alone" shows the first layer's (or scale's) features read out in the same run."""
    found = runs.stored_benchmark_runs(
        path, "kmeans.reference_table", "kmeans_reference.py",
        ("name", "centroids", "patch_px", "pool", "zca_eps", "features", "train_images",
         "val_images", "val_accuracy", "images_per_s"))
    if not found:
        raise ValueError(f"kmeans.reference_table: {path} holds no run of "
                         "benchmarks/kmeans_reference.py")
    rows = {r["name"]: {"centroids": _layers(r, "centroids", "{:,}"),
                        "patch (px)": _patches(r),
                        "pooling": _layers(r, "pool", "{0} x {0}"), "ZCA eps": r["zca_eps"],
                        "features": r["features"],
                        "training images": r["train_images"],
                        "validation images": r["val_images"],
                        "validation accuracy": r["val_accuracy"],
                        "first alone": r.get("val_accuracy_first_layer", viz.NA),
                        "images/s": r["images_per_s"]}
            for r in found}
    return viz.table(rows, formats={"validation accuracy": ".2%", "first alone": ".2%",
                                    "ZCA eps": "g", "images/s": ".0f"},
                     caption="k-means triangle features of whitened patches (the tier's "
                             "retina), a standardised logistic regression; validation split")



def dictionaries_table(path):
    """The tier's layer and the k-means code with their filters swapped, on the validation
    split: one column per run of ``benchmarks/dog_lif_dictionaries.py`` stored in the JSON list
    at ``path`` (headed by its training and validation images, fewest first), one row per
    pairing of filters and code that the script scores (five: STDP or k-means filters, spike
    counts or triangle code, and the centroids at their own lengths), in its order."""
    found = runs.stored_benchmark_runs(path, "kmeans.dictionaries_table",
                                       "dog_lif_dictionaries.py",
                                       ("name", "train_images", "val_images", "rows"))
    if not found:
        raise ValueError(f"kmeans.dictionaries_table: {path} holds no run of "
                         "benchmarks/dog_lif_dictionaries.py")
    for r in found:
        if not (isinstance(r["rows"], dict) and all(
                isinstance(row, dict) and "what" in row and "val_accuracy" in row
                for row in r["rows"].values())):
            raise ValueError(f"kmeans.dictionaries_table: run {r['name']!r} in {path} has rows "
                             "without 'what' and 'val_accuracy'")
    found = sorted(found, key=lambda r: (r["train_images"], r["val_images"]))
    columns = {f"{r['train_images']:,} / {r['val_images']:,} images": r["rows"] for r in found}
    what = {}  # every row any run has, in the order first met, with its description
    for r in found:
        for key, row in r["rows"].items():
            what.setdefault(key, row["what"])
    rows = {label: {col: rs[key]["val_accuracy"] if key in rs else viz.NA
                    for col, rs in columns.items()}
            for key, label in what.items()}
    return viz.table(rows, formats=".2%",
                     caption="Validation accuracy of the filters and codes swapped (training / "
                             "validation images); one retina, one split, one readout per column")


def neighbourhoods(maps, size: int = 3, eps: float = 0.0) -> torch.Tensor:
    """Contrast-normalised ``size x size`` neighbourhoods of feature maps ``(n, k, h, w)``:
    ``(n, (h - size + 1) * (w - size + 1), size**2 * k)``, positions row by row.

    Each neighbourhood :math:`u` (all ``k`` maps at ``size x size`` places, stride 1, no
    padding) becomes

    .. math:: \\hat u = \\frac{u - \\bar u}{\\sqrt{\\operatorname{var}(u) + \\epsilon}},

    its mean :math:`\\bar u` and (population) variance taken over its own ``size**2 * k``
    values, as Coates et al. normalise pixel patches; ``eps`` keeps flat neighbourhoods from
    being blown up. With ``eps = 0`` a neighbourhood of exactly zero variance reads 0, but one
    flat only up to rounding is scaled up to unit variance: use ``eps > 0`` on real maps.
    """
    where = "neighbourhoods"
    m = _tensor(check.array("maps", maps, ndim=4, where=where)).float()
    check.positive_int("size", size, where=where)
    check.number("eps", eps, low=0.0, where=where)
    if size > min(m.shape[2:]):
        raise ValueError(f"{where}: size ({size}) exceeds the maps' {m.shape[2]} x "
                         f"{m.shape[3]} places.")
    return _neighbourhoods(m, size, float(eps))


def _neighbourhoods(m: torch.Tensor, size: int, eps: float) -> torch.Tensor:
    """:func:`neighbourhoods` of float maps already checked."""
    return _scaled(*_centred(torch.nn.functional.unfold(m, size).transpose(1, 2)), eps)


def _centred(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``u`` less their mean, and their population variance (last dimension kept)."""
    u = u - u.mean(-1, keepdim=True)
    return u, u.pow(2).mean(-1, keepdim=True)


def _scaled(u: torch.Tensor, var: torch.Tensor, eps: float) -> torch.Tensor:
    """Centred rows over :math:`\\sqrt{var + eps}` (in place), rows with ``var + eps = 0`` to 0."""
    total = var + eps
    return u.mul_(torch.where(total > 0, total.clamp(min=1e-30).rsqrt(), 0.0))


def whitening_fit(samples, dims: int, *, eps: float = 0.1, chunk: int = 20_000):
    """PCA whitening of ``(n, d)`` samples onto their ``dims`` strongest directions: the mean
    :math:`\\mu` and the matrix :math:`W` ``(d, dims)`` of :math:`z = (x - \\mu)\\, W`,

    .. math:: W = V \\,\\operatorname{diag}\\left(\\lambda_i + \\epsilon \\bar\\lambda\\right)^{-1/2},

    :math:`V` the ``dims`` leading eigenvectors of the samples' covariance, :math:`\\lambda_i`
    their eigenvalues and :math:`\\bar\\lambda` the mean of those ``dims`` eigenvalues. The
    whitened samples have covariance
    :math:`\\operatorname{diag}(\\lambda_i / (\\lambda_i + \\epsilon\\bar\\lambda))`: the identity
    for ``eps = 0``, the weak directions damped for ``eps > 0``. The covariance is summed in
    float64, ``chunk`` samples at a time.
    """
    where = "whitening_fit"
    x = _tensor(check.array("samples", samples, ndim=2, where=where))
    check.positive_int("dims", dims, where=where)
    check.number("eps", eps, low=0.0, where=where)
    check.positive_int("chunk", chunk, where=where)
    n, d = x.shape
    if dims > d or n < 2:
        raise ValueError(f"{where}: dims ({dims}) must be at most the samples' {d} "
                         f"values, and at least 2 samples are needed (got {n}).")
    check.fits_in_memory(f"the covariance of {d} values, {chunk} samples at a time",
                         8 * (3 * d * d + 2 * min(chunk, n) * d), where=where)
    mean = sum(x[s:s + chunk].double().sum(0) for s in range(0, n, chunk)) / n
    cov = torch.zeros(d, d, dtype=torch.float64)
    for s in range(0, n, chunk):
        xc = x[s:s + chunk].double() - mean
        cov += xc.T @ xc
    lam, vec = torch.linalg.eigh(cov / (n - 1))
    lam, vec = lam.flip(0)[:dims].clamp(min=0.0), vec.flip(1)[:, :dims]
    scale = lam + eps * lam.mean()
    if not bool((scale > 0).all()):
        raise ValueError(f"{where}: the samples vary along fewer than dims ({dims}) "
                         "directions; ask for fewer"
                         + (", or set eps > 0." if eps == 0 else "."))
    return mean.float(), (vec / scale.sqrt()).float()


def _first_code(x: torch.Tensor, retina: RetinaFit, p: DoGLIFParams,
                c: torch.Tensor) -> torch.Tensor:
    """Triangle codes of float images ``(n, 3, 32, 32)`` at every position, ``(n * side * side,
    k)``, image by image and positions row by row."""
    signed = retina._signed(x, p)  # (n, L, d)
    return _triangle(signed.reshape(-1, signed.shape[-1]), c)


def _maps(code: torch.Tensor, n: int, side: int) -> torch.Tensor:
    """:func:`_first_code` of ``n`` images as maps ``(n, k, side, side)`` (a view)."""
    return code.reshape(n, side, side, -1).permute(0, 3, 1, 2)


CONTRAST_FLOOR = 0.01
"""A second layer's contrast floor :math:`\\epsilon`, as a fraction of its maps' variance."""


@dataclass(frozen=True, eq=False)
class SecondLayer:
    """A second k-means layer on the first layer's triangle code (after Coates & Ng 2011's
    deep networks, but with every first-layer feature in each neighbourhood).

    The first layer's code (:func:`triangle_code` of its centroids ``first``, ``(k1, d1)``,
    at every position) is averaged over ``local_px x local_px`` blocks into maps of
    ``side // local_px`` places; each ``size x size`` neighbourhood of the maps (``size**2 *
    k1`` values) is contrast-normalised (:func:`neighbourhoods` with ``contrast_eps``),
    whitened, :math:`z = (\\hat u - \\mu) W` (:func:`whitening_fit`: ``mean`` :math:`\\mu`,
    ``whitening`` :math:`W`), and coded by the triangle code of the second layer's
    ``centroids`` ``(k, dims)``, summed over a ``pool x pool`` grid of regions.
    """

    first: torch.Tensor
    mean: torch.Tensor
    whitening: torch.Tensor
    centroids: torch.Tensor
    contrast_eps: float
    objective: tuple = ()
    local_px: int = 2
    size: int = 3
    pool: int = 2

    def __post_init__(self):
        where = "SecondLayer"
        for name in ("local_px", "size", "pool"):
            check.positive_int(name, getattr(self, name), where=where)
        check.number("contrast_eps", self.contrast_eps, low=0.0, where=where)
        for name in ("first", "mean", "whitening", "centroids"):
            value = check.tensor(name, getattr(self, name), where=where)
            if not value.is_floating_point():
                raise TypeError(f"{where}: {name} must be floats, got dtype {value.dtype}")
            check.array(name, value, where=where)  # finite
            object.__setattr__(self, name, value.detach().float().clone())
        shapes = {name: tuple(getattr(self, name).shape)
                  for name in ("first", "mean", "whitening", "centroids")}
        d = self.size ** 2 * shapes["first"][0] if len(shapes["first"]) == 2 else None
        dims = shapes["whitening"][1] if len(shapes["whitening"]) == 2 else None
        if (d is None or dims is None or shapes["mean"] != (d,)
                or shapes["whitening"] != (d, dims) or len(shapes["centroids"]) != 2
                or shapes["centroids"][1] != dims):
            raise ValueError(f"{where}: first (k1, d1), mean (size**2 * k1,), whitening "
                             "(size**2 * k1, dims) and centroids (k, dims) must agree, got "
                             + ", ".join(f"{n} {s}" for n, s in shapes.items())
                             + f" with size {self.size}.")

    @property
    def k(self) -> int:
        """Centroids of the second layer."""
        return int(self.centroids.shape[0])

    @classmethod
    def fit(cls, images, retina: RetinaFit, p: DoGLIFParams, centroids, k: int, *,
            dims: int = 384, n_patches: int = 200_000, iterations: int = 10, seed: int = 0,
            local_px: int = 2, size: int = 3, pool: int = 2, whitening_eps: float = 0.1,
            block: int = 250) -> "SecondLayer":
        """Fit a second layer on the first layer's ``centroids`` to ``n_patches``
        neighbourhoods drawn uniformly at random, with replacement, from every place of
        ``images``' maps: the contrast floor

        .. math:: \\epsilon = 0.01 \\operatorname{var}(m),

        the variance of every value of the images' maps :math:`m` (:data:`CONTRAST_FLOOR`),
        then the whitening of the normalised neighbourhoods onto ``dims`` directions
        (``whitening_eps``) and ``k`` centroids of the whitened ones (:func:`kmeans_fit`,
        ``iterations``, ``seed``). The first layer's code is computed ``block`` images at a
        time; the same seed gives the same layer.
        """
        where = "SecondLayer.fit"
        check.instance("retina", retina, RetinaFit, where=where)
        retina._check_params(p, where)
        c = _first_centroids(centroids, p, where)
        checked = _checked_images(images, "images", where)
        for name, value in (("k", k), ("dims", dims), ("n_patches", n_patches),
                            ("iterations", iterations), ("local_px", local_px),
                            ("size", size), ("pool", pool), ("block", block)):
            check.positive_int(name, value, where=where)
        check.integer("seed", seed, low=0, where=where)
        check.number("whitening_eps", whitening_eps, low=0.0, where=where)
        places = _second_places(p, local_px, size, pool, where)
        d = size ** 2 * c.shape[0]
        if dims > d:
            raise ValueError(f"{where}: dims ({dims}) exceeds the {d} values of a "
                             f"neighbourhood ({size} x {size} places of {c.shape[0]} maps).")
        if not 2 <= n_patches <= 2 ** 24 or k > n_patches:
            raise ValueError(f"{where}: n_patches ({n_patches}) must be from 2 to 2**24 and at "
                             f"least k ({k}).")
        b, chunk = min(block, len(checked)), min(20_000, n_patches)
        phases = (4 * b * (p.side ** 2 * (3 * c.shape[0] + 4 * c.shape[1]) + 2 * places ** 2 * d),
                  8 * (5 * d * d + 2 * chunk * d),  # whitening_fit
                  4 * (2 * n_patches * dims + chunk * d))  # the whitened draws
        check.fits_in_memory(
            f"{n_patches} neighbourhoods of {d} values, the code of block={block} images, their "
            f"whitening and {k} centroids",
            4 * n_patches * (d + 1) + max(phases) + 12 * min(50_000, n_patches) * k,
            where=where)
        drawn, var = torch.empty(n_patches, d), torch.empty(n_patches, 1)
        total, total_sq, count = 0.0, 0.0, 0
        for s, inside, image, place in _draws(len(checked), places ** 2, n_patches, seed, block):
            x = _as_float(checked[s:s + block])
            m = torch.nn.functional.avg_pool2d(
                _maps(_first_code(x, retina, p, c), len(x), p.side), local_px)
            m64 = m.double()
            total, total_sq, count = (total + float(m64.sum()),
                                      total_sq + float(m64.pow(2).sum()), count + m.numel())
            u = torch.nn.functional.unfold(m, size).transpose(1, 2)[image, place]
            drawn[inside], var[inside] = _centred(u)
        eps = CONTRAST_FLOOR * max(total_sq / count - (total / count) ** 2, 0.0)
        _scaled(drawn, var, eps)  # each drawn neighbourhood as neighbourhoods(maps, size, eps)
        del var
        mean, w = whitening_fit(drawn, dims, eps=whitening_eps)
        whitened = torch.cat([(drawn[s:s + chunk] - mean) @ w
                              for s in range(0, n_patches, chunk)])
        del drawn
        centroids2, objective = kmeans_fit(whitened, k, iterations=iterations, seed=seed)
        return cls(c, mean, w, centroids2, eps, tuple(objective), local_px, size, pool)

    def features(self, images, retina: RetinaFit, p: DoGLIFParams, *, batch: int = 100,
                 with_first: bool = False) -> np.ndarray:
        """The second layer's pooled triangle codes of images, ``(N, k * pool**2)``: feature
        ``j * pool**2 + r`` is centroid ``j`` summed over region ``r``, row by row (the layout
        of :func:`kmeans_features`). With ``with_first`` the first layer's features
        (:func:`kmeans_features` of ``first``, ``p.pool``) come first, from the same code:
        ``(N, k1 * p.pool**2 + k * pool**2)``."""
        where = "SecondLayer.features"
        check.instance("retina", retina, RetinaFit, where=where)
        retina._check_params(p, where)
        _first_centroids(self.first, p, where)
        places = _second_places(p, self.local_px, self.size, self.pool, where)
        check.positive_int("batch", batch, where=where)
        check.flag("with_first", with_first, where=where)
        checked = _checked_images(images, "images", where)
        k1, d1 = self.first.shape
        d, dims = self.whitening.shape
        n_first = k1 * p.pool ** 2 if with_first else 0
        width = n_first + self.k * self.pool ** 2
        b = min(batch, len(checked))
        check.fits_in_memory(
            f"the second layer's features of {len(checked)} images, batch={batch} at a time",
            4 * (len(checked) * width + b * (p.side ** 2 * (3 * k1 + 4 * d1)
                                             + places ** 2 * (3 * d + dims + 3 * self.k))),
            where=where)
        out = np.zeros((len(checked), width), dtype=np.float32)
        for s in range(0, len(checked), batch):
            x = _as_float(checked[s:s + batch])
            n = len(x)
            code = _first_code(x, retina, p, self.first)
            if with_first:
                out[s:s + n, :n_first] = _pool(code, n, p.side, p.pool).numpy()
            m = torch.nn.functional.avg_pool2d(_maps(code, n, p.side), self.local_px)
            u = _neighbourhoods(m, self.size, self.contrast_eps)
            second = _triangle((u.reshape(-1, d) - self.mean) @ self.whitening, self.centroids)
            out[s:s + n, n_first:] = _pool(second, n, places, self.pool).numpy()
        return out


def _layers(run: dict, key: str, fmt: str) -> str:
    """``fmt`` of a stored run's first-layer ``key``, and of its second layer's or second
    scale's (if any; a second scale has the first's pooling) after " + "."""
    text = fmt.format(run[key])
    if "second_scale" in run:
        return text + " + " + fmt.format(run["second_scale"].get(key, run[key]))
    second = run.get("second_layer")
    return text if second is None else text + " + " + fmt.format(second[key])


def _patches(run: dict) -> str:
    """A stored run's patch side, and its second scale's in pixels of the original images."""
    px = run["patch_px"]
    text = f"{px} x {px}"
    if "second_scale" not in run:
        return text
    d = run["second_scale"]["downsample"]
    return f"{text} + {d * px} x {d * px} ({d} x {d} averaged)"


def _first_centroids(centroids, p: DoGLIFParams, where: str) -> torch.Tensor:
    """The first layer's ``(k, 3 * p.patch_px**2)`` centroids, checked, as float32."""
    c = _tensor(check.array("centroids", centroids, ndim=2, where=where)).float()
    if c.shape[1] != p.n_inputs // 2:
        raise ValueError(f"{where}: centroids must be (k, {p.n_inputs // 2}) for "
                         f"{p.patch_px}-pixel patches of 3 channels, got shape {tuple(c.shape)}.")
    return c


def _second_places(p: DoGLIFParams, local_px: int, size: int, pool: int, where: str) -> int:
    """Places per side of the second layer's code (``side // local_px - size + 1``), checked
    to be at least ``pool``."""
    places = p.side // local_px - size + 1
    if places < pool:
        raise ValueError(f"{where}: the first layer's {p.side} x {p.side} positions, averaged "
                         f"over {local_px} x {local_px} blocks, leave {places} places per side "
                         f"for {size} x {size} neighbourhoods: fewer than pool ({pool}).")
    return places
