import io
import sys

import pytest
from rich.console import Console

from shoplens.engine.search import SearchEngine
from shoplens.tui.shell import ShellSession
from tests.helpers import REPO, SAMPLE, sample_products


def render(renderables):
    console = Console(file=io.StringIO(), width=160, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.file.getvalue()


@pytest.fixture(scope="module")
def session(sample_index, encoder):
    return ShellSession(SearchEngine(sample_index, device="cpu", encoder=encoder), k=5, thumbnails=False)


def test_query_filters_pages_and_explain(session):
    output, quit_now = session.handle("leather wallet")
    assert not quit_now and "wallet" in render(output).lower()
    first_page = [r.id for r in session.response.results]
    render(session.handle(":filter price<=1000")[0])
    assert all(r.price <= 1000 for r in session.response.results)
    assert session.request.filters == ["price<=1000"]
    render(session.handle(":next")[0])
    assert session.response.results[0].rank == 6
    text = render(session.handle(":explain 6")[0])
    assert "retrieval signals" in text and "bm25" in text
    render(session.handle(":clear")[0])
    assert session.request.filters == [] and [r.id for r in session.response.results] == first_page
    render(session.handle(":k 3")[0])
    assert len(session.response.results) == 3


def test_image_search_and_bad_input(session):
    image = SAMPLE.parent / sample_products()[5]["image"]
    session.handle(f":image {image}")
    assert session.response.query["image"]
    assert "error" in render(session.handle(":filter price<=cheap")[0])
    assert "error" in render(session.handle(":image /no/such.jpg")[0])
    assert "unknown command" in render(session.handle(":frobnicate")[0])
    assert session.handle(":quit")[1] is True


def test_thumbnails_render_in_the_table(sample_index, encoder):
    shell = ShellSession(SearchEngine(sample_index, device="cpu", encoder=encoder), k=2, thumbnails=True)
    text = render(shell.handle("socks")[0])
    assert "▀" in text


def test_interactive_terminal_session(sample_index):
    """`shoplens shell` in a real pseudo-terminal: a query, a filter, explain, quit."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "shoplens", "shell", "--index", str(sample_index), "--no-thumbnails",
                                          "--device", "cpu"], cwd=str(REPO), encoding="utf-8", timeout=120,
                          dimensions=(50, 200), env={"CUDA_VISIBLE_DEVICES": "", "HOME": str(sample_index.parent),
                                                     "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false",
                                                     "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"})
    prompt = "shoplens>"
    child.expect(prompt)
    child.sendline("analog watch")
    child.expect("version 1")
    assert "Watch" in child.before
    child.expect(prompt)
    child.sendline(":filter price<=2000")
    child.expect(prompt)
    child.sendline(":explain 1")
    child.expect("retrieval signals")
    child.expect(prompt)
    child.sendline(":quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
