"""The indexing pipeline: embed photos, keep the vector index in step with the database, change models."""
