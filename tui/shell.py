"""The interactive search shell: type queries, refine, page, explain, compare, save.

`ShellSession` holds the state (the request being refined, the last results,
the queries of this session) and turns one input line into things to print,
so it can be driven without a terminal; `run_shell` wraps it in a prompt whose
first line is the status line (`ShellSession.status`).

A setting is stored only once it is known to work: a filter naming an unknown
field, an unknown mode or fusion, or a change the current query cannot run
with is reported and the previous setting stays.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.text import Text

from shoplens.common.errors import ConfigError, QueryError, ShopLensError
from shoplens.engine.browse import check_filters, field_summaries, find_product
from shoplens.engine.fusion import FUSION_METHODS
from shoplens.engine.query import MODES, SearchRequest, SearchResponse, check_typed_text
from shoplens.tui.display import (THUMB_MODES, compare_table, describe_query, explain_view, fields_table, moved,
                                  product_view, results_table, thumbnail_grid)

HISTORY_FILE = Path("~/.shoplens_history")

HELP = """\
Type a query and press Enter. Commands:
  :image PATH [TEXT]      search by a photo, optionally with text
  :filter EXPR            add a filter (price<=3000, brand=Nike, category=Shoes|Sandals, brand!=Puma)
  :filters                list filters             :clear   remove all filters
  :fields                 filterable fields with example values
  :k N                    results per page
  :next / :prev           next or previous page    :page N   go to page N
  :explain N              why result N ranked where it did
  :product ID             one product's details (category, attributes, description, price, image)
  :mode [hybrid|lexical|dense]   :fusion [rrf|wsum]   :rerank [on|off]   (no argument: show it)
  :compare [A] [B]        the query under two settings side by side, moves marked, e.g.
                          :compare rerank=off   :compare lexical dense   :compare wsum
  :thumbs [on|off|grid]   thumbnails: two rows in the table, or a gallery below it
  :wide [on|off]          full titles, categories and every signal
  :history [N]            this session's queries; N runs query N again
  :save FILE              this session's queries and results as JSONL
  :info                   index version and size
  :help                   this text                :quit (or Ctrl-D)  leave
