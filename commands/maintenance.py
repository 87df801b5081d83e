"""Commands that inspect and maintain an index: info, versions, rollback, check, compact."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import sys

import typer

from shoplens.commands.base import (IndexOption, JsonOption, WideOption, app, err, handle_errors, literal, out,
                                    print_json, show)


# -- info --------------------------------------------------------------------------


@app.command()
@handle_errors
def info(index_dir: Path = IndexOption, wide: bool = WideOption, as_json: bool = JsonOption):
    """What the index holds: model, sizes, backends, counts, versions, reranker and behaviour."""
    from shoplens.indexers.describe import describe_index
    from shoplens.tui.reports import info_table

    details = describe_index(index_dir)
    if details.get("ranker") and isinstance(details["ranker"], dict):
        from shoplens.indexers.index import IndexDirectory
        from shoplens.rerank.model import predictor_status

        index = IndexDirectory(index_dir)
        details["ranker_predictor"] = predictor_status(index.version_path(details["version"]), index.cache_dir)
    if as_json:
        print_json(details)
        return
    show(info_table(details, f"ShopLens index {index_dir}", wide=wide))


@app.command()
@handle_errors
def versions(
    index_dir: Path = IndexOption,
    keep: Optional[int] = typer.Option(None, "--keep", help="From now on keep this many versions (a new version records it)."),
    as_json: bool = JsonOption,
):
    """Committed versions kept for rollback, newest first, each with what it did."""
    from shoplens.indexers.maintenance import list_versions, set_retention
    from shoplens.tui.reports import versions_table

    if keep is not None:
        set_retention(index_dir, keep)
    rows = list_versions(index_dir)
    if as_json:
        print_json(rows)
        return
    show(versions_table(rows, f"versions of {index_dir}"))


@app.command()
@handle_errors
def rollback(
    version: int = typer.Argument(..., help="The version to restore (see `shoplens versions`)."),
    index_dir: Path = IndexOption,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (on a terminal it asks)."),
    as_json: bool = JsonOption,
):
    """Restore an earlier version (as a new version, so the rollback can itself be undone)."""
    from shoplens.indexers.maintenance import list_versions
    from shoplens.engine.operations import rollback as run_rollback

    rows = list_versions(index_dir)
    kept = any(row["version"] == version and not row["current"] for row in rows)
    undone = [row for row in rows if row["version"] > version] if kept else []  # else the rollback says why not
    if undone and not as_json:
        err.print(f"rolling back to version {version} undoes {len(undone)} later version(s):", highlight=False)
        for row in undone:
            err.print(f"  {row['version']}: {literal(str(row['description']))}", highlight=False)
    if not yes and sys.stdin.isatty() and undone and not typer.confirm("Roll back?", default=False, err=True):
        err.print("nothing changed")
        raise typer.Exit(1)
    new_version = run_rollback(index_dir, version)
    if as_json:
        print_json({"version": new_version, "restored": version, "undone": [row["version"] for row in undone]})
        return
    previous = next((row["version"] for row in rows if row["current"]), None)  # None: the current one was gone
    undo = f" (`shoplens rollback {previous}` undoes this)" if previous is not None else ""
    out.print(f"[bold green]version {new_version}[/]: restored version {version}{undo}")


@app.command()
@handle_errors
def check(
    index_dir: Path = IndexOption,
    deep: int = typer.Option(0, "--deep", help="Also re-encode this many random products and compare embeddings."),
    version: Optional[int] = typer.Option(None, "--version", help="Check this version instead of the current one."),
    as_json: bool = JsonOption,
):
    """Verify that every store holds the same products at the same version; non-zero exit on any difference."""
    from shoplens.engine.operations import check_index

    report = check_index(index_dir, deep=deep, version=version)
    if as_json:
        print_json(report.to_dict())
    else:
        facts = ", ".join(f"{k} {v}" for k, v in report.facts.items())
        if report.ok:
            out.print(f"[bold green]ok[/]: version {report.version}: {literal(facts)}")
        else:
            for problem in report.problems:
                err.print(f"[bold red]problem:[/] {literal(str(problem))}", highlight=False)
        for warning in report.warnings:
            err.print(f"[yellow]warning:[/] {literal(str(warning))}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@handle_errors
def compact(index_dir: Path = IndexOption, as_json: bool = JsonOption):
    """Rewrite the stores without deleted and replaced rows, reclaiming their space (nothing to reclaim: no change)."""
    from shoplens.indexers.maintenance import compact as run_compact
    from shoplens.tui.reports import human_size

    report = run_compact(index_dir, force=False)
    if as_json:
        print_json(report.to_dict())
        return
    if report.version is None:
        out.print(f"nothing to reclaim: all {report.rows_before:,} stored rows are live; index unchanged")
        return
    out.print(f"[bold green]version {report.version}[/]: {report.rows_before:,} rows -> {report.rows_after:,}; "
              f"{human_size(report.bytes_before)} -> {human_size(report.bytes_after)}")
