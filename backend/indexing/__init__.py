"""Photos into the vector index: claims, decode-embed-upsert, the sweep and the reindex to a new model."""
