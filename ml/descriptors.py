"""Descriptors beside the 1000-d embedding, from the same decode and the same forward pass.

- look (LOOK_DIM): what the item itself looks like, not its background. The network's last feature map
  says where the item is (its mean activation, a saliency map); the photo's CIE Lab colours are counted
  in a histogram weighted by that map under a prior for the frame's centre, and the mid-level feature map
  (texture, pattern) is pooled with the same weights. Both parts are unit length (the histogram smoothed over
  neighbouring bins, so that two close shades share mass, then as its square root, so that Euclidean distance
  is the Hellinger distance), and the look vector is their weighted concatenation, unit length.
- kind (KIND_DIM): what kind of item it is, for the look's ranking: the last feature map averaged over the
  whole frame and over its centre (the map less one cell a side), each unit length, summed, unit length. On
  the pretrained model it finds the kind and the same product better than the 1000-d vector (ImageNet's class
  scores), so the look's candidates come from it (measured in the README).
- copy (COPY_VARIANTS x COPY_DIM): which file a photo came from. A 16x16 colour thumbnail, made mirror
  symmetric, centred and unit length, of the whole frame and of its central 80%: a mirrored, recompressed
  or halved copy has nearly the same thumbnail, and a copy cropped by a tenth a side has the thumbnail of
  the original's central 80%. Compared by the best cosine over the variants (Qdrant's MaxSim).

Measured on clothing-small validation (bench/duplicates.py and `lookalike evaluate`; see the README).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from ml.pixels import to_rgb

COLOUR_BINS = (6, 12, 12)  # L, a, b
COLOUR_DIM = COLOUR_BINS[0] * COLOUR_BINS[1] * COLOUR_BINS[2]
TEXTURE_DIM = 192
LOOK_DIM = COLOUR_DIM + TEXTURE_DIM
TEXTURE_WEIGHT = 0.5  # share of the texture part in the look vector's squared length
KIND_DIM = 1280  # the last map's channels (EfficientNet-Lite); ResNet-50's 2048 are averaged down to these
COPY_SIDE = 16
COPY_CROP = 0.1  # the second variant drops a tenth of each side
COPY_DIM = COPY_SIDE * (COPY_SIDE // 2) * 3  # the left half: the thumbnail is mirror symmetric
COPY_VARIANTS = 2
HISTOGRAM_SIDE = 56  # colours are counted on the network's crop, area-downscaled to this side
GEM_P = 3.0
# The look's weights fall off away from the centre of the network's crop: a Gaussian with sigma 0.3 of the
# half-side, so 0.41 of the centre's weight a fifth of the side away and 0.004 at the middle of an edge. The
# centre is where a catalog or a shopper's photo puts the item; the activation map alone let the sheet, the
# shelf and the hand into the colours (measured in the README).
CENTRE_SIGMA = 0.3

# Where the feature maps come from, by architecture: (mid-level, last) module names in the backbone.
FEATURE_LAYERS = {
    "resnet50": ("layer3", "layer4"),
    "efficientnet_lite0": ("blocks.5", "bn2"),
    "efficientnet_lite2": ("blocks.5", "bn2"),
}


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* (D65) of sRGB values in [0, 1], channels last."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    matrix = torch.tensor(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], dtype=rgb.dtype
    )
    xyz = linear @ matrix.T / torch.tensor([0.95047, 1.0, 1.08883], dtype=rgb.dtype)
    delta = 6 / 29
    f = torch.where(xyz > delta**3, xyz.clamp(min=1e-12) ** (1 / 3), xyz / (3 * delta**2) + 4 / 29)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def centre_prior(side: int, sigma: float = CENTRE_SIGMA) -> torch.Tensor:
    """(side, side) Gaussian weights around the frame's centre, `sigma` in half-sides of the frame."""
    axis = torch.linspace(-1, 1, side)
    return torch.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * sigma**2))


