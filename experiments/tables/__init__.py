"""Reproduction tables, one module per paper; each calls experiments.reproduce.register."""
