"""The CLI's commands, grouped by what they work on. Each command only parses its options, calls the
engine, indexers, rerank or benchmarks, and prints; `cli.py` assembles them into one Typer app."""
