"""snnlib.retina against scikit-image, scipy and the filters' theory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.filters import difference_of_gaussians

from snnlib import retina as R


@pytest.mark.parametrize("sigmas", [(0.5, 0.8), (1.0, 1.6), (1.0, 3.0), (2.0, 5.0)])
def test_dog_agrees_with_scikit_image(sigmas):
    images = np.random.default_rng(0).random((3, 32, 32))
    ours = R.dog(torch.from_numpy(images), R.DoGParams(*sigmas)).numpy()
    for image, mine in zip(images, ours):
        theirs = difference_of_gaussians(image, *sigmas)  # mode="nearest", truncate=4
        np.testing.assert_allclose(mine, theirs, atol=1e-12)


def test_a_blur_wider_than_the_image_still_matches_scipy():
    image = np.random.default_rng(1).random((1, 6, 9))
    ours = R.gaussian_blur(torch.from_numpy(image), 3.0).numpy()[0]  # radius 12 > 6, 9
    np.testing.assert_allclose(ours, ndimage.gaussian_filter(image[0], 3.0, mode="nearest"),
                               atol=1e-12)


def test_dog_of_a_point_is_the_difference_of_the_two_kernels():
    p = R.DoGParams(1.0, 2.0)
    image = torch.zeros(1, 33, 33, dtype=torch.float64)
    image[0, 16, 16] = 1.0
    d = R.dog(image, p)[0]
    gc, gs = R.gaussian_kernel1d(1.0), R.gaussian_kernel1d(2.0)
    expected = torch.zeros(33, 33, dtype=torch.float64)
    rc, rs = (len(gc) - 1) // 2, (len(gs) - 1) // 2
    expected[16 - rc:17 + rc, 16 - rc:17 + rc] += torch.outer(gc, gc)
    expected[16 - rs:17 + rs, 16 - rs:17 + rs] -= torch.outer(gs, gs)
    torch.testing.assert_close(d, expected, atol=1e-14, rtol=0)
    # the continuous centre value 1/(2 pi sc^2) - 1/(2 pi ss^2), close for these sigmas
    assert float(d[16, 16]) == pytest.approx(1 / (2 * np.pi) - 1 / (8 * np.pi), rel=0.03)


def test_a_uniform_image_gives_no_response_and_a_centre_spot_the_largest():
    p = R.DoGParams(1.0, 1.6)
    assert R.dog(torch.full((2, 16, 16), 0.7), p).abs().max() < 1e-6
    # a bright disc: the centre response is largest when the disc is about the centre's size
    yy, xx = np.mgrid[:41, :41]
    responses = []
    for radius in (0.5, 1.5, 3.0, 6.0, 12.0):
        disc = ((yy - 20) ** 2 + (xx - 20) ** 2 <= radius**2).astype(np.float64)
        responses.append(float(R.dog(torch.from_numpy(disc)[None], p)[0, 20, 20]))
    assert int(np.argmax(responses)) == 1 and responses[-1] < 0.1 * max(responses)


def test_on_off_split_the_signs():
    d = torch.randn(4, 8, 8)
    both = R.on_off(d)
    assert both.shape == (4, 2, 8, 8)
    torch.testing.assert_close(both[:, 0] - both[:, 1], d)
    assert (both >= 0).all() and not ((both[:, 0] > 0) & (both[:, 1] > 0)).any()


def test_colour_opponent_channels():
    p = R.DoGParams(1.0, 2.0)
    grey = torch.full((1, 16, 16, 3), 0.5, dtype=torch.float64)
    torch.testing.assert_close(R.colour_opponent(grey, p), torch.zeros(1, 3, 16, 16, dtype=torch.float64))
    red = torch.zeros(1, 16, 16, 3, dtype=torch.float64)
    red[..., 0] = 1.0
    out = R.colour_opponent(red, p)
    assert out[:, 0].abs().max() < 1e-12  # uniform: no luminance contrast
    torch.testing.assert_close(out[:, 1], torch.ones(1, 16, 16, dtype=torch.float64))  # R - G
    torch.testing.assert_close(out[:, 2], torch.full((1, 16, 16), -0.5, dtype=torch.float64))  # B - (R+G)/2


def test_zca_whitens_correlated_patches():
    rng = np.random.default_rng(2)
    # smooth (neighbours correlated) plus a little independent noise (no direction without variance)
    images = ndimage.gaussian_filter(rng.random((200, 1, 24, 24)), (0, 0, 1.5, 1.5))
    images += 0.02 * rng.random(images.shape)
    patches = R.extract_patches(torch.from_numpy(images), 5, stride=2)
    assert patches.shape == (200 * 10 * 10, 25)
    raw_cov = torch.cov(patches.T)
    assert (raw_cov / raw_cov.diagonal().mean()).fill_diagonal_(0).abs().max() > 0.5  # not white
    zca = R.zca_fit(patches, eps=1e-10)  # covariance 1 - eps / (lambda + eps): within 1e-5 here
    white = R.zca_apply(patches, zca)
    torch.testing.assert_close(torch.cov(white.T), torch.eye(25, dtype=torch.float64), atol=1e-4, rtol=0)
    # symmetric: the transform is the whitening closest to the identity
    torch.testing.assert_close(zca.matrix, zca.matrix.T)
    # with eps the covariance is Lambda / (Lambda + eps) in the eigenbasis
    lam = torch.linalg.eigvalsh(torch.cov(patches.T))
    eps = float(lam.median())
    shrunk = torch.linalg.eigvalsh(torch.cov(R.zca_apply(patches, R.zca_fit(patches, eps=eps)).T))
    torch.testing.assert_close(shrunk, torch.sort(lam / (lam + eps)).values, atol=1e-6, rtol=1e-6)



def test_whitening_kernel_is_centre_surround_and_decorrelates_neighbours():
    """The fitted kernel sums to 0 (uniform light gives nothing), has its largest weight at
    the centre and a negative surround, and filtered images have neighbouring pixels that
    are far less correlated than the raw ones (whitening)."""
    rng = np.random.default_rng(3)
    images = ndimage.gaussian_filter(rng.random((300, 32, 32)), (0, 1.5, 1.5))
    images += 0.02 * rng.random(images.shape)
    kernel = R.whitening_kernel(torch.from_numpy(images), size_px=7, eps=1e-4, seed=0)
    assert kernel.shape == (7, 7) and abs(float(kernel.sum())) < 1e-5
    assert float(kernel[3, 3]) == float(kernel.max()) > 0
    assert float(kernel[0, 0] + kernel[0, 6] + kernel[6, 0] + kernel[6, 6]) < 0

    def neighbour_correlation(x):
        x = np.asarray(x)[:, 4:-4, 4:-4]
        return np.corrcoef(x[:, :, :-1].ravel(), x[:, :, 1:].ravel())[0, 1]

    filtered = R.filter_images(torch.from_numpy(images), kernel)
    assert neighbour_correlation(images) > 0.8
    assert abs(neighbour_correlation(filtered)) < 0.3
    # a uniform offset does not change the response (edges reflected)
    torch.testing.assert_close(R.filter_images(torch.from_numpy(images + 0.5), kernel), filtered,
                               atol=1e-4, rtol=0)


def test_local_contrast_normalisation_is_contrast_invariant():
    """D / (sqrt(G * D^2) + c): scaling D and c together changes nothing; a uniform map d
    gives d / (|d| + c)."""
    rng = np.random.default_rng(4)
    d = torch.from_numpy(rng.standard_normal((3, 32, 32)).astype(np.float32))
    out, c = R.local_contrast_normalise(d, sigma_px=2.0)
    assert c > 0
    scaled, _ = R.local_contrast_normalise(5.0 * d, sigma_px=2.0, c=5.0 * c)
    torch.testing.assert_close(scaled, out, atol=1e-5, rtol=1e-5)
    uniform, _ = R.local_contrast_normalise(torch.full((1, 16, 16), -0.3), sigma_px=2.0, c=0.1)
    torch.testing.assert_close(uniform, torch.full((1, 16, 16), -0.3 / 0.4), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="c must be a finite number > 0"):
        R.local_contrast_normalise(d, c=0.0)
    with pytest.raises(ValueError, match="size_px must be an odd integer"):
        R.whitening_kernel(d, size_px=4)
    with pytest.raises(ValueError, match="grayscale"):
        R.whitening_kernel(d[0])

def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="must exceed"):
        R.DoGParams(2.0, 1.0)
    with pytest.raises(ValueError, match="sigma_center_px must be a finite number"):
        R.DoGParams(0.0, 1.0)
    with pytest.raises(ValueError, match="floating point"):
        R.dog(torch.zeros(2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        R.dog(torch.zeros(8, 8))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        R.colour_opponent(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="channels-last"):
        R.dog(torch.zeros(2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, C, H, W\)"):
        R.dog(torch.zeros(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="truncate"):
        R.gaussian_blur(torch.zeros(1, 8, 8), 1.0, truncate=0.0)
    with pytest.raises(ValueError, match="size must be"):
        R.extract_patches(torch.zeros(1, 1, 8, 8), 9)
    with pytest.raises(ValueError, match=r"zca_apply: patches must be \(n, 5\)"):
        R.zca_apply(torch.zeros(3, 4), R.zca_fit(torch.rand(10, 5)))
