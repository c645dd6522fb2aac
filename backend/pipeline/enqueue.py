"""What the API and the CLI hand to the pipeline, after their commit: one call per kind of work.

With a broker these send Celery tasks (embeds to the `embed` queue, index upkeep to `index`);
without one the same tasks run now, in this process.
"""

from __future__ import annotations

from backend.pipeline.tasks import delete_points, enqueue_embedding, sweep, sync_product

__all__ = ["enqueue_embedding", "enqueue_payload_sync", "enqueue_point_deletes", "sweep"]


def enqueue_point_deletes(image_ids: list[int]) -> None:
    """Remove the points of photos whose rows are deleted."""
    if image_ids:
        delete_points.delay(image_ids)


def enqueue_payload_sync(product_id: int) -> None:
    """Copy a product's category, brand and price onto its points."""
    sync_product.delay(product_id)
