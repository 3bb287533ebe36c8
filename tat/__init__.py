"""tat package (see README)."""
