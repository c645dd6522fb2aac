"""Duplicate photos across products, the DUPLICATES=reject side: refuse a photo before it is stored when it is
the same file as a photo of another product (by sha256) or a near-copy of one (by the copy descriptor under
COPY_DISTANCE; in a collection from before it, closer than DUPLICATE_DISTANCE with the active model). With
DUPLICATES=flag nothing is refused: the database pairs same files when they are stored, and the embedding
worker pairs near-copies when it indexes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from backend.config import DuplicatePolicy, Settings
from backend.core.extensions import DbSession
from backend.db.duplicates import same_file_photos
from backend.domain.photos import CheckedPhoto, open_photo
from backend.errors import DuplicatePhoto
from backend.index import SearchFilter
from backend.indexing.embed import NearCopies
from backend.serving.active import active_index
from backend.serving.embedders import embedder_for, on_inference_thread

NEAREST = 5


class DuplicateFound(TypedDict):
    """A photo (by its position in the upload) and a photo of another product it duplicates (distance 0: the
    same file)."""

    photo: int
    product_id: int
    image_id: int
    distance: float


def find_duplicates(
    *, session: DbSession, settings: Settings, images: Sequence[CheckedPhoto], product_id: int | None
) -> list[DuplicateFound]:
    """For each photo (by its position), the photos of other products it duplicates: same files first; when there
    are none, near-copies by the active model."""
    same = same_file_photos(session, [image.sha256 for image in images], product_id) if images else {}
    found: list[DuplicateFound] = [
        {"photo": n, "product_id": pid, "image_id": iid, "distance": 0.0}
        for n, image in enumerate(images)
        for pid, iid in same.get(image.sha256, [])
    ]
    if found or not images:
        return found
    active, index = active_index(session=session, settings=settings)
    pixels = [open_photo(image.data, settings.max_image_pixels, settings.max_aspect_ratio) for image in images]
    where = SearchFilter(exclude_product_ids=(product_id,) if product_id is not None else ())
    rule = NearCopies.of(settings)  # the workers' rule for the photos they index
    if index.descriptors:  # the copy descriptor: thumbnails, no forward pass
        # Here: ml.descriptors imports torch (seconds), needed only where an upload is checked for copies.
        from ml.descriptors import copy_vectors

        hits = [
            index.copies(copy_vectors(p).tolist(), limit=NEAREST, where=where, min_similarity=rule.min_similarity)
            for p in pixels
        ]
    else:
        embedder = embedder_for(settings, active.model_version)
        vectors = [vector.tolist() for vector in on_inference_thread(lambda: embedder.embed(pixels))]
        hits = index.search_batch(vectors, limit=NEAREST, where=where, max_distance=rule.distance)
    return [
        {"photo": n, "product_id": hit.product_id, "image_id": hit.id, "distance": round(hit.distance, 6)}
        for n, photo_hits in enumerate(hits)
        for hit in photo_hits
    ]


def refuse_duplicates(
    *, session: DbSession, settings: Settings, images: Sequence[CheckedPhoto], product_id: int | None = None
) -> None:
    """DUPLICATES=reject: DuplicatePhoto (409) naming what each refused photo duplicates; otherwise nothing."""
    if settings.duplicates is not DuplicatePolicy.reject:
        return
    found = find_duplicates(session=session, settings=settings, images=images, product_id=product_id)
    if found:
        first = found[0]
        name = images[first["photo"]].original_filename or f"photo {first['photo'] + 1}"
        kind = "the same file as" if first["distance"] == 0 else "a near-copy of"
        raise DuplicatePhoto(
            f"{name} is {kind} photo {first['image_id']} of product {first['product_id']} (DUPLICATES=reject)",
            field="images",
            duplicate_of=found,
        )
