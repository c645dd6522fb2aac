"""Use cases: a session, the settings and plain values in, domain objects out; no Flask request objects."""
