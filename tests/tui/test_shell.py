"""The interactive shell: settings that are checked before they are kept, the status line, compare,
product details, fields, history and save; driven through `ShellSession` and in a real terminal."""

import io
import json
import sys

import pytest
from rich.console import Console

from shoplens.engine.search import SearchEngine
from shoplens.indexers.writer import WriteOptions, build_index
from shoplens.tui.display import moved
from shoplens.tui.shell import ShellSession
from tests.helpers import REPO, SAMPLE, sample_products, write_catalog


def render(renderables, width=160):
    console = Console(file=io.StringIO(), width=width, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.file.getvalue()


@pytest.fixture(scope="module")
def shop_index(tmp_path_factory, encoder):
    """The first 80 products of the sample, indexed once for this module. Treat as read-only."""
    directory = tmp_path_factory.mktemp("shop")
    catalog = write_catalog(directory / "catalog.jsonl", sample_products(80))
    build_index(catalog, directory / "index", WriteOptions(device="cpu"), encoder=encoder)
    return directory / "index"


@pytest.fixture(scope="module")
def engine(shop_index, encoder):
    return SearchEngine(shop_index, device="cpu", encoder=encoder)


@pytest.fixture
def session(engine):
    return ShellSession(engine, k=5)


def test_query_filters_pages_and_explain(session):
    output, quit_now = session.handle("black shoe")
    assert not quit_now and "shoe" in render(output).lower()
    first_page = [r.id for r in session.response.results]
    text = render(session.handle(":filter price<=1000")[0])
    assert "filters: none -> price<=1000" in text
    assert session.response.results and all(r.price <= 1000 for r in session.response.results)
    assert session.request.filters == ["price<=1000"]
    render(session.handle(":next")[0])
    assert session.response.results[0].rank == 6
    text = render(session.handle(":explain 6")[0])
    assert "retrieval signals" in text and "bm25" in text
    render(session.handle(":clear")[0])
    assert session.request.filters == [] and [r.id for r in session.response.results] == first_page
    render(session.handle(":k 3")[0])
    assert len(session.response.results) == 3


def test_a_rejected_filter_is_never_stored(session):
    """The regression: a bad :filter was reported, then kept, and every later query failed."""
    text = render(session.handle(":filter colour=red")[0])
    assert "unknown filter field 'colour'" in text and "base_colour" in text  # the close name is suggested
    assert session.request.filters == []
    text = render(session.handle("red t-shirt")[0])
    assert "error" not in text and session.response.results
    assert "error" in render(session.handle(":filter price<=cheap")[0])
    assert "error" in render(session.handle(":filter price=abc")[0])  # a number field compared with text
    assert "error" in render(session.handle(":fusion borda")[0])
    assert session.request.filters == [] and session.request.fusion == "rrf"
    text = render(session.handle("red t-shirt")[0])
    assert "error" not in text


def test_a_setting_the_query_cannot_run_with_is_not_kept(session):
    image = SAMPLE.parent / sample_products()[5]["image"]
    session.handle(f":image {image}")
    text = render(session.handle(":mode lexical")[0])
    assert "needs query text" in text and "mode stays hybrid" in text
    assert session.request.mode == "hybrid"


def test_photo_errors_come_before_mode_complaints(session, tmp_path):
    session.handle(":mode lexical")
    assert "not found" in render(session.handle(":image /no/such.jpg")[0])
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    assert "is not an image" in render(session.handle(f":image {not_an_image}")[0])
    assert session.request.image is None  # neither photo was kept


def test_settings_print_their_value_and_what_a_change_does(session):
    assert render(session.handle(":mode")[0]).startswith("mode hybrid")
    assert render(session.handle(":fusion")[0]).startswith("fusion rrf")
    assert "n/a (no model in index)" in render(session.handle(":rerank")[0])
    session.handle("blue t-shirt")
    text = render(session.handle(":mode lexical")[0])
    assert "mode: hybrid -> lexical" in text and "fusion and the reranker do not apply" in text
    text = render(session.handle(":fusion wsum")[0])
    assert "fusion: rrf -> wsum" in text and "no effect in lexical mode" in text
    assert session.request.fusion == "wsum"  # kept: it applies once the mode is hybrid again
    assert "no trained reranker" in render(session.handle(":rerank off")[0])
    assert "already lexical" in render(session.handle(":mode lexical")[0])


def test_status_line_shows_the_state(session, engine):
    session.handle(":filter price<=2000")
    session.handle(":mode dense")
    status = session.status()
    assert f"v{engine.snapshot.version}" in status and "80 products" in status
    assert "mode dense" in status and "fusion rrf (unused)" in status
    assert "rerank n/a" in status and "filters price<=2000" in status and "k 5" in status


def test_compare_shows_two_settings_side_by_side(session):
    assert "search first" in render(session.handle(":compare dense")[0])
    session.handle("white sports shoes")
    hybrid_ids = [r.id for r in session.response.results]
    output = session.handle(":compare dense")[0]
    text = render(output)
    assert "hybrid rrf no rerank" in text and "dense no rerank" in text and "move" in text
    assert "moved" in text and "new" in text
    assert [r.id for r in session.response.results] == hybrid_ids  # comparing changes nothing
    assert session.request.mode == "hybrid"
    assert "cannot compare with 'sideways'" in render(session.handle(":compare sideways")[0])


def test_moved_marks_rank_changes():
    from shoplens.engine.query import SearchResponse, SearchResult

    def response(ids):
        return SearchResponse({}, 0.0, {}, [SearchResult(i + 1, pid, pid, "", None, 0.0, {}) for i, pid in enumerate(ids)],
                              1, len(ids))

    assert moved(response(["a", "b", "c"]), response(["b", "a", "d"])) == {"b": 1, "a": -1, "d": None}


def test_product_and_fields(session):
    text = render(session.handle(":product 1528")[0])
    assert "Puma Men Ferrari Black Fleece Jacket" in text and "Apparel > Topwear > Jackets" in text
    assert "3,999" in text and "base_colour" in text and "Black jacket made of blended fabric" in text
    assert "no product with id 'nope'" in render(session.handle(":product nope")[0])
    text = render(session.handle(":fields")[0])
    assert "price" in text and "249 to 7,999" in text  # the price range of the 80 products
    assert "base_colour" in text and "black" in text


def test_history_and_save(session, tmp_path):
    session.handle("red t-shirt")
    session.handle(":filter price<=800")
    text = render(session.handle(":history")[0])
    assert "2 searches" in text and "'red t-shirt' where price<=800" in text
    session.handle(":history 1")
    assert session.request.filters == [] and session.request.text == "red t-shirt"
    path = tmp_path / "session.jsonl"
    assert "wrote 3 searches" in render(session.handle(f":save {path}")[0])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["query"]["filters"] for line in lines] == [[], ["price<=800"], []]
    assert all(isinstance(r["rank"], int) and "explain" not in r for line in lines for r in line["results"])
    assert lines[0]["results"] and lines[0]["query"]["text"] == "red t-shirt" and "version" in lines[0]
    assert "cannot write" in render(session.handle(f":save {tmp_path}/no/such/dir/x.jsonl")[0])


