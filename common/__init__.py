"""Leaf modules every layer may import: the shared error types."""
