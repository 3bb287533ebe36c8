"""optnets package (see README)."""
