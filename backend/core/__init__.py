"""Plumbing every layer uses: the database handle, logs, metrics, the admin token, checked uploads."""
