"""A retina for the spiking tiers: Difference-of-Gaussians filters, ON/OFF channels, ZCA whitening.

Retinal ganglion cells answer to *contrast*, not to light: a centre that
excites and a surround that inhibits (or the reverse), which a Difference of
Gaussians (DoG) models well (Rodieck 1965; Marr & Hildreth 1980, who note
that a surround-to-centre ratio of about 1.6 approximates the Laplacian of a
Gaussian). For an image :math:`I`,

.. math::

    D = G_{\\sigma_c} * I - G_{\\sigma_s} * I, \\qquad \\sigma_s > \\sigma_c ,

and the ON-centre and OFF-centre cells carry its two signs,

.. math:: \\text{ON} = \\max(D, 0), \\qquad \\text{OFF} = \\max(-D, 0).

Colour-opponent cells compare one cone type in the centre with another in the
surround: red-green :math:`G_{\\sigma_c} * R - G_{\\sigma_s} * G`, blue-yellow
:math:`G_{\\sigma_c} * B - G_{\\sigma_s} * (R + G)/2`.

Everything is batched in torch (images first), with the Gaussian blur as two
separable 1-d convolutions. The blur matches
:func:`scipy.ndimage.gaussian_filter` with ``mode="nearest"`` (edges padded by
repeating the border pixel) and its default ``truncate=4`` (kernel radius
``int(truncate * sigma + 0.5)``), and so the DoG matches
:func:`skimage.filters.difference_of_gaussians` with its defaults.

A second front end, ZCA whitening of image patches (:func:`zca_fit`,
:func:`zca_apply`), decorrelates neighbouring pixels as a DoG does, but learns
its filters from the data; Falez et al. (2020) found it gives better STDP
features than DoG filtering.

References
----------
Rodieck, R. W. (1965). Quantitative analysis of cat retinal ganglion cell
response to visual stimuli. *Vision Research* 5, 583-601.
Marr, D. & Hildreth, E. (1980). Theory of edge detection. *Proc. R. Soc.
Lond. B* 207, 187-217.
Bell, A. J. & Sejnowski, T. J. (1997). The "independent components" of
natural scenes are edge filters. *Vision Research* 37, 3327-3338.
Falez, P., Tirilly, P. & Bilasco, I. M. (2020). Improving STDP-based visual
feature learning with whitening. *IJCNN 2020*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import _validate as check

__all__ = ["DoGParams", "ZCA", "colour_opponent", "dog", "extract_patches", "filter_images",
           "gaussian_blur", "gaussian_kernel1d", "local_contrast_normalise", "on_off",
           "whitening_kernel", "zca_apply", "zca_fit"]


@dataclass(frozen=True)
class DoGParams:
    """A centre-surround filter.

    Attributes
    ----------
    sigma_center_px : float
        Standard deviation of the centre Gaussian :math:`\\sigma_c` (pixels).
    sigma_surround_px : float
        Standard deviation of the surround Gaussian :math:`\\sigma_s` (pixels);
        must exceed the centre's.
    truncate : float
        The kernels are cut at ``truncate`` standard deviations (scipy's default 4).
    """

    sigma_center_px: float = 1.0
    sigma_surround_px: float = 2.0
    truncate: float = 4.0

    def __post_init__(self) -> None:
        for name in ("sigma_center_px", "sigma_surround_px", "truncate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"DoGParams.{name} must be a real number, got "
                                f"{type(value).__name__} {value!r}.")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"DoGParams.{name} must be a finite number > 0, got {value!r}.")
        if self.sigma_surround_px <= self.sigma_center_px:
            raise ValueError(f"sigma_surround_px ({self.sigma_surround_px}) must exceed "
                             f"sigma_center_px ({self.sigma_center_px}): the surround is the wider "
                             "Gaussian (swap them for an OFF-centre filter, or use on_off).")


MAX_RADIUS_PX = 4096
"""The widest Gaussian kernel (radius, pixels) :func:`gaussian_kernel1d` makes."""


def gaussian_kernel1d(sigma_px: float, truncate: float = 4.0, *, dtype=torch.float64) -> torch.Tensor:
    """The normalised 1-d Gaussian :math:`g_k \\propto e^{-k^2 / 2\\sigma^2}`, :math:`|k| \\le r`.

    ``r = int(truncate * sigma + 0.5)`` as in :func:`scipy.ndimage.gaussian_filter`;
    the weights sum to 1.
    """
    where = "retina.gaussian_kernel1d"
    for name, value in (("sigma_px", sigma_px), ("truncate", truncate)):
        check.number(name, value, where=where)
        if not value > 0:
            raise ValueError(f"{where}: {name} must be a finite number > 0, got {value!r}.")
    radius = int(truncate * sigma_px + 0.5)
    if radius > MAX_RADIUS_PX:
        raise ValueError(f"{where}: sigma_px={sigma_px:g} with truncate={truncate:g} asks for a "
                         f"kernel of radius {radius} px, more than {MAX_RADIUS_PX} px (images here "
                         f"are 32 px wide); check the value")
    k = torch.arange(-radius, radius + 1, dtype=dtype)
    g = torch.exp(-0.5 * (k / sigma_px) ** 2)
    return g / g.sum()


def _as_tensor(name: str, x, where: str) -> torch.Tensor:
    """A tensor from a tensor or anything numpy reads as a numeric array (TypeError otherwise)."""
    if torch.is_tensor(x):
        return x
    return torch.as_tensor(check.array(name, x, finite=False, nonempty=False, where=where))


def _finite(name: str, x: torch.Tensor, where: str) -> torch.Tensor:
    """Not empty and, if floating point, finite (one pass)."""
    return check.array(name, x, where=where)


def _as_batch(images, where: str = "retina", name: str = "images") -> tuple[torch.Tensor, tuple]:
    x = _as_tensor(name, images, where)
    if not torch.is_floating_point(x):
        raise ValueError(f"{where}: {name} must be floating point (intensities), got {x.dtype}.")
    if x.ndim not in (3, 4):
        raise ValueError(f"{where}: {name} must be (N, H, W) or (N, C, H, W), got shape "
                         f"{tuple(x.shape)}.")
    if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        raise ValueError(f"{where}: {name} of shape {tuple(x.shape)} look channels-last "
                         "(N, H, W, 3); filter channels-first (N, C, H, W), e.g. "
                         "images.permute(0, 3, 1, 2), or use colour_opponent for RGB.")
    _finite(name, x, where)
    shape = tuple(x.shape)
    return x.reshape(-1, 1, shape[-2], shape[-1]), shape


def gaussian_blur(images, sigma_px: float, truncate: float = 4.0) -> torch.Tensor:
    """:math:`G_\\sigma * I`, edges extended by their border pixels.

    Parameters
    ----------
    images : tensor or array
        ``(N, H, W)`` or ``(N, C, H, W)`` float; each channel blurred on its own.
    sigma_px : float
        Standard deviation of the Gaussian (pixels).
    truncate : float
        Kernel radius in standard deviations.

    Returns
    -------
    torch.Tensor
        The same shape and dtype: two separable convolutions (rows, then columns).
    """
    return _blur(images, sigma_px, truncate, "retina.gaussian_blur")


def _blur(images, sigma_px: float, truncate: float, where: str, name: str = "images"
          ) -> torch.Tensor:
    x, shape = _as_batch(images, where, name)
    try:
        g = gaussian_kernel1d(sigma_px, truncate, dtype=x.dtype)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err).replace("retina.gaussian_kernel1d", where)) from None
    r = (len(g) - 1) // 2
    h, w = shape[-2], shape[-1]
    check.fits_in_memory(f"blurring {x.shape[0]} images of {h} x {w} px padded by {r} px",
                         3 * x.shape[0] * (h + 2 * r) * (w + 2 * r) * x.element_size(),
                         where=where)
    # "nearest": index -k and size - 1 + k both read the border pixel, however wide the kernel
    x = x[..., torch.arange(-r, h + r).clamp(0, h - 1), :]
    x = F.conv2d(x, g.view(1, 1, -1, 1))
    x = x[..., torch.arange(-r, w + r).clamp(0, w - 1)]
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return x.reshape(shape)


def dog(images, p: DoGParams = DoGParams()) -> torch.Tensor:
    """The Difference of Gaussians :math:`D = G_{\\sigma_c} * I - G_{\\sigma_s} * I`.

    Parameters
    ----------
    images : tensor or array
        ``(N, H, W)`` or ``(N, C, H, W)`` float intensities; each channel is
        filtered on its own.
    p : DoGParams

    Returns
    -------
    torch.Tensor
        The same shape. A uniform image gives 0 (both kernels sum to 1); a
        spot the size of the centre gives the largest response.

    Examples
    --------
    >>> d = dog(torch.rand(8, 32, 32), DoGParams(1.0, 1.6))
    """
    check.instance("p", p, DoGParams, where="retina.dog")
    return _blur(images, p.sigma_center_px, p.truncate, "retina.dog") - _blur(
        images, p.sigma_surround_px, p.truncate, "retina.dog")


def on_off(response) -> torch.Tensor:
    """ON and OFF channels of a centre-surround response.

    .. math:: \\text{ON} = \\max(D, 0), \\qquad \\text{OFF} = \\max(-D, 0)

    so ON - OFF = D and at most one of them is non-zero at each pixel.

    Parameters
    ----------
    response : tensor or array
        ``(..., H, W)``, e.g. from :func:`dog`.

    Returns
    -------
    torch.Tensor
        ``(..., 2, H, W)``: ON, then OFF.
    """
    where = "retina.on_off"
    d = _as_tensor("response", response, where)
    if d.ndim < 2:
        raise ValueError(f"{where}: response must be (..., H, W), got shape {tuple(d.shape)}")
    _finite("response", d, where)
    return torch.stack([d.clamp(min=0), (-d).clamp(min=0)], dim=-3)


def colour_opponent(images_rgb, p: DoGParams = DoGParams()) -> torch.Tensor:
    """Luminance, red-green and blue-yellow centre-surround responses of RGB images.

    Parameters
    ----------
    images_rgb : tensor or array
        ``(N, H, W, 3)`` RGB in [0, 1] (channels last, as
        :func:`snnlib.data.load_cifar10` gives them after ``/ 255``).

    Returns
    -------
    torch.Tensor
        ``(N, 3, H, W)``: :math:`D_Y` (the DoG of the BT.601 luminance
        :math:`Y`), :math:`G_{\\sigma_c} * R - G_{\\sigma_s} * G` and
        :math:`G_{\\sigma_c} * B - G_{\\sigma_s} * (R + G)/2`. A uniform grey
        image gives 0 in every channel; a uniform red one gives 0 luminance
        contrast and a positive red-green response.
    """
    where = "retina.colour_opponent"
    check.instance("p", p, DoGParams, where=where)
    x = _as_tensor("images_rgb", images_rgb, where)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{where}: images_rgb must be (N, H, W, 3), got shape {tuple(x.shape)}.")
    if not torch.is_floating_point(x):
        raise ValueError(f"{where}: images_rgb must be floating point in [0, 1], got {x.dtype} "
                         "(divide uint8 images by 255).")
    check.array("images_rgb", x, low=0, high=1, where=where)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    c, s, t = p.sigma_center_px, p.sigma_surround_px, p.truncate
    return torch.stack([
        _blur(y, c, t, where) - _blur(y, s, t, where),
        _blur(r, c, t, where) - _blur(g, s, t, where),
        _blur(b, c, t, where) - _blur((r + g) / 2, s, t, where),
    ], dim=1)


# --- ZCA whitening -------------------------------------------------------------


def extract_patches(images, size: int, stride: int = 1) -> torch.Tensor:
    """All ``size x size`` patches of images at ``stride``, flattened.

    Parameters
    ----------
    images : tensor or array
        ``(N, C, H, W)``.
    size : int
        Patch side (pixels).
    stride : int
        Step between patches (pixels).

    Returns
    -------
    torch.Tensor
        ``(N * n_patches, C * size * size)`` (channel-major, as
        :func:`torch.nn.functional.unfold` orders them).
    """
    where = "retina.extract_patches"
    x = _as_tensor("images", images, where)
    if x.ndim != 4:
        raise ValueError(f"{where}: images must be (N, C, H, W), got shape {tuple(x.shape)}.")
    _finite("images", x, where)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"{where}: size must be an integer, got {type(size).__name__} {size!r}")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)):
        raise TypeError(f"{where}: stride must be an integer, got {type(stride).__name__} "
                        f"{stride!r}")
    size, stride = int(size), int(stride)
    if not 1 <= size <= min(x.shape[-2:]):
        raise ValueError(f"{where}: size must be an integer in [1, {min(x.shape[-2:])}], got "
                         f"{size!r}.")
    if not stride >= 1:
        raise ValueError(f"{where}: stride must be a positive integer, got {stride!r}.")
    n_patches = ((x.shape[-2] - size) // stride + 1) * ((x.shape[-1] - size) // stride + 1)
    check.fits_in_memory(f"{x.shape[0] * n_patches} patches of {x.shape[1] * size * size} values",
                         2 * x.shape[0] * n_patches * x.shape[1] * size * size * x.element_size(),
                         where=where)
    cols = F.unfold(x, kernel_size=size, stride=stride)  # (N, C*size*size, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


@dataclass(frozen=True)
class ZCA:
    """A fitted ZCA transform: ``(x - mean) @ matrix`` (``matrix`` symmetric)."""

    mean: torch.Tensor
    matrix: torch.Tensor
    eps: float

    def __post_init__(self) -> None:
        where = "retina.ZCA"
        check.tensor("mean", self.mean, where=where)
        check.tensor("matrix", self.matrix, where=where)
        check.array("mean", self.mean, ndim=1, where=where)
        d = self.mean.shape[0]
        check.array("matrix", self.matrix, shape=(d, d), where=where)
        check.number("eps", self.eps, low=0, low_open=True, where=where)


def zca_fit(patches, *, eps: float = 1e-2) -> ZCA:
    """Fit ZCA whitening to ``(n, d)`` patches.

    With the patch covariance :math:`\\Sigma = U \\Lambda U^T`,

    .. math:: W = U (\\Lambda + \\epsilon I)^{-1/2} U^T ,

    the symmetric whitening matrix closest to the identity (Bell & Sejnowski
    1997): whitened patches :math:`(x - \\mu) W` have covariance
    :math:`U \\Lambda (\\Lambda + \\epsilon)^{-1} U^T`, the identity for
    :math:`\\epsilon \\to 0`; :math:`\\epsilon` keeps the noisiest
    directions (small :math:`\\lambda`) from being amplified without bound.
    """
    where = "retina.zca_fit"
    x = _as_tensor("patches", patches, where).to(torch.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{where}: patches must be (n >= 2, d), got shape {tuple(x.shape)}.")
    check.array("patches", x, where=where)
    check.number("eps", eps, where=where)
    if not eps > 0:
        raise ValueError(f"{where}: eps must be a finite number > 0, got {eps!r}.")
    check.fits_in_memory(f"the {x.shape[1]} x {x.shape[1]} covariance and its eigenvectors",
                         8 * 6 * x.shape[1] ** 2 + 8 * x.numel(), where=where)
    mean = x.mean(dim=0)
    xc = x - mean
    cov = xc.T @ xc / (x.shape[0] - 1)
    lam, u = torch.linalg.eigh(cov)
    w = u @ torch.diag((lam.clamp(min=0) + eps).rsqrt()) @ u.T
    return ZCA(mean=mean, matrix=w, eps=float(eps))


def zca_apply(patches, zca: ZCA) -> torch.Tensor:
    """Whiten ``(n, d)`` patches with a fitted :class:`ZCA`: ``(x - mean) @ matrix``."""
    where = "retina.zca_apply"
    check.instance("zca", zca, ZCA, where=where)
    x = _as_tensor("patches", patches, where).to(zca.matrix.dtype)
    if x.ndim != 2 or x.shape[1] != zca.matrix.shape[0]:
        raise ValueError(f"{where}: patches must be (n, {zca.matrix.shape[0]}), got shape "
                         f"{tuple(x.shape)}.")
    check.array("patches", x, where=where)
    return (x - zca.mean) @ zca.matrix


# --- a whitening retina for whole images -------------------------------------


def whitening_kernel(images, *, size_px: int = 7, eps: float = 1e-2, n_patches: int = 20000,
                     seed: int = 0) -> torch.Tensor:
    """A centre-surround filter fitted to images: the ZCA whitening filter of one pixel.

    ZCA (:func:`zca_fit`) is fitted on ``n_patches`` random ``size_px x
    size_px`` patches of ``images`` (grayscale ``(N, H, W)``), each with its
    own mean removed; the row of the whitening matrix :math:`W` that belongs
    to the centre pixel is the filter that whitens that pixel given its
    neighbours. Convolving a whole image with it (:func:`filter_images`)
    whitens every pixel the same way: a retina whose ganglion cells all have
    this receptive field (Atick & Redlich 1992 derive centre-surround fields
    from whitening). The kernel's mean is then removed, so a uniform image
    gives 0 (the patches' own means were removed, so the fit says nothing
    about uniform light).

    Returns
    -------
    torch.Tensor
        ``(size_px, size_px)`` float32, summing to 0: a positive centre and a
        negative surround.
    """
    where = "retina.whitening_kernel"
    x = _as_tensor("images", images, where).to(torch.float32)
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(f"{where}: images must be grayscale (N, H, W), got shape "
                         f"{tuple(x.shape)}.")
    check.array("images", x, where=where)
    if isinstance(size_px, bool) or not isinstance(size_px, int) or size_px < 3 \
            or size_px % 2 == 0 or size_px > min(x.shape[-2:]):
        raise ValueError(f"{where}: size_px must be an odd integer >= 3 and at most the images' "
                         f"{min(x.shape[-2:])} px, got {size_px!r}.")
    check.number("eps", eps, low=0, low_open=True, where=where)
    n_patches = check.integer("n_patches", n_patches, low=2, where=where)
    seed = check.integer("seed", seed, low=0, high=2**63 - 1, where=where)
    cols = extract_patches(x[:, None], size_px)
    g = torch.Generator().manual_seed(seed)
    cols = cols[torch.randperm(len(cols), generator=g)[:n_patches]].double()
    cols = cols - cols.mean(dim=1, keepdim=True)
    w = zca_fit(cols, eps=eps).matrix
    kernel = w[(size_px * size_px) // 2].reshape(size_px, size_px).float()
    return kernel - kernel.mean()


def filter_images(images, kernel: torch.Tensor) -> torch.Tensor:
    """Every pixel of grayscale ``(N, H, W)`` images through ``kernel`` (edges reflected).

    Returns ``(N, H, W)``. ``kernel`` is a square ``(k, k)`` tensor, ``k`` odd, its radius
    less than the images' side (reflection reads at most one side's width).
    """
    where = "retina.filter_images"
    x = _as_tensor("images", images, where).to(torch.float32)
    if x.ndim != 3:
        raise ValueError(f"{where}: images must be grayscale (N, H, W), got shape "
                         f"{tuple(x.shape)}.")
    check.array("images", x, where=where)
    check.tensor("kernel", kernel, where=where)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"{where}: kernel must be square (k, k) with k odd, got shape "
                         f"{tuple(kernel.shape)}.")
    if kernel.shape[0] // 2 >= min(x.shape[-2:]):
        raise ValueError(f"{where}: kernel of {kernel.shape[0]} px is too wide for images of "
                         f"{tuple(x.shape[-2:])} px: its radius must be less than their side.")
    check.array("kernel", kernel, where=where)
    x = x[:, None]
    r = kernel.shape[-1] // 2
    return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), kernel[None, None].float())[:, 0]


def local_contrast_normalise(response, *, sigma_px: float = 2.0, c: float | None = None
                             ) -> tuple[torch.Tensor, float]:
    """Divide a response map by its local contrast: :math:`D / (\\sqrt{G_\\sigma * D^2} + c)`.

    The gain control of the retina and of the lateral geniculate nucleus
    (Mante et al. 2005; Carandini & Heeger 2012): a pixel's response is
    divided by the root-mean-square response around it (a Gaussian of
    ``sigma_px``), so an edge in a dim, flat region and one in a bright,
    busy region give similar responses. ``c`` (the semi-saturation
    constant) keeps flat regions from being amplified to noise; when None,
    the mean local contrast of ``response`` is used, and returned, so that
    the same ``c`` can be applied to other images.

    Returns
    -------
    (torch.Tensor, float)
        The normalised map (same shape) and ``c``.
    """
    where = "retina.local_contrast_normalise"
    d = _as_tensor("response", response, where).to(torch.float32)
    if d.ndim not in (3, 4):
        raise ValueError(f"{where}: response must be (N, H, W) or (N, C, H, W), got shape "
                         f"{tuple(d.shape)}.")
    check.array("response", d, where=where)
    if c is not None:
        check.number("c", c, where=where)
        if not c > 0:
            raise ValueError(f"{where}: c must be a finite number > 0, got {c!r}.")
    local = _blur(d * d, sigma_px, 4.0, where, "response").sqrt()
    if c is None:
        c = float(local.mean())
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"{where}: the mean local contrast of response is {c!r} (a response "
                             "that is zero everywhere); pass c, a finite number > 0.")
    return d / (local + c), c
