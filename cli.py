"""`shoplens`: index a catalog, search it, and inspect the index, from the terminal.

This module and `commands/` only parse arguments and print; the work happens in `engine`,
`indexers`, `rerank` and `benchmarks`. Errors a user can fix are printed as one line on stderr
with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import os

import typer

from shoplens import __version__
# Imported for their side effect: each module registers its commands, in this order in --help.
from shoplens.commands import build, search, maintenance, ranking, serve, bench  # noqa: F401,I001
from shoplens.commands.base import app, bench_app

app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shoplens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Multimodal product search: index a catalog, search it by text or image, benchmark it."""


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
