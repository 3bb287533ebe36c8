"""dab package (see README)."""
