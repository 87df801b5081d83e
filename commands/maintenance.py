"""Commands that inspect and maintain an index: info, versions, rollback, check, compact."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from shoplens.commands.base import (IndexOption, JsonOption, app, err, handle_errors, out, print_json)


# -- info --------------------------------------------------------------------------


@app.command()
@handle_errors
def info(index_dir: Path = IndexOption, as_json: bool = JsonOption):
    """What the index holds: model, sizes, backends, counts, versions, reranker."""
    from shoplens.indexers.inspect import describe_index

    details = describe_index(index_dir)
    if as_json:
        print_json(details)
        return
    table = Table(show_header=False, title=f"ShopLens index {index_dir}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in details.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        table.add_row(key, str(value))
    out.print(table)


@app.command()
@handle_errors
def versions(
    index_dir: Path = IndexOption,
    keep: Optional[int] = typer.Option(None, "--keep", help="From now on keep this many versions (a new version records it)."),
    as_json: bool = JsonOption,
):
    """Committed versions kept for rollback, newest first, with what changed."""
    from shoplens.indexers.maintenance import list_versions, set_retention

    if keep is not None:
        set_retention(index_dir, keep)
    rows = list_versions(index_dir)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"versions of {index_dir}", title_justify="left")
    for column in ("version", "kind", "created", "products", "change"):
        table.add_column(column, justify="right" if column in ("version", "products") else "left", overflow="fold")
    for row in rows:
        change = ", ".join(f"{k} {v}" for k, v in row["change"].items() if v not in (0, None, "", []) and k != "catalog")
        products = "?" if row["products"] is None else f"{row['products']:,}"
        table.add_row(f"{row['version']}{' *' if row['current'] else ''}", row["kind"], row["created_at"],
                      products, row.get("error") or change)
    out.print(table)


@app.command()
@handle_errors
def rollback(
    version: int = typer.Argument(..., help="The version to restore (see `shoplens versions`)."),
    index_dir: Path = IndexOption,
    as_json: bool = JsonOption,
):
    """Restore an earlier version (as a new version, so the rollback can itself be undone)."""
    from shoplens.indexers.maintenance import rollback as run_rollback

    new_version = run_rollback(index_dir, version)
    if as_json:
        print_json({"version": new_version, "restored": version})
        return
    out.print(f"[bold green]version {new_version}[/]: restored version {version}")


@app.command()
@handle_errors
def check(
    index_dir: Path = IndexOption,
    deep: int = typer.Option(0, "--deep", help="Also re-encode this many random products and compare embeddings."),
    version: Optional[int] = typer.Option(None, "--version", help="Check this version instead of the current one."),
    as_json: bool = JsonOption,
):
    """Verify that every store holds the same products at the same version; non-zero exit on any difference."""
    from shoplens.indexers.maintenance import check_index

    report = check_index(index_dir, deep=deep, version=version)
    if as_json:
        print_json(report.to_dict())
    else:
        facts = ", ".join(f"{k} {v}" for k, v in report.facts.items())
        if report.ok:
            out.print(f"[bold green]ok[/]: version {report.version}: {facts}")
        else:
            for problem in report.problems:
                err.print(f"[bold red]problem:[/] {problem}", highlight=False)
        for warning in report.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@handle_errors
def compact(index_dir: Path = IndexOption, as_json: bool = JsonOption):
    """Rewrite the stores without deleted and replaced rows, reclaiming their space."""
    from shoplens.indexers.maintenance import compact as run_compact

    report = run_compact(index_dir)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"[bold green]version {report.version}[/]: {report.rows_before:,} rows -> {report.rows_after:,}; "
              f"{report.bytes_before / 2 ** 20:.1f} MB -> {report.bytes_after / 2 ** 20:.1f} MB")