def saliency(last: torch.Tensor, side: int) -> torch.Tensor:
    """(n, side, side) weights in [0, 1]: the last feature map's mean activation, rescaled per photo, squared,
    under the centre prior."""
    heat = last.float().clamp(min=0).mean(dim=1, keepdim=True)
    heat = F.interpolate(heat, size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    low = heat.amin(dim=(1, 2), keepdim=True)
    high = heat.amax(dim=(1, 2), keepdim=True)
    heat = (((heat - low) / (high - low).clamp(min=1e-6)) ** 2).clamp(min=1e-4)
    return heat * centre_prior(side).to(heat.device)


def colour_histogram(rgb: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(n, COLOUR_DIM): the square root of the weighted Lab histogram of (n, 3, h, w) sRGB in [0, 1]."""
    small = F.interpolate(rgb.float(), size=weights.shape[1:], mode="area").permute(0, 2, 3, 1)
    lab = srgb_to_lab(small.clamp(0, 1))
    lightness = (lab[..., 0] / 100).clamp(0, 0.9999)
    a = ((lab[..., 1] + 80) / 160).clamp(0, 0.9999)
    b = ((lab[..., 2] + 80) / 160).clamp(0, 0.9999)
    nl, na, nb = COLOUR_BINS
    codes = ((lightness * nl).long() * na + (a * na).long()) * nb + (b * nb).long()
    hist = torch.zeros(len(rgb), COLOUR_DIM)
    hist.scatter_add_(1, codes.flatten(1), weights.flatten(1).float())
    # One pass of a [1/4, 1/2, 1/4] kernel along each axis: hard bins would make two blues of a slightly
    # different lightness as unlike as blue and red (measured: colour dE at look=1 14.8 -> 13.5).
    kernel = torch.tensor([0.25, 0.5, 0.25])
    kernel3 = (kernel[:, None, None] * kernel[None, :, None] * kernel[None, None, :])[None, None]
    cube = F.pad(hist.view(-1, 1, nl, na, nb), (1, 1, 1, 1, 1, 1), mode="replicate")
    hist = F.conv3d(cube, kernel3).flatten(1)
    return (hist / hist.sum(dim=1, keepdim=True).clamp(min=1e-12)).sqrt()


def texture(mid: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(n, TEXTURE_DIM): the mid-level map GeM-pooled under the weights, channels averaged down to TEXTURE_DIM."""
    w = F.interpolate(weights[:, None], size=mid.shape[-2:], mode="area")
    pooled = ((mid.float().clamp(min=1e-6) ** GEM_P) * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp(min=1e-12)
    pooled = pooled ** (1 / GEM_P)
    pooled = F.adaptive_avg_pool1d(pooled[:, None], TEXTURE_DIM)[:, 0]
    return F.normalize(pooled, dim=1)


def kind_vectors(last: torch.Tensor) -> np.ndarray:
    """(n, KIND_DIM) unit vectors: the last feature map's mean over the frame plus its mean over the centre (one
    cell less a side), each unit length (channels averaged to KIND_DIM). The centre is where a shopper holds the
    item and where a catalog photo puts it; the whole frame keeps what is around it (measured in the README)."""
    maps = last.float().clamp(min=0).cpu()
    centre = maps[:, :, 1:-1, 1:-1] if min(maps.shape[-2:]) >= 3 else maps
    pooled = F.normalize(maps.mean(dim=(2, 3)), dim=1) + F.normalize(centre.mean(dim=(2, 3)), dim=1)
    if pooled.shape[1] != KIND_DIM:
        pooled = F.adaptive_avg_pool1d(pooled[:, None], KIND_DIM)[:, 0]
    return F.normalize(pooled, dim=1).numpy().astype(np.float32)


def look_vectors(rgb: torch.Tensor, mid: torch.Tensor, last: torch.Tensor) -> np.ndarray:
    """(n, LOOK_DIM) unit vectors from the network's input pixels and its two feature maps."""
    weights = saliency(last, HISTOGRAM_SIDE)
    colour = colour_histogram(rgb.cpu(), weights.cpu())
    pattern = texture(mid.cpu(), weights.cpu())
    look = torch.cat([colour * (1 - TEXTURE_WEIGHT) ** 0.5, pattern * TEXTURE_WEIGHT**0.5], dim=1)
    return F.normalize(look, dim=1).numpy().astype(np.float32)


def _thumbnail(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.resize((COPY_SIDE, COPY_SIDE), Image.Resampling.BOX), dtype=np.float32)
    symmetric = (pixels + pixels[:, ::-1]) / 2  # a mirrored copy has the same thumbnail
    half = symmetric[:, : COPY_SIDE // 2] - symmetric.mean(axis=(0, 1))
    vector = half.ravel()
    return vector / max(float(np.linalg.norm(vector)), 1e-6)


def copy_vectors(image: Image.Image) -> np.ndarray:
    """(COPY_VARIANTS, COPY_DIM): the thumbnails of the whole frame and of its central 80%."""
    rgb = to_rgb(image)
    w, h = rgb.size
    inner = rgb.crop(
        (round(w * COPY_CROP), round(h * COPY_CROP), round(w * (1 - COPY_CROP)), round(h * (1 - COPY_CROP)))
    )
    return np.stack([_thumbnail(rgb), _thumbnail(inner)])


class FeatureTap:
    """Keeps the outputs of a backbone's mid-level and last feature maps during its forward pass.

    Per thread: the serving process shares one network between request threads."""

    def __init__(self, network: nn.Module, arch: str) -> None:
        mid_name, last_name = FEATURE_LAYERS[arch]
        self._local = threading.local()
        self._handles = [
            network.get_submodule(mid_name).register_forward_hook(self._keep("mid")),
            network.get_submodule(last_name).register_forward_hook(self._keep("last")),
        ]

    def _keep(self, key: str):
        def hook(module: nn.Module, inputs: Sequence[torch.Tensor], output: torch.Tensor) -> None:
            if not hasattr(self._local, "maps"):
                self._local.maps = {}
            self._local.maps[key] = output.detach()

        return hook

    def take(self) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self._local.maps
        self._local.maps = {}
        return maps["mid"], maps["last"]
