"""The kind vector: the whole frame and its centre, unit length, whatever the backbone's channel count; the look
vector's weights under the centre prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.descriptors import KIND_DIM, LOOK_DIM, centre_prior, kind_vectors, look_vectors


def item_on(background: torch.Tensor, item: torch.Tensor, side: int = 7) -> torch.Tensor:
    """A (1, c, side, side) last map: `background` everywhere, `item` over the central 5x5 cells."""
    maps = background[:, None, None].repeat(1, side, side)
    maps[:, 1:-1, 1:-1] = item[:, None, None]
    return maps[None]


def feature(k: int) -> torch.Tensor:
    """A map cell's activations: channels of block k (of 8) on, the others off."""
    cell = torch.zeros(KIND_DIM)
    width = KIND_DIM // 8
    cell[k * width : (k + 1) * width] = 1.0
    return cell


@pytest.mark.parametrize("channels", [KIND_DIM, 2048])
def test_kind_vectors_are_unit_rows_of_kind_dim(channels: int) -> None:
    maps = torch.rand(3, channels, 7, 7)
    kinds = kind_vectors(maps)
    assert kinds.shape == (3, KIND_DIM) and kinds.dtype == np.float32
    assert np.allclose(np.linalg.norm(kinds, axis=1), 1, atol=1e-5)


def test_the_same_item_on_two_backgrounds_is_nearer_than_by_the_frame_mean() -> None:
    """The centre is counted beside the whole frame: the item weighs more than by a plain mean of the map."""
    item, shelf, sheet, other_item = (feature(k) for k in range(4))
    a, b = item_on(shelf, item), item_on(sheet, item)
    kinds = kind_vectors(torch.cat([a, b]))
    means = torch.nn.functional.normalize(torch.cat([a, b]).mean(dim=(2, 3)), dim=1).numpy()
    assert float(kinds[0] @ kinds[1]) > float(means[0] @ means[1]) + 0.01
    # and a different item on the same background is further than the same item on another one
    other = kind_vectors(item_on(shelf, other_item))[0]
    assert float(kinds[0] @ kinds[1]) > float(kinds[0] @ other)


def test_a_map_too_small_for_a_centre_is_pooled_whole() -> None:
    maps = torch.rand(2, KIND_DIM, 2, 2)
    expected = torch.nn.functional.normalize(maps.mean(dim=(2, 3)), dim=1).numpy()
    assert np.allclose(kind_vectors(maps), expected, atol=1e-6)


def photo(background: tuple[float, float, float], item: tuple[float, float, float], side: int = 224) -> torch.Tensor:
    """A (1, 3, side, side) sRGB photo: `background` everywhere, `item` over the central 40% box."""
    pixels = torch.tensor(background).view(3, 1, 1).repeat(1, side, side)
    low, high = round(side * 0.3), round(side * 0.7)
    pixels[:, low:high, low:high] = torch.tensor(item).view(3, 1)[:, :, None]
    return pixels[None]


def test_the_centre_prior_peaks_at_the_centre_and_is_symmetric() -> None:
    prior = centre_prior(57)
    assert prior.shape == (57, 57)
    assert float(prior[28, 28]) == pytest.approx(1.0)
    assert torch.allclose(prior, prior.flip(0)) and torch.allclose(prior, prior.T)
    assert float(prior[28, 0]) < 0.01 and float(prior[0, 0]) < float(prior[28, 0])


def test_the_look_is_the_items_colour_more_than_its_backgrounds() -> None:
    """The activation map says nothing here (a flat last map): the centre prior alone keeps the 84% of the frame
    that is background from outweighing the item. Without it, a green item on blue would be nearer to a red item
    on blue than a red item on green is."""
    red, green, blue = (0.8, 0.1, 0.1), (0.1, 0.7, 0.2), (0.1, 0.2, 0.8)
    rgb = torch.cat([photo(blue, red), photo(green, red), photo(blue, green)])
    mid, last = torch.ones(3, 192, 7, 7), torch.ones(3, KIND_DIM, 7, 7)
    looks = look_vectors(rgb, mid, last)
    assert looks.shape == (3, LOOK_DIM)
    assert np.allclose(np.linalg.norm(looks, axis=1), 1, atol=1e-5)
    same_item, same_background = float(looks[0] @ looks[1]), float(looks[0] @ looks[2])
    assert same_item > same_background + 0.1
