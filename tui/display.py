"""Renderings for the terminal: result tables, explanations, comparisons, product details, thumbnails.

Everything here builds Rich renderables. On a terminal they are printed as
they are; without one (a pipe, a CI log) `plain_lines` turns them into
tab-separated lines with no box drawing and no wrapping, so output stays
greppable.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich.columns import Columns
from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text

from shoplens.engine.query import SearchResponse, SearchResult

SIGNAL_DIGITS = {"bm25": 2, "dense": 3, "text_native": 3, "fused": 4, "rerank": 3}
THUMB_MODES = ("off", "on", "grid")  # on: two text rows per result, in the table; grid: a gallery below it


def as_text(value: Any) -> Text | Any:
    """A catalog value or a user's text for a table cell, shown as it is: a plain `str` cell would be read
    as Rich markup, so a title such as "Tee [/] Black" would end the search in a MarkupError (and "[red]"
    would vanish). Renderables (thumbnails, Text) pass through."""
    if isinstance(value, (Text, Table, Group, Columns)) or value is None:
        return value
    return Text(str(value))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def price_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


RETRIEVERS = ("bm25", "dense", "text_native")


def order_signal(response: SearchResponse) -> str:
    """The signal the results are ordered by: rerank, fused, or the one retriever of a single mode (or of a
    hybrid query only one retriever answered, such as a photo: fusing one list keeps its order)."""
    if response.reranked:
        return "rerank"
    mode = response.query.get("mode", "hybrid")
    single = {"lexical": "bm25", "dense": "dense", "native": "text_native"}.get(mode) or _sole_retriever(response)
    return single or "fused"


def _sole_retriever(response: SearchResponse) -> str | None:
    """The one retriever that scored the results, when the results are in its order; else None."""
    present = [n for n in RETRIEVERS if any(r.signals.get(n) is not None for r in response.results)]
    if len(present) != 1:
        return None
    values = [r.signals.get(present[0]) for r in response.results]
    in_order = None not in values and all(a >= b for a, b in zip(values, values[1:]))
    return present[0] if in_order else None


def _signal_columns(response: SearchResponse, wide: bool) -> list[str]:
    """Signals worth a column: each once, and not the fused copy of a sole retriever (a single mode, a photo)."""
    names = list(SIGNAL_DIGITS)
    if not wide:
        if order_signal(response) in RETRIEVERS:
            names.remove("fused")
        names = [n for n in names if any(r.signals.get(n) is not None for r in response.results)]
    return names


def describe_query(query: dict[str, Any]) -> str:
    """A query as one line: text, photo and filters."""
    parts = []
    if query.get("text"):
        parts.append(repr(query["text"]))
    if query.get("image"):
        parts.append(f"photo {query['image']}")
    if query.get("filters"):
        parts.append("where " + " and ".join(query["filters"]))
    return " ".join(parts) or "(empty)"


def results_table(response: SearchResponse, thumbnails: str | bool = "off", wide: bool = False,
                  width: int | None = None) -> Table:
    """One page of results: rank, id, title, brand, price and the signals, one line per result.

    Titles and brands are cut (with an ellipsis) so the table fits `width`
    columns; `wide` shows them whole, with categories and every signal. The
    column the results are ordered by is in bold, and named in the caption.
    """
    thumbs = {True: "on", False: "off"}.get(thumbnails, thumbnails)
    order = order_signal(response)
    signals = _signal_columns(response, wide)
    headers = ["#", "id", "title", "brand"] + (["category"] if wide else []) + ["price"] + signals
    rows = []
    for result in response.results:
        rows.append([str(result.rank), result.id, result.title, result.brand]
                    + ([" > ".join(result.category)] if wide else []) + [price_text(result.price)]
                    + [_fmt(result.signals.get(name), SIGNAL_DIGITS[name]) for name in signals])
    room = (width or 0) - (7 if thumbs == "on" else 0)  # a thumbnail column: 4 cells and its padding
    hidden: list[str] = []
    if width and not wide:
        headers, rows, hidden = _fit_columns(headers, rows, room, order)
    limits = {} if wide or not width else _text_limits(headers, rows, room)
    table = _results_columns(headers, limits, order, thumbs, _results_caption(response, order, wide, hidden))
    for result, row in zip(response.results, rows):
        if thumbs == "on":
            row.insert(1, thumbnail(result.image, width=4, rows=2) or Text("", style="dim"))
        table.add_row(*[as_text(cell) for cell in row])
    return table


def _results_caption(response: SearchResponse, order: str, wide: bool, hidden: list[str]) -> str:
    """Time, version, order and candidates on the first line (stage times with --wide, the signals left
    out to fit), then one line per note of the engine (spelling, intent)."""
    boosted = order != "rerank" and any((r.signals.get("intent_boost") or 1) > 1 for r in response.results)
    caption = f"{response.took_ms:.0f} ms · version {response.version} · ordered by {order}"
    caption += " with intent boosts" if boosted else ""  # a product that meets the query's intent moves up
    caption += f" · {response.total_candidates:,} candidates"
    if wide:
        stages = ", ".join(f"{name} {ms:.1f}" for name, ms in response.stages_ms.items() if ms is not None)
        caption += f" · stages ms: {stages}"
    if hidden:
        caption += f" · {', '.join(hidden)} not shown to fit (--wide shows every column)"
    return "\n".join([caption, *response.notes])


def _results_columns(headers: list[str], limits: dict[str, int], order: str, thumbs: str, caption: str) -> Table:
    table = Table(caption=as_text(caption), caption_justify="left", pad_edge=False)  # a note quotes the query
    for position, header in enumerate(headers):
        if position == 1 and thumbs == "on":
            table.add_column("", no_wrap=True, width=4)
        numeric = header in ("#", "price") or header in SIGNAL_DIGITS
        style = {"#": "bold", "id": "cyan"}.get(header, "bold" if header == order else ("dim" if numeric and header != "price" else ""))
        if header in limits:
            table.add_column(header, no_wrap=True, overflow="ellipsis", max_width=limits[header], style=style)
        else:
            table.add_column(header, justify="right" if numeric else "left", style=style,
                             no_wrap=header not in ("title", "brand", "category"), overflow="fold")
    return table


MIN_TITLE = 12  # titles are never cut shorter than this
FAIR_TITLE = 20  # a title cut shorter says too little: signal columns give way first
MAX_BRAND = 16


def _natural_widths(headers: list[str], rows: list[list[str]]) -> list[int]:
    return [max([cell_len(h)] + [cell_len(row[i]) for row in rows]) for i, h in enumerate(headers)]


def _title_room(headers: list[str], rows: list[list[str]], width: int) -> int:
    """Cells left for the title when every other column keeps its natural width (brand at most MAX_BRAND)."""
    natural = _natural_widths(headers, rows)
    overhead = 3 * len(headers) + 1  # borders and padding
    title, brand = headers.index("title"), headers.index("brand")
    others = sum(w for i, w in enumerate(natural) if i not in (title, brand))
    return width - overhead - others - min(natural[brand], MAX_BRAND)


def _fit_columns(headers: list[str], rows: list[list[str]], width: int,
                 order: str) -> tuple[list[str], list[list[str]], list[str]]:
    """Drop signal columns (never the one the results are ordered by), rightmost first, until the title
    gets FAIR_TITLE cells (or its whole length): ids, prices and scores are never squeezed. Returns
    headers, rows, and what was dropped."""
    hidden: list[str] = []
    longest = max([cell_len(row[headers.index("title")]) for row in rows], default=0)
    while _title_room(headers, rows, width) < min(FAIR_TITLE, longest):
        droppable = [i for i, h in enumerate(headers) if h in SIGNAL_DIGITS and h != order]
        if not droppable:
            break
        position = droppable[-1]
        hidden.insert(0, headers[position])
        headers = headers[:position] + headers[position + 1:]
        rows = [row[:position] + row[position + 1:] for row in rows]
    return headers, rows, hidden


def _text_limits(headers: list[str], rows: list[list[str]], width: int) -> dict[str, int]:
    """Widest title and brand that let the whole table fit `width` columns (other columns keep theirs)."""
    natural = _natural_widths(headers, rows)
    title, brand = headers.index("title"), headers.index("brand")
    brand_width = min(natural[brand], MAX_BRAND)
    room = _title_room(headers, rows, width)
    if room >= natural[title]:
        return {} if natural[brand] <= brand_width else {"brand": brand_width}
    return {"title": max(MIN_TITLE, room), "brand": brand_width}


def thumbnail_grid(response: SearchResponse, width: int = 10) -> Columns:
    """The page's product images side by side, each labelled with its rank and id."""
    cells = []
    for result in response.results:
        picture = thumbnail(result.image, width=width, rows=width // 2) or Text("no image\n", style="dim")
        cells.append(Group(picture, Text(f"#{result.rank} {result.id}"[: width + 4], style="bold")))
    return Columns(cells, padding=(0, 2))


def explain_view(result: SearchResult) -> Group:
    """Why a result ranked where it did: retrieval signals, reranker contributions, and whatever else
    the engine explains (rendered generically, so new explanations show without changes here)."""
    parts: list[Any] = [Text(f"#{result.rank} {result.title}  (id {result.id})", style="bold")]
    explain = dict(result.explain or {})
    signals = Table(title="retrieval signals", title_justify="left")
    for name in ("signal", "value", "rank"):
        signals.add_column(name, justify="right" if name != "signal" else "left")
    ranks = {"bm25": explain.pop("bm25_rank", None), "dense": explain.pop("dense_rank", None),
             "text_native": explain.pop("text_native_rank", None), "fused": explain.pop("fused_rank", None), "rerank": result.rank if result.signals.get("rerank") is not None else None}
    for name, digits in SIGNAL_DIGITS.items():
        rank = ranks[name]
        signals.add_row(name, _fmt(result.signals.get(name), digits + 1), "-" if rank is None else str(rank))
    parts.append(signals)
    contributions = explain.pop("rerank_contributions", None)
    if contributions:
        parts.append(contributions_table(contributions))
    parts += generic_view(explain)
    return Group(*parts)


def contributions_table(contributions: dict[str, Any], top: int = 15) -> Table:
    table = Table(title="reranker: feature contributions (SHAP, in model score units)", title_justify="left")
    table.add_column("feature")
    table.add_column("value", justify="right")
    table.add_column("contribution", justify="right")
    items = sorted(contributions["features"].items(), key=lambda kv: -abs(kv[1]["contribution"]))
    for name, item in items[:top]:
        value = item["value"]
        table.add_row(name, "missing" if value is None else f"{value:.4g}", f"{item['contribution']:+.4f}")
    table.add_row("(bias)", "", f"{contributions['bias']:+.4f}")
    return table


def generic_view(data: dict[str, Any]) -> list[Any]:
    """Explanations this module has no special view for: one `key: value` line each (nested as k=v)."""
    lines = []
    for key, value in data.items():
        if value in (None, {}, []):
            continue
        lines.append(Text.assemble((f"{key}: ", "bold"), _inline(value)))
    return lines


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_inline(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_inline(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def compare_table(left: SearchResponse, right: SearchResponse, left_label: str, right_label: str,
                  wide: bool = False, width: int | None = None) -> Table:
    """Two result lists for the same query side by side; the right one marks how each product moved."""
    left_rank = {r.id: r.rank for r in left.results}
    right_ids = {r.id for r in right.results}
    table = Table(caption="move: ↑n / ↓n places against the left · new: not in the left list · "
                          "✗: not in the right list", caption_justify="left", pad_edge=False)
    table.add_column("#", justify="right", style="bold", no_wrap=True)
    table.add_column(left_label, overflow="fold")
    table.add_column("move", justify="right", no_wrap=True)
    table.add_column(right_label, overflow="fold")
    rows = max(len(left.results), len(right.results))
    side = None if wide or not width else max(12, (width - 13 - len(str(rows)) - 4) // 2)
    for i in range(rows):
        a = left.results[i] if i < len(left.results) else None
        b = right.results[i] if i < len(right.results) else None
        rank = (a or b).rank
        cells = [_cell(a, gone=a is not None and a.id not in right_ids), _cell(b)]
        if side:
            for cell in cells:
                cell.truncate(side, overflow="ellipsis")
        table.add_row(str(rank), cells[0], _movement(b, left_rank), cells[1])
    return table


def _cell(result: SearchResult | None, gone: bool = False) -> Text:
    if result is None:
        return Text("")
    text = Text.assemble(("✗ " if gone else "", "red"), (result.id, "cyan"), " ", result.title)
    return text


def _movement(result: SearchResult | None, left_rank: dict[str, int]) -> Text:
    if result is None:
        return Text("")
    before = left_rank.get(result.id)
    if before is None:
        return Text("new", style="yellow")
    if before == result.rank:
        return Text("=", style="dim")
    delta = before - result.rank
    return Text(f"↑{delta}", style="green") if delta > 0 else Text(f"↓{-delta}", style="red")


def moved(left: SearchResponse, right: SearchResponse) -> dict[str, int]:
    """Products of the right list whose rank differs from the left one: id -> places moved up (new: None)."""
    left_rank = {r.id: r.rank for r in left.results}
    return {r.id: (left_rank[r.id] - r.rank if r.id in left_rank else None) for r in right.results
            if left_rank.get(r.id) != r.rank}


def product_view(record: dict[str, Any], picture: bool = True) -> Group:
    """One product: title, id, brand, category, price, attributes, description and image."""
    parts: list[Any] = [Text(record.get("title", ""), style="bold")]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    category = record.get("category") or []
    rows = [("id", record.get("id")), ("brand", record.get("brand")),
            ("category", " > ".join(category) if isinstance(category, list) else category),
            ("price", price_text(record.get("price")) if record.get("price") is not None else None)]
    for key, value in (record.get("attributes") or {}).items():
        rows.append((key, _inline(value)))
    rows += [("description", record.get("description")), ("image", record.get("image"))]
    for key, value in rows:
        if value not in (None, "", []):
            table.add_row(key, as_text(value))
    parts.append(table)
    if picture and record.get("image"):
        drawn = thumbnail(record["image"], width=24, rows=12)
        if drawn is not None:
            parts.append(drawn)
    return Group(*parts)


def fields_table(summaries: Iterable[Any], total: int) -> Table:
    """Filterable fields: kind, how many products have a value, example values or the range."""
    table = Table(title=f"filterable fields ({total:,} products); use them as :filter FIELD=VALUE, "
                        "FIELD<=NUMBER, FIELD=A|B, FIELD!=VALUE", title_justify="left", pad_edge=False)
    for name in ("field", "kind", "products", "values"):
        table.add_column(name, justify="right" if name == "products" else "left",
                         overflow="ellipsis", no_wrap=name != "values")
    for summary in summaries:
        if summary.kind == "number":
            values = " to ".join(summary.examples) if summary.examples else "-"
        else:
            values = ", ".join(summary.examples)
            if summary.distinct and summary.distinct > len(summary.examples) and summary.examples:
                values += f" ... ({summary.distinct:,} values)"
        table.add_row(as_text(summary.name), summary.kind, f"{summary.products:,}", as_text(values or "(free text)"))
    return table


def thumbnail(path: str | None, width: int = 12, rows: int | None = None) -> Text | None:
    """A product image drawn with half-block characters (two pixels per character cell).

    With `rows`, the picture is fitted into width x rows cells on white, whatever its shape.
    """
    if not path:
        return None
    try:
        from PIL import Image

        from shoplens.indexers.images import open_image

        image = open_image(path)
        if rows is None:
            height = max(2, int(round(image.height / image.width * width / 2)) * 2)
            image = image.resize((width, height))
        else:
            height = rows * 2
            image.thumbnail((width, height))
            canvas = Image.new("RGB", (width, height), "white")
            canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
            image = canvas
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


# -- without a terminal ------------------------------------------------------------------


def plain_lines(renderable: Any) -> list[str]:
    """Greppable lines for a renderable: a table as a header and tab-separated rows, titles and
    captions as `# ` lines, thumbnails left out; nothing wrapped or truncated."""
    if isinstance(renderable, Table):
        lines = []
        if renderable.title:
            lines.append("# " + _plain(renderable.title))
        columns = [c for c in renderable.columns if not _is_picture_column(c)]
        if renderable.show_header:
            lines.append("\t".join(_plain(c.header) for c in columns))
        for cells in zip(*[list(c.cells) for c in columns]):
            lines.append("\t".join(_plain(cell) for cell in cells))
        if renderable.caption:
            caption = renderable.caption
            text_lines = caption.plain.splitlines() if isinstance(caption, Text) else str(caption).splitlines()
            lines.extend("# " + _plain(Text(line) if isinstance(caption, Text) else line)
                         for line in text_lines if line.strip())
        return lines
    if isinstance(renderable, Group):
        return [line for part in renderable.renderables for line in plain_lines(part)]
    if isinstance(renderable, Columns):
        return []  # a thumbnail gallery says nothing without a terminal
    if isinstance(renderable, Text):
        return [] if "▀" in renderable.plain else renderable.plain.splitlines()
    return Text.from_markup(str(renderable)).plain.splitlines()


def _is_picture_column(column) -> bool:
    cells = list(column.cells)
    return column.header == "" and bool(cells) and all(
        isinstance(cell, Text) and set(cell.plain) <= {"▀", "\n"} for cell in cells)


def _plain(value: Any) -> str:
    text = value.plain if isinstance(value, Text) else Text.from_markup(str(value)).plain
    return " ".join(text.split())
