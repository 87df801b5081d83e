"""Benchmarks: commands that measure ShopLens (and its peers) and print tables. Never assertions."""
