"""Result tables that fit: titles cut first, then the signals the order does not use; never an id or a
price squeezed; plain lines without a terminal, one `# ` line per caption line."""

import io

from rich.console import Console

from shoplens.engine.query import SearchResponse, SearchResult
from shoplens.tui.display import plain_lines, results_table

TITLES = ["Reebok Men Active Navy Blue Sports Shoes", "Skechers Women Bravos Navy Blue Sports Shoes",
          "ADIDAS Men Navy Blue Sukoi Shoes"]


def response(mode="hybrid", notes=()):
    results = [SearchResult(rank=i + 1, id=f"4{i}024", title=title, brand="Skechers", price=12995.0, score=0.04,
                            signals={"bm25": 25.79, "dense": 0.564, "text_native": 0.686, "fused": 0.0396 - i / 1000,
                                     "rerank": None})
               for i, title in enumerate(TITLES)]
    return SearchResponse(query={"text": "blue shoes", "mode": mode}, took_ms=12.0, stages_ms={"encode": 3.0},
                          results=results, version=7, total_candidates=120, notes=list(notes))


def render(table, width):
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table)
    return console.file.getvalue()


def test_a_narrow_terminal_cuts_titles_then_drops_signals_but_never_squeezes_ids_or_prices():
    text = render(results_table(response(), width=60), 60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 3  # one line a product: nothing wrapped
    assert all(f"4{i}024" in row and "12,995" in row for i, row in enumerate(rows))
    assert all(f"{0.0396 - i / 1000:.4f}" in row for i, row in enumerate(rows))  # the order's column stays whole
    assert "…" in rows[1]  # the title was cut
    assert "bm25, dense, text_native not shown to fit (--wide shows every column)" in " ".join(text.split())


def test_a_wide_enough_terminal_keeps_every_signal():
    text = render(results_table(response(), width=140), 140)
    assert "text_native" in text and "not shown" not in text and "…" not in text


def test_a_single_mode_is_ordered_by_its_own_signal():
    assert "ordered by text_native" in render(results_table(response("native"), width=140), 140)
    assert "ordered by bm25" in render(results_table(response("lexical"), width=140), 140)


def test_a_photo_query_shows_no_fused_copy_of_its_one_retriever():
    photo = response()
    for result in photo.results:
        result.signals = {"bm25": None, "dense": result.signals["fused"] * 20, "text_native": None,
                          "fused": result.signals["fused"] * 20, "rerank": None}
    lines = plain_lines(results_table(photo))
    assert lines[0].split("\t") == ["#", "id", "title", "brand", "price", "dense"]
    assert "ordered by dense" in lines[-1]


def test_the_caption_says_when_intent_boosts_moved_products():
    boosted = response()
    boosted.results[1].signals["intent_boost"] = 12.0
    assert "ordered by fused with intent boosts" in plain_lines(results_table(boosted))[-1]
    assert "with intent boosts" not in plain_lines(results_table(response()))[-1]


def test_plain_lines_keep_every_column_and_one_comment_line_per_caption_line():
    lines = plain_lines(results_table(response(notes=["showing results for 'blue shoes'"]), width=None))
    assert lines[0].split("\t") == ["#", "id", "title", "brand", "price", "bm25", "dense", "text_native", "fused"]
    assert lines[1].split("\t")[:3] == ["1", "40024", TITLES[0]]
    assert lines[-2].startswith("# 12 ms · version 7 · ordered by fused")
    assert lines[-1] == "# showing results for 'blue shoes'"


def test_catalog_text_with_square_brackets_is_shown_as_it_is():
    """A title, brand or id holding Rich markup ("[/]" ends nothing, "[red]" would vanish) is data: the table
    shows it literally, on a terminal and as plain lines, and never ends the search in a MarkupError."""
    odd = response(notes=["did you mean [/]shoes[bold]?"])
    odd.results[0].title, odd.results[0].brand, odd.results[1].id = "Tee [/] Black [red]x", "[/b]", "[bold]9"
    for width in (60, 140, None):
        text = render(results_table(odd, width=width), width or 200)
        assert "Tee [/] Black [red]x" in text or "Tee [/]" in text  # cut to fit on a narrow terminal
        assert "[bold]9" in text
    lines = plain_lines(results_table(odd, wide=True))
    assert lines[1].split("\t")[1:4] == ["40024", "Tee [/] Black [red]x", "[/b]"]
    assert lines[2].split("\t")[1] == "[bold]9"
    assert lines[-1] == "# did you mean [/]shoes[bold]?"
