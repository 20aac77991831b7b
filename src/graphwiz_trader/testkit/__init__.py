"""Fixtures for tests and benchmarks: small, deterministic SYNTHETIC inputs for the product's code.

Nothing in the product imports this package; it may import any of the product's packages.
"""
