"""Indexing, the sweep, the reindex and their faults."""