Lines you type are kept in {history} (Up arrow and Ctrl-R recall them)."""


@dataclass
class LoggedSearch:
    """One search of the session, as asked and as answered."""

    request: SearchRequest
    response: SearchResponse


class ShellSession:
    """State of one interactive session over a SearchEngine."""

    def __init__(self, engine, k: int = 10, thumbnails: str | bool = "off", wide: bool = False,
                 history_path: Path | None = None):
        self.engine = engine
        # the fusion the index's plan runs (learned by train-ranker, or the default), named so the status line shows it
        self.request = SearchRequest(k=k, fusion=engine.fusion_plan(engine.snapshot).method)
        self.thumbnails = {True: "on", False: "off"}.get(thumbnails, thumbnails)
        self.wide = wide
        self.history_path = history_path
        self.response: SearchResponse | None = None
        self.has_query = False
        self.log: list[LoggedSearch] = []
        self._command_name = ""
        self.width: int | None = None  # the terminal's width: tables are cut to fit it (None: not cut)
        self._commands: dict[str, Callable[[str], list[Any]]] = {
            "image": self._image, "k": self._k, "filter": self._filter, "filters": self._filters,
            "clear": self._clear, "fields": self._fields, "next": self._page, "prev": self._page,
            "page": self._page, "explain": self._explain, "product": self._product, "mode": self._mode,
            "fusion": self._fusion, "rerank": self._rerank, "compare": self._compare, "thumbs": self._thumbs,
            "wide": self._wide, "history": self._history, "save": self._save, "info": self._info,
            "help": self._help,
        }

    # -- input ---------------------------------------------------------------------

    def handle(self, line: str) -> tuple[list[Any], bool]:
        """Process one input line: (renderables to print, whether to quit)."""
        line = line.strip()
        if not line:
            return [], False
        if any("\ud800" <= char <= "\udfff" for char in line):  # bytes that were not UTF-8, kept as surrogates
            return [Text("error: that line is not UTF-8 text; check the terminal's encoding and type it again",
                         style="bold red")], False
        try:
            if not line.startswith(":"):
                check_typed_text(line)
                return self._search(replace(self.request, text=line, image=None, page=1)), False
            name, _, rest = line[1:].partition(" ")
            if name in ("q", "quit", "exit"):
                return [], True
            command = self._commands.get(name)
            if command is None:
                return [Text(f"unknown command :{name}; type :help", style="yellow")], False
            self._command_name = name
            return command(rest.strip()), False
        except ShopLensError as exc:
            return [Text(f"error: {exc}", style="bold red")], False

    # -- state ---------------------------------------------------------------------

    @property
    def has_ranker(self) -> bool:
        return bool(self.engine.snapshot.manifest.get("ranker"))

    def rerank_state(self, request: SearchRequest | None = None) -> str:
        request = request or self.request
        if request.rerank is False:
            return "off"
        if not self.has_ranker:
            return "n/a (no model in index)"
        return "on" if request.mode == "hybrid" else f"on (unused in {request.mode} mode)"

    def status(self) -> str:
        """One line: index version, mode, fusion, rerank, filters, page size."""
        snapshot = self.engine.snapshot
        version = f"v{snapshot.version}"
        committed = self.engine.index.current_version()
        if committed != snapshot.version:
            version += f" (v{committed} committed: the next query uses it)"
        fusion = self.request.fusion if self.request.mode == "hybrid" else f"{self.request.fusion} (unused)"
        filters = ", ".join(self.request.filters) or "none"
        return (f"[{version} · {snapshot.products.num_live:,} products] mode {self.request.mode} · fusion {fusion} · "
                f"rerank {self.rerank_state()} · filters {filters} · k {self.request.k}")

    def _search(self, request: SearchRequest) -> list[Any]:
        """Run a request; only once it answered does it become the session's request."""
        response = self.engine.search(replace(request, explain=True))
        self.request, self.response, self.has_query = request, response, True
        self.log.append(LoggedSearch(request, response))
        if not response.results:
            hint = " (try :clear to remove filters)" if request.filters else ""
            return [Text(f"no results for {describe_query(response.query)}{hint}")]
        shown: list[Any] = [results_table(response, thumbnails=self.thumbnails, wide=self.wide, width=self.width)]
        if self.thumbnails == "grid":
            shown.append(thumbnail_grid(response))
        return shown

    def _change(self, setting: str, old: Any, new: Any, request: SearchRequest, note: str = "") -> list[Any]:
        """Apply a changed setting: say what changed (and why it may not matter), rerun the query.

        When the query cannot run with it, the setting is not kept.
        """
        if old == new:
            return [Text(f"{setting} is already {new}" + (f" ({note})" if note else ""))]
        message = Text(f"{setting}: {old} -> {new}" + (f" ({note})" if note else ""), style="green")
        if not self.has_query:
            self.request = request
            return [message, Text("type a query to search with it", style="dim")]
        try:
            return [message] + self._search(request)
        except ShopLensError as exc:
            return [Text(f"error: {exc}", style="bold red"), Text(f"{setting} stays {old}", style="yellow")]

    # -- settings --------------------------------------------------------------------

    def _k(self, rest: str) -> list[Any]:
        if not rest:
            return [Text(f"k {self.request.k} (results per page)")]
        k = _positive(rest, "k")
        if k > 1000:
            raise QueryError(":k takes a number from 1 to 1000")
        return self._change("k", self.request.k, k, replace(self.request, k=k, page=1))

    def _filter(self, rest: str) -> list[Any]:
        if not rest:
            return self._filters("")
        (parsed,) = check_filters(self.engine.snapshot, [rest])  # a bad filter raises here and is never stored
        old = ", ".join(self.request.filters) or "none"
        filters = self.request.filters + [str(parsed)]
        return self._change("filters", old, ", ".join(filters), replace(self.request, filters=filters, page=1))

    def _filters(self, rest: str) -> list[Any]:
        return [Text("filters: " + (", ".join(self.request.filters) or "none"))]

    def _clear(self, rest: str) -> list[Any]:
        old = ", ".join(self.request.filters) or "none"
        return self._change("filters", old, "none", replace(self.request, filters=[], page=1))

    def _mode(self, rest: str) -> list[Any]:
        if not rest:
            return [Text(f"mode {self.request.mode} (one of {', '.join(MODES)})")]
        if rest not in MODES:
            raise QueryError(f"unknown mode {rest!r}; use one of {', '.join(MODES)}")
        notes = {"lexical": "BM25 only: fusion and the reranker do not apply",
                 "dense": "vectors only: fusion and the reranker do not apply",
                 "hybrid": f"BM25 and vectors fused by {self.request.fusion}, rerank "
                           f"{self.rerank_state(replace(self.request, mode='hybrid'))}"}
        return self._change("mode", self.request.mode, rest, replace(self.request, mode=rest, page=1), notes[rest])

    def _fusion(self, rest: str) -> list[Any]:
        if not rest:
            return [Text(f"fusion {self.request.fusion} (one of {', '.join(FUSION_METHODS)})"
                         + (f"; unused in {self.request.mode} mode" if self.request.mode != "hybrid" else ""))]
        if rest not in FUSION_METHODS:
            raise QueryError(f"unknown fusion {rest!r}; use one of {', '.join(FUSION_METHODS)}")
        note = ""
        if self.request.mode != "hybrid":
            note = f"no effect in {self.request.mode} mode: only one retriever runs, so there is nothing to fuse"
        elif self.has_query and not (self.request.text or "").strip():
            note = "no effect on a photo-only query: BM25 needs text, so only the vector list is fused"
        return self._change("fusion", self.request.fusion, rest, replace(self.request, fusion=rest, page=1), note)

    def _rerank(self, rest: str) -> list[Any]:
        if not rest:
            return [Text(f"rerank {self.rerank_state()}")]
        if rest not in ("on", "off"):
            raise QueryError(":rerank takes on or off")
        request = replace(self.request, rerank=None if rest == "on" else False, page=1)
        note = ""
        if not self.has_ranker:
            note = "no effect: this index has no trained reranker; see `shoplens train-ranker`"
        elif self.request.mode != "hybrid":
            note = f"no effect in {self.request.mode} mode: the reranker reorders hybrid candidates; :mode hybrid"
        old = "off" if self.request.rerank is False else "on"
        return self._change("rerank", old, rest, request, note)

    def _thumbs(self, rest: str) -> list[Any]:
        new = rest or ("off" if self.thumbnails != "off" else "on")
        if new not in THUMB_MODES:
            raise QueryError(f":thumbs takes {', '.join(THUMB_MODES)}")
        old, self.thumbnails = self.thumbnails, new
        return self._redraw("thumbnails", old, new)

    def _wide(self, rest: str) -> list[Any]:
        if rest not in ("", "on", "off"):
            raise QueryError(":wide takes on or off")
        new = (rest or ("off" if self.wide else "on")) == "on"
        old, self.wide = self.wide, new
        return self._redraw("wide", "on" if old else "off", "on" if new else "off")

    def _redraw(self, setting: str, old: str, new: str) -> list[Any]:
        shown: list[Any] = [Text(f"{setting}: {old} -> {new}", style="green")]
        if self.response is not None and self.response.results:
            shown.append(results_table(self.response, thumbnails=self.thumbnails, wide=self.wide,
                                        width=self.width))
            if self.thumbnails == "grid":
                shown.append(thumbnail_grid(self.response))
        return shown

    # -- pages and details ---------------------------------------------------------------

    def _image(self, rest: str) -> list[Any]:
        if not rest:
            return [Text("usage: :image PATH [TEXT]", style="yellow")]
        parts = shlex.split(rest)
        path, text = Path(parts[0]).expanduser(), " ".join(parts[1:]) or None
        return self._search(replace(self.request, image=str(path), text=text, page=1))

    def _page(self, rest: str) -> list[Any]:
        if self._command_name == "next":
            page = self.request.page + 1
        elif self._command_name == "prev":
            page = max(1, self.request.page - 1)
        else:
            page = _positive(rest, "page")
        if not self.has_query:
            return [Text("search first, then page through the results")]
        return self._search(replace(self.request, page=page))

    def _explain(self, rest: str) -> list[Any]:
        if self.response is None:
            return [Text("search first, then :explain N")]
        rank = _positive(rest, "explain")
        for result in self.response.results:
            if result.rank == rank:
                return [explain_view(result)]
        return [Text(f"result {rank} is not on this page", style="yellow")]

    def _product(self, rest: str) -> list[Any]:
        if not rest:
            return [Text("usage: :product ID (ids are in the results' id column)", style="yellow")]
        return [product_view(find_product(self.engine.snapshot, rest), picture=True)]

    def _fields(self, rest: str) -> list[Any]:
        snapshot = self.engine.snapshot
        return [fields_table(field_summaries(snapshot), snapshot.products.num_live)]

    def _info(self, rest: str) -> list[Any]:
        snapshot = self.engine.snapshot
        return [Text(f"version {snapshot.version}: {snapshot.products.num_live:,} products, "
                     f"model {snapshot.manifest['model']['name']}, reranker "
                     f"{'yes' if self.has_ranker else 'none'}")]

    def _help(self, rest: str) -> list[Any]:
        return [Text(HELP.format(history=self.history_path or "memory only (this session)"))]

    # -- compare, history, save --------------------------------------------------------------

    def _compare(self, rest: str) -> list[Any]:
        if not self.has_query:
            return [Text("search first, then :compare (e.g. :compare rerank=off)")]
        specs = rest.split()
        if len(specs) > 2:
            raise QueryError(":compare takes one or two settings, e.g. :compare rerank=off or :compare lexical dense")
        base = replace(self.request, explain=False)
        if not specs:
            specs = [self._default_comparison()]
        left_changes = parse_variant(specs[0]) if len(specs) == 2 else {}
        right_changes = parse_variant(specs[-1])
        left, right = replace(base, **left_changes), replace(base, **right_changes)
        left_response, right_response = self.engine.search(left), self.engine.search(right)
        if not left_response.results and not right_response.results:
            return [Text(f"no results to compare for {describe_query(left_response.query)}")]
        labels = [self._label(left, left_response), self._label(right, right_response)]
        changes = moved(left_response, right_response)
        new = sum(1 for v in changes.values() if v is None)
        summary = (f"{len(changes) - new} moved, {new} new of {len(right_response.results)} "
                   f"(page {base.page}, version {right_response.version})")
        return [Text(f"compare {describe_query(left_response.query)}: {labels[0]}  vs  {labels[1]}", style="bold"),
                compare_table(left_response, right_response, labels[0], labels[1], wide=self.wide,
                              width=self.width), Text(summary)]

    def _default_comparison(self) -> str:
        if self.request.mode == "hybrid" and self.has_ranker:
            return "rerank=off" if self.request.rerank is not False else "rerank=on"
        return "lexical" if self.request.mode == "hybrid" else "hybrid"

    def _label(self, request: SearchRequest, response: SearchResponse) -> str:
        label = request.mode
        if request.mode == "hybrid":
            label += f" {request.fusion}"
        return label + (" reranked" if response.reranked else " no rerank")

    def _history(self, rest: str) -> list[Any]:
        where = f"; every line typed is kept in {self.history_path}" if self.history_path else ""
        if not self.log:
            return [Text(f"no searches yet{where}")]
        if rest:
            number = _positive(rest, "history")
            if number > len(self.log):
                raise QueryError(f"there are {len(self.log)} searches in this session; :history lists them")
            return self._search(self.log[number - 1].request)
        lines = [Text(f"{len(self.log)} searches this session (:history N runs one again{where})", style="bold")]
        for number, entry in enumerate(self.log, start=1):
            query = entry.response.query
            lines.append(Text(f"{number:>3}. {describe_query(query)} · {self._label(entry.request, entry.response)} · "
                              f"page {query.get('page')} · {len(entry.response.results)} results · "
                              f"v{entry.response.version}"))
        return lines

    def _save(self, rest: str) -> list[Any]:
        if not rest:
            return [Text("usage: :save FILE (JSONL: one line per search of this session)", style="yellow")]
        if not self.log:
            return [Text("no searches to save yet")]
        path = Path(shlex.split(rest)[0]).expanduser()
        count = save_session(self.log, path)
        return [Text(f"wrote {count} searches to {path}", style="green")]


