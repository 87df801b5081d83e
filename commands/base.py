"""What every command shares: the Typer apps, consoles, common options, one-line error handling,
progress bars and output helpers. Command modules import from here; `cli.py` assembles them."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rich.markup import escape

from shoplens.common.errors import ShopLensError, one_line

app = typer.Typer(
    name="shoplens",
    help="Multimodal product search: index a catalog, search it by text or image, benchmark it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Without a terminal (a pipe, a CI log) lines are not wrapped at 80 columns and tables are printed
# as tab-separated lines by `show`: output stays greppable.
out = Console(soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())

DEFAULT_INDEX = "shoplens-index"
IndexOption = typer.Option(DEFAULT_INDEX, "--index", envvar="SHOPLENS_INDEX",
                           help="Index directory (or set SHOPLENS_INDEX).")
DEVICES = ("auto", "cpu", "cuda")


def _device(value: str) -> str:
    if value not in DEVICES:
        raise typer.BadParameter(f"{value!r} is not a device; use {', '.join(DEVICES)}")
    return value


DeviceOption = typer.Option("auto", "--device", callback=_device, help="auto (GPU when there is one), cpu or cuda.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
FieldMapOption = typer.Option(None, "--map", help="canonical=column[,column]: map the file's column names onto "
                              "ShopLens's, e.g. --map title=productDisplayName --map category=masterCategory,subCategory.")
StrictOption = typer.Option(False, "--strict", help="Fail on any rejected row, line or id, and change nothing.")


def output_file(path: Optional[Path]) -> Optional[Path]:
    """The callback of an option naming a file to write (--save, --out, --plot): a folder, a device, a parent
    that is a file or a folder that cannot be written is a usage error before the command starts."""
    from shoplens.common.outputs import check_output_file

    if path is not None:
        try:
            check_output_file(path)  # Click names the option
        except ShopLensError as exc:
            raise typer.BadParameter(str(exc)) from None
    return path


def output_folder(path: Optional[Path]) -> Optional[Path]:
    """The callback of an option naming a folder to write in (--work-dir, --cache-dir, --run-dir, --out of
    devdata, --events-inbox): a file, or a place no folder can be made or written, is a usage error at once."""
    from shoplens.common.outputs import check_output_folder

    if path is not None:
        try:
            check_output_folder(path)
        except ShopLensError as exc:
            raise typer.BadParameter(str(exc)) from None
    return path


SaveOption = typer.Option(None, "--save", callback=output_file, help="Also write the report as JSON here.")


def literal(text: str) -> str:
    """A user's text (a path, a query, an id, a catalog value) to print with Rich: on one line, its square
    brackets shown as typed rather than read as markup (an unmatched `[/]` would otherwise end the command
    in a MarkupError)."""
    return escape(one_line(text))


def handle_errors(function: Callable) -> Callable:
    """Print a ShopLensError as one line and exit non-zero, instead of a traceback."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ShopLensError as exc:
            err.print(f"[bold red]error:[/] {literal(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


class RichProgress:
    """Progress bars on stderr, one per stage of a long job."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and err.is_terminal or os.environ.get("SHOPLENS_PROGRESS") == "1"
        self._progress: Progress | None = None

    def __enter__(self):
        if self.enabled:
            self._progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()

    def stage(self, name: str, total: int | None):
        if self._progress is None:
            return lambda done: None
        task = self._progress.add_task(name, total=total)
        return lambda done: self._progress.advance(task, done)

    def reporter(self) -> Callable[[str, int, int], None]:
        """A (stage, done, total) callback, for code that reports totals rather than increments."""
        tasks: dict[str, tuple[Callable[[int], None], list[int]]] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = (self.stage(stage, total), [0])
            advance, seen = tasks[stage]
            advance(done - seen[0])
            seen[0] = done

        return report


def standard_json(data: Any) -> Any:
    """Data that `json.dumps(allow_nan=False)` accepts: NaN and infinities become null (missing),
    numpy scalars become Python numbers, tuples become lists."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {str(key): standard_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [standard_json(value) for value in data]
    if type(data).__module__ == "numpy" and hasattr(data, "item"):
        return standard_json(data.item())
    return data


def json_text(data: Any, indent: int | None = 2) -> str:
    """Standard JSON (RFC 8259) for everything the CLI prints: never NaN or Infinity."""
    return json.dumps(standard_json(data), indent=indent, ensure_ascii=False, allow_nan=False, default=str)


def show(*renderables: Any) -> None:
    """Print tables and views: drawn on a terminal, as plain tab-separated lines otherwise."""
    from shoplens.tui.display import plain_lines

    for renderable in renderables:
        if out.is_terminal:
            out.print(renderable)
        else:
            for line in plain_lines(renderable):
                sys.stdout.write(line + "\n")
    if not out.is_terminal:
        sys.stdout.flush()


WideOption = typer.Option(False, "--wide", "-w", help="Everything: full titles and values, every column, no truncation.")


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


def parse_field_maps(values: list[str] | None) -> dict[str, list[str]]:
    from shoplens.indexers.catalog import parse_field_map

    return parse_field_map(values or [])


def print_commit(report, index_dir: Path) -> None:
    """What a write did: the new version and its counts (a delete encodes nothing, so says nothing of it)."""
    seconds = report.seconds.get("total", 0)
    if report.version is None:
        out.print(f"nothing changed: all {report.unchanged:,} product(s) given are already indexed as they are; "
                  f"no new version ({literal(str(index_dir))} keeps {report.products:,} products)")
    elif report.kind == "delete":
        out.print(f"[bold green]version {report.version}[/] of {literal(str(index_dir))}: deleted {report.deleted:,} products, "
                  f"{report.products:,} remain ({seconds:.1f} s)")
    else:
        out.print(f"[bold green]version {report.version}[/] of {literal(str(index_dir))}: {report.products:,} products "
                  f"({report.added:,} added, {report.updated:,} updated, {report.unchanged:,} unchanged, "
                  f"{report.deleted:,} deleted) in {seconds:.1f} s")
        out.print(f"encoded {report.texts_encoded:,} texts and {report.images_encoded:,} images; "
                  f"{report.embeddings_reused:,} embeddings reused from the cache")
    print_rejects(report.rejects, report.rejects_path, "id" if report.kind == "delete" else "row")
    if report.image_problems:
        err.print(f"[yellow]{len(report.image_problems)} image(s) could not be used[/]; those products are indexed from their text:")
        print_some([f"id {p.id}: {p.reason} ({p.path})" for p in report.image_problems])
    if report.compacted:
        compacted = report.compacted
        out.print(f"compacted into version {compacted.version}: {compacted.rows_before:,} rows -> "
                  f"{compacted.rows_after:,}")


def print_rejects(rejects: list, path: str | None, what: str) -> None:
    """The rejected rows (lines, ids) of a write on stderr: how many, where they were written, the first five."""
    if rejects:
        err.print(f"[yellow]{len(rejects)} bad {what}(s) skipped[/], written to {literal(str(path))}:")
        print_some([reject.describe() for reject in rejects])


def print_some(lines: list[str], limit: int = 5) -> None:
    for line in lines[:limit]:
        err.print(f"  {literal(line)}", highlight=False)
    if len(lines) > limit:
        err.print(f"  ... and {len(lines) - limit} more")


bench_app = typer.Typer(help="Benchmarks: measured figures printed as tables (code in benchmarks/).",
                        no_args_is_help=True)
BENCH_DIR = Path(".bench")


def finish_report(report, as_json: bool, save: Optional[Path]) -> None:
    from shoplens.benchmarks.common import save_report

    save_report(report, save)
    if as_json:
        print_json(report.to_json())
    else:
        show(*report.renderables())


def command_line() -> str:
    return "shoplens " + " ".join(sys.argv[1:])
