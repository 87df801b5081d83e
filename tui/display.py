"""Rich renderings of results, explanations and product thumbnails for the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from shoplens.engine.query import SearchResponse, SearchResult


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _price(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def results_table(response: SearchResponse, thumbnails: bool = False) -> Table:
    """Rank, title, brand, price and the per-signal scores of one page of results."""
    stages = ", ".join(f"{name} {ms:.1f}" for name, ms in response.stages_ms.items() if ms is not None)
    caption = f"{response.took_ms:.1f} ms ({stages}) · version {response.version}"
    if response.reranked:
        caption += " · reranked"
    table = Table(caption=caption, caption_justify="left", show_lines=thumbnails)
    table.add_column("#", justify="right", style="bold")
    if thumbnails:
        table.add_column("")
    table.add_column("title", overflow="fold", ratio=3)
    table.add_column("brand", overflow="fold")
    table.add_column("price", justify="right")
    table.add_column("score", justify="right")
    table.add_column("bm25", justify="right", style="dim")
    table.add_column("dense", justify="right", style="dim")
    table.add_column("rerank", justify="right", style="dim")
    for result in response.results:
        row: list[Any] = [str(result.rank)]
        if thumbnails:
            row.append(thumbnail(result.image) or Text("no image", style="dim"))
        row += [result.title, result.brand, _price(result.price), _fmt(result.score, 4),
                _fmt(result.signals.get("bm25"), 2), _fmt(result.signals.get("dense")), _fmt(result.signals.get("rerank"))]
        table.add_row(*row)
    return table


def explain_view(result: SearchResult) -> Group:
    """Why a result ranked where it did: retrieval signals and, when reranked, each feature's contribution."""
    parts: list[Any] = [Text(f"#{result.rank} {result.title}  (id {result.id})", style="bold")]
    signals = Table(title="retrieval signals", show_header=True)
    for name in ("signal", "value", "rank"):
        signals.add_column(name, justify="right" if name != "signal" else "left")
    explain = result.explain or {}
    signals.add_row("bm25", _fmt(result.signals.get("bm25"), 3), _fmt(explain.get("bm25_rank"), 0))
    signals.add_row("dense", _fmt(result.signals.get("dense"), 4), _fmt(explain.get("dense_rank"), 0))
    signals.add_row("fused", _fmt(result.signals.get("fused"), 5), str(explain.get("fused_rank", "-")))
    signals.add_row("rerank", _fmt(result.signals.get("rerank"), 4), str(result.rank))
    parts.append(signals)
    contributions = explain.get("rerank_contributions")
    if contributions:
        table = Table(title="reranker: feature contributions (SHAP, in model score units)")
        table.add_column("feature")
        table.add_column("value", justify="right")
        table.add_column("contribution", justify="right")
        items = sorted(contributions["features"].items(), key=lambda kv: -abs(kv[1]["contribution"]))
        for name, item in items[:15]:
            value = item["value"]
            table.add_row(name, "missing" if value is None else f"{value:.4g}", f"{item['contribution']:+.4f}")
        table.add_row("(bias)", "", f"{contributions['bias']:+.4f}")
        parts.append(table)
    return Group(*parts)


def thumbnail(path: str | None, width: int = 12) -> Text | None:
    """A product image drawn with half-block characters (two pixels per character cell)."""
    if not path:
        return None
    try:
        from shoplens.indexers.images import open_image

        image = open_image(path)
        height = max(2, int(round(image.height / image.width * width / 2)) * 2)
        image = image.resize((width, height))
        pixels = image.load()
    except (OSError, ValueError):  # ImageError is a ValueError
        return None
    text = Text()
    for y in range(0, height, 2):
        for x in range(width):
            top, bottom = pixels[x, y], pixels[x, y + 1]
            text.append("▀", style=f"rgb({top[0]},{top[1]},{top[2]}) on rgb({bottom[0]},{bottom[1]},{bottom[2]})")
        if y + 2 < height:
            text.append("\n")
    return text
