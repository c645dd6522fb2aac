"""The Celery app, its tasks, and enqueue: what the API and the CLI hand to the background."""
