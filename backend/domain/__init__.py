"""Framework-free rules: a product's fields, a photo's checks. No Flask, no database session."""