def save_session(log: list[LoggedSearch], path: Path) -> int:
    """Write each search as one JSON line in the `search --json` shape (without per-result explain)."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            for entry in log:
                data = entry.response.to_json()
                for result in data["results"]:
                    result.pop("explain", None)
                data["query"] = {**data["query"], "rerank": entry.request.rerank is not False}
                handle.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}; give a writable file path") from None
    return len(log)


_VARIANTS = {"rerank": {"rerank": None}, "norerank": {"rerank": False}, "rerank=on": {"rerank": None},
             "rerank=off": {"rerank": False}}


def parse_variant(spec: str) -> dict[str, Any]:
    """Settings for :compare: rerank=on|off (or rerank, norerank), a mode, a fusion, joined by commas."""
    changes: dict[str, Any] = {}
    for part in filter(None, spec.lower().split(",")):
        key, _, value = part.partition("=")
        if part in _VARIANTS:
            changes.update(_VARIANTS[part])
        elif part in MODES or (key == "mode" and value in MODES):
            changes["mode"] = value or part
        elif part in FUSION_METHODS or (key == "fusion" and value in FUSION_METHODS):
            changes["fusion"] = value or part
        else:
            raise QueryError(f"cannot compare with {part!r}; use rerank=on|off, a mode ({', '.join(MODES)}) "
                             f"or a fusion ({', '.join(FUSION_METHODS)}), e.g. :compare rerank=off")
    return changes


def _positive(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise QueryError(f":{what} takes a positive number") from None
    if value < 1:
        raise QueryError(f":{what} takes a positive number")
    return value


def run_shell(engine, console: Console, k: int = 10, thumbnails: str = "off", wide: bool = False,
              history_path: Path | None = None) -> None:
    """The interactive loop: a status line and a prompt with history, until :quit or Ctrl-D."""
    session = ShellSession(engine, k=k, thumbnails=thumbnails, wide=wide, history_path=history_path)
    read = _line_reader(history_path)
    snapshot = engine.snapshot
    console.print(f"ShopLens shell: {snapshot.products.num_live:,} products, version {snapshot.version}. "
                  "Type a query, or :help.")
    engine.load_encoder()  # once, before the first query
    unreadable = 0
    while True:
        try:
            line = read(session.status())
        except (EOFError, KeyboardInterrupt):
            break
        except Exception as exc:  # noqa: BLE001 - prompt_toolkit's key parsers raise on some escape sequences
            unreadable += 1  # (a pasted "\x1b[31m" reached its mouse handler as a ValueError)
            if unreadable >= 3:
                raise ConfigError("the shell cannot read its input (escape sequences it does not understand); "
                                  "type plain text, or use `shoplens search`") from None
            console.print(Text(f"error: that line could not be read ({type(exc).__name__}); type it again "
                               "without escape sequences"))
            continue
        unreadable = 0
        session.width = console.width
        renderables, quit_now = session.handle(line)
        for renderable in renderables:
            console.print(renderable)
        if quit_now:
            break


def _line_reader(history_path: Path | None):
    """status -> the next input line (EOFError at the end). A terminal gets prompt_toolkit's prompt with
    history; piped input is read as plain lines (prompt_toolkit parses a pipe's bytes as key presses, and
    an escape sequence in them ended the shell with a traceback)."""
    import sys

    if not sys.stdin.isatty():
        def read_plain(status: str) -> str:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line
        return read_plain
    from prompt_toolkit import PromptSession
    from prompt_toolkit.formatted_text import FormattedText
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    prompt = PromptSession(history=FileHistory(str(history_path)) if history_path else InMemoryHistory())

    def read_prompt(status: str) -> str:
        return prompt.prompt(FormattedText([("ansibrightblack", status + "\n"), ("bold", "shoplens> ")]),
                             set_exception_handler=False)  # its handler prints a traceback and waits for Enter
    return read_prompt
