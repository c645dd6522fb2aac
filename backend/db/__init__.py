"""Models and data access: PostgreSQL (or SQLite) is the record of truth."""
