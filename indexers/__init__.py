"""Catalog ingestion, encoders, and the stores an index is made of."""
