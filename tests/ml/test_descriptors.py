"""The kind vector: the whole frame and its centre, unit length, whatever the backbone's channel count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.descriptors import KIND_DIM, kind_vectors


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
