"""The interactive search shell: type queries, refine, page, explain.

`ShellSession` holds the state (k, filters, page, last query and results) and
turns one input line into things to print, so it can be driven without a
terminal; `run_shell` wraps it in a prompt with history.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from shoplens.tui.display import explain_view, results_table
from shoplens.common.errors import ShopLensError
from shoplens.engine.filters import parse_filter
from shoplens.engine.query import MODES, SearchRequest, SearchResponse

HELP = """\
Type a query and press Enter. Commands:
  :image PATH [TEXT]    search by a photo, optionally with text
  :k N                  results per page
  :filter EXPR          add a filter (price<=3000, brand=Nike, category=Shoes|Sandals)
  :filters              list filters        :clear   remove all filters
  :next / :prev         next or previous page      :page N   go to page N
  :explain N            why result N ranked where it did
  :mode hybrid|lexical|dense      :fusion rrf|wsum      :rerank on|off
  :thumbs on|off        product thumbnails
  :info                 index version and size
  :help                 this text           :quit (or Ctrl-D)  leave"""


class ShellSession:
    """State of one interactive session over a SearchEngine."""

    def __init__(self, engine, k: int = 10, thumbnails: bool = True):
        self.engine = engine
        self.request = SearchRequest(k=k)
        self.thumbnails = thumbnails
        self.response: SearchResponse | None = None
        self.has_query = False

    def handle(self, line: str) -> tuple[list[Any], bool]:
        """Process one input line: (renderables to print, whether to quit)."""
        line = line.strip()
        if not line:
            return [], False
        try:
            if line.startswith(":"):
                return self._command(line)
            self.request = replace(self.request, text=line, image=None, page=1)
            return self._run(), False
        except ShopLensError as exc:
            return [Text(f"error: {exc}", style="bold red")], False

    def _command(self, line: str) -> tuple[list[Any], bool]:
        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if name in ("q", "quit", "exit"):
            return [], True
        if name == "help":
            return [Text(HELP)], False
        if name == "image":
            if not rest:
                return [Text("usage: :image PATH [TEXT]", style="yellow")], False
            parts = shlex.split(rest)
            path, text = Path(parts[0]).expanduser(), " ".join(parts[1:]) or None
            self.request = replace(self.request, image=str(path), text=text, page=1)
            return self._run(), False
        if name == "k":
            self.request = replace(self.request, k=_positive(rest, "k"), page=1)
            return self._rerun(), False
        if name == "filter":
            parse_filter(rest)
            self.request = replace(self.request, filters=self.request.filters + [rest], page=1)
            return self._rerun(), False
        if name == "filters":
            return [Text("filters: " + (", ".join(self.request.filters) or "none"))], False
        if name == "clear":
            self.request = replace(self.request, filters=[], page=1)
            return self._rerun(), False
        if name in ("next", "prev", "page"):
            page = {"next": self.request.page + 1, "prev": max(1, self.request.page - 1)}.get(name) \
                or _positive(rest, "page")
            self.request = replace(self.request, page=page)
            return self._rerun(), False
        if name == "explain":
            return self._explain(rest), False
        if name == "mode":
            if rest not in MODES:
                return [Text(f"mode is one of {', '.join(MODES)}", style="yellow")], False
            self.request = replace(self.request, mode=rest, page=1)
            return self._rerun(), False
        if name == "fusion":
            self.request = replace(self.request, fusion=rest, page=1)
            return self._rerun(), False
        if name == "rerank":
            self.request = replace(self.request, rerank=None if rest == "on" else False)
            return self._rerun(), False
        if name == "thumbs":
            self.thumbnails = rest != "off"
            return self._rerun(), False
        if name == "info":
            snapshot = self.engine.snapshot
            return [Text(f"version {snapshot.version}: {snapshot.products.num_live:,} products, "
                         f"model {snapshot.manifest['model']['name']}")], False
        return [Text(f"unknown command :{name}; type :help", style="yellow")], False

    def _run(self) -> list[Any]:
        self.has_query = True
        self.response = self.engine.search(replace(self.request, explain=True))
        if not self.response.results:
            return [Text("no results" + (" (try :clear to remove filters)" if self.request.filters else ""))]
        return [results_table(self.response, thumbnails=self.thumbnails)]

    def _rerun(self) -> list[Any]:
        if not self.has_query:
            return [Text("set; type a query to search")]
        return self._run()

    def _explain(self, rest: str) -> list[Any]:
        if self.response is None:
            return [Text("search first, then :explain N")]
        rank = _positive(rest, "explain")
        for result in self.response.results:
            if result.rank == rank:
                return [explain_view(result)]
        return [Text(f"result {rank} is not on this page", style="yellow")]


def _positive(text: str, what: str) -> int:
    from shoplens.common.errors import QueryError

    try:
        value = int(text)
    except ValueError:
        raise QueryError(f":{what} takes a positive number") from None
    if value < 1:
        raise QueryError(f":{what} takes a positive number")
    return value


def run_shell(engine, console: Console, k: int = 10, thumbnails: bool = True, history_path: Path | None = None) -> None:
    """The interactive loop: a prompt with history until :quit or Ctrl-D."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    session = ShellSession(engine, k=k, thumbnails=thumbnails)
    history = FileHistory(str(history_path)) if history_path else InMemoryHistory()
    prompt = PromptSession(history=history)
    snapshot = engine.snapshot
    console.print(f"ShopLens shell: {snapshot.products.num_live:,} products, version {snapshot.version}. "
                  "Type a query, or :help.")
    engine.load_encoder()  # once, before the first query
    while True:
        try:
            line = prompt.prompt("shoplens> ")
        except (EOFError, KeyboardInterrupt):
            break
        renderables, quit_now = session.handle(line)
        for renderable in renderables:
            console.print(renderable)
        if quit_now:
            break
