"""What every benchmark prints with its figures: the machine, library versions, percentiles, tables."""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

LIBRARIES = ("shoplens", "torch", "open-clip-torch", "faiss-cpu", "faiss-gpu-cu12", "tantivy", "xgboost", "numpy",
             "bm25s", "rank-bm25", "hnswlib", "txtai", "elasticsearch")


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, GPU (if torch sees one), OS."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(), "gpu": None}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


def library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def percentiles(values_ms: Sequence[float], points=(50, 95, 99)) -> dict[str, float]:
    if len(values_ms) == 0:
        return {f"p{p}": float("nan") for p in points}
    array = np.asarray(values_ms, dtype=float)
    return {f"p{p}": float(np.percentile(array, p)) for p in points}


@contextmanager
def timer() -> Iterator[list[float]]:
    """with timer() as t: ... ; t[0] is the elapsed seconds."""
    box = [0.0]
    started = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - started


@dataclass
class Report:
    """A benchmark's tables plus the context needed to read them."""

    title: str
    data: str
    command: str
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.tables.append((name, columns, rows))

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title, "data": self.data, "command": self.command, "machine": machine_info(),
            "libraries": library_versions(),
            "tables": [{"name": n, "columns": c, "rows": r} for n, c, r in self.tables],
            "notes": self.notes, **self.extra,
        }

    def renderables(self) -> list[Any]:
        """What `render` prints: context lines (markup text) and one Rich table per measured table."""
        from rich.table import Table
        from rich.text import Text

        machine = machine_info()
        gpu = machine["gpu"] or "none"
        parts: list[Any] = [f"[bold]{self.title}[/]", f"data: {self.data}",
                            f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB, GPU: {gpu}",
                            "libraries: " + ", ".join(f"{k} {v}" for k, v in library_versions().items())]
        for name, columns, rows in self.tables:
            table = Table(title=name, title_justify="left")
            for column in columns:
                table.add_column(column, justify="left" if column == columns[0] else "right")
            for row in rows:
                table.add_row(*[_cell(v) for v in row])
            parts.append(table)
        parts += [f"note: {note}" for note in self.notes]
        parts.append(Text(f"command: {self.command}"))
        return parts

    def render(self, console) -> None:
        """Print the report on a Rich console (a terminal); `shoplens bench` prints plain lines in a pipe."""
        for part in self.renderables():
            console.print(part)

    def markdown(self) -> str:
        """The tables as Markdown, for the README's Performance section."""
        lines = [f"**{self.title}**", "", f"Data: {self.data}", ""]
        for name, columns, rows in self.tables:
            lines += [f"_{name}_", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
            lines.append("")
        lines += [f"Command: `{self.command}`", ""]
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if np.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def save_report(report: Report, path: Path | None) -> None:
    if path is None:
        return
    from shoplens.common.outputs import atomic_output

    with atomic_output(path) as handle:  # the whole report or none of it
        handle.write(json.dumps(report.to_json(), indent=2, default=str))
