"""What queries and workers share at run time: the live collection and the per-process embedder."""
