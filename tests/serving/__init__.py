"""The live collection and the embedder cache."""