def test_thumbnails_are_off_by_default_and_compact(session):
    assert "▀" not in render(session.handle("socks or shoes")[0])
    text = render(session.handle(":thumbs")[0])
    assert "thumbnails: off -> on" in text and "▀" in text
    rows = [line for line in text.splitlines() if "▀" in line]
    assert len(rows) == 2 * len(session.response.results)  # two text rows a product
    assert "#1 " in render(session.handle(":thumbs grid")[0])
    assert "unknown command" in render(session.handle(":frobnicate")[0])
    assert session.handle(":quit")[1] is True


def test_tables_fit_the_terminal_width(session):
    session.width = 80
    text = render(session.handle("men black t-shirt")[0], width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" in text  # long titles are cut, not wrapped
    assert len([line for line in text.splitlines() if line.startswith("│")]) == len(session.response.results)
    text = render(session.handle(":wide")[0], width=200)
    assert "…" not in text and "category" in text


def test_interactive_terminal_session(shop_index, tmp_path):
    """`shoplens shell` in a real pseudo-terminal: the status line, the bad-filter regression, compare,
    product, save."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "shoplens", "shell", "--index", str(shop_index), "--device", "cpu",
                                          "--history", str(tmp_path / "history")],
                          cwd=str(REPO), encoding="utf-8", timeout=120, dimensions=(50, 160),
                          env={"CUDA_VISIBLE_DEVICES": "", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                               "TOKENIZERS_PARALLELISM": "false", "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"})
    prompt = "shoplens>"
    child.expect("mode hybrid · fusion rrf · rerank n/a")  # the status line above the prompt
    child.expect(prompt)
    child.sendline(":filter colour=black")
    child.expect("unknown filter field")
    child.expect("filters none")  # not stored
    child.expect(prompt)
    child.sendline("black shoe")
    child.expect("ordered by fused")
    assert "Shoe" in child.before and "error" not in child.before
    child.expect(prompt)
    child.sendline(":filter price<=3000")
    child.expect("filters price<=3000")
    child.expect(prompt)
    child.sendline(":compare lexical")
    child.expect("lexical no rerank")
    child.expect("moved")
    child.expect(prompt)
    child.sendline(":product 3150")
    child.expect("Nike Men's Lunarswift Black Shoe")
    child.expect("Sports Shoes")
    child.expect(prompt)
    child.sendline(f":save {tmp_path / 'session.jsonl'}")
    child.expect("wrote 2 searches")
    child.expect(prompt)
    child.sendline(":quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = [json.loads(line) for line in (tmp_path / "session.jsonl").read_text().splitlines()]
    assert saved[1]["query"]["filters"] == ["price<=3000"]
    assert "black shoe" in (tmp_path / "history").read_text()


def test_an_escape_sequence_in_the_input_is_one_error_line(shop_index, tmp_path):
    """Piped into the shell, an ANSI colour code ("\\x1b[31m") reached prompt_toolkit's mouse handler, whose
    ValueError ended the shell with a traceback (or hung it at "Press ENTER to continue..."); piped input is
    now read as plain lines, and the line is refused with one error line while the shell goes on."""
    import subprocess

    process = subprocess.run([sys.executable, "-m", "shoplens", "shell", "--index", str(shop_index), "--device", "cpu"],
                             input="\x1b[31m\n:k 3\n:quit\n", capture_output=True, text=True, cwd=str(REPO),
                             timeout=300,
                             env={"CUDA_VISIBLE_DEVICES": "", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                                  "TOKENIZERS_PARALLELISM": "false", "TERM": "dumb"})
    assert "Traceback" not in process.stdout + process.stderr, process.stderr[-2000:]
    assert process.returncode == 0, process.stderr[-500:]
    assert "control character" in process.stdout and "k: 10 -> 3" in process.stdout, process.stdout[-1000:]


def test_a_line_that_is_not_utf8_is_one_error_line(shop_index, tmp_path):
    """Piped Latin-1 bytes ("caf\\xe9 shirt") reached the tokenizer as lone surrogates and ended the shell
    with "TypeError: TextInputSequence must be str" and a traceback; such a line (a query, a filter, a
    :save name) is now refused with one error line while the shell goes on."""
    import subprocess

    process = subprocess.run([sys.executable, "-m", "shoplens", "shell", "--index", str(shop_index), "--device", "cpu"],
                             input=b"caf\xe9 shirt\n:save s\xff.json\n:k 3\n:quit\n", capture_output=True,
                             cwd=str(tmp_path), timeout=300,
                             env={"CUDA_VISIBLE_DEVICES": "", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                                  "TOKENIZERS_PARALLELISM": "false", "TERM": "dumb"})
    output = (process.stdout + process.stderr).decode("utf-8", "replace")
    assert "Traceback" not in output, output[-2000:]
    assert process.returncode == 0, output[-500:]
    assert output.count("that line is not UTF-8 text") == 2 and "k: 10 -> 3" in output, output[-1000:]
    assert list(tmp_path.glob("s*.json")) == []
