"""The Celery tasks on a real worker."""
