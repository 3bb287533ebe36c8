"""softtransfer package (see README)."""
