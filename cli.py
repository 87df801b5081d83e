"""`shoplens`: index a catalog, search it, and inspect the index, from the terminal.

This module and `commands/` only parse arguments and print; the work happens in `engine`,
`indexers`, `rerank` and `benchmarks`. Errors a user can fix are printed as one line on stderr
with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import errno
import os
import sys

import typer

from shoplens import __version__
from shoplens.common.errors import one_line
# Imported for their side effect: each module registers its commands, in this order in --help.
from shoplens.commands import build, search, maintenance, ranking, serve, bench  # noqa: F401,I001
from shoplens.commands.base import app, bench_app

app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shoplens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Multimodal product search: index a catalog, search it by text or image, benchmark it."""


# Click's error base class; typer >= 0.29 vendors Click, so it is found through typer's own exception.
CLICK_ERROR = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


def usage_error_line(exc: Exception) -> str:
    """A usage error (unknown option, missing argument, value out of range) as one line with a pointer to --help."""
    message = one_line(" ".join(exc.format_message().split()).rstrip("."))
    context = getattr(exc, "ctx", None)
    command = context.command_path if context is not None else "shoplens"
    return f"error: {message}; see `{command} --help`"


def not_utf8_argument(arguments: list[str]) -> str | None:
    """The first argument that is not UTF-8 text (Python keeps its bytes as lone surrogates), as an error line.

    Such a value would reach the tokenizer, a rejects file or a manifest as text no file can hold; it is
    refused here, where arguments enter, rather than at each of those places."""
    for position, argument in enumerate(arguments, start=1):
        if any("\ud800" <= char <= "\udfff" for char in argument):
            return (f"error: argument {position} ({one_line(argument)}) is not UTF-8 text; type it again in UTF-8 "
                    "(check the terminal's encoding) or rename the file")
    return None


def path_values(arguments: list[str]):
    """(position in `arguments`, label, value, option prefix) of every value given for a path parameter of the
    command the arguments name: an option's value (`--index DIR`, or `--index=DIR` with prefix "--index="),
    or a positional argument (label `the CATALOG argument`). A look ahead of Click's parsing for the checks
    `main` makes where arguments enter; it never raises (Click reports what it cannot parse)."""
    try:
        command, rest = typer.main.get_command(app), list(enumerate(arguments))
        while rest and rest[0][1] in getattr(command, "commands", {}):
            command = command.commands[rest.pop(0)[1]]
        options = {name: p for p in command.params if p.param_type_name == "option" for name in p.opts}
        positional = [p for p in command.params if p.param_type_name == "argument"]
        index, found = 0, []
        while rest:
            at, token = rest.pop(0)
            name, equals, value = token.partition("=")
            if token.startswith("-") and name in options:
                param = options[name]
                if getattr(param, "is_flag", False) or getattr(param, "count", False):
                    continue
                if not equals and rest:
                    at, value = rest.pop(0)
                elif not equals:
                    continue
                if _takes_a_path(param):
                    found.append((at, name, value, name + "=" if equals else ""))
            elif not token.startswith("-") and index < len(positional):
                param = positional[index]
                index += 1 if param.nargs == 1 else 0
                if _takes_a_path(param):
                    found.append((at, f"the {param.name.upper()} argument", token, ""))
    except Exception:  # noqa: BLE001 - a look ahead of Click's parsing: never the reason a command fails
        return []
    return found


def empty_path_argument(arguments: list[str]) -> str | None:
    """An empty value given for a path (`--index ""`, a catalog `""`, often an unset shell variable), as an error
    line. pathlib reads "" as ".", the current folder: `index --index ""` built an index into it, `watch ""`
    moved its files, and other commands blamed "." for what the user never typed."""
    if "" not in arguments and not any(a.startswith("--") and a.endswith("=") for a in arguments):
        return None  # the common case costs nothing
    for _, label, value, _ in path_values(arguments):
        if value == "":
            return f"error: {label} is empty; give a path (is a shell variable unset?)"
    return None


def expand_home(arguments: list[str]) -> list[str]:
    """Path values that start with `~` (quoted, so the shell left them: `--index "~/idx"`, a catalog
    `'~/x.jsonl'`, SHOPLENS_INDEX="~/idx") with the home folder put in, as the shell would have: they were
    read as a folder named "~" in the current one ("no index at ~/idx", and `index` built one there)."""
    index = os.environ.get("SHOPLENS_INDEX")
    if index and index.startswith("~"):
        os.environ["SHOPLENS_INDEX"] = os.path.expanduser(index)
    if not any(a.startswith("~") or "=~" in a for a in arguments):
        return arguments  # the common case costs nothing
    expanded = list(arguments)
    for at, _, value, prefix in path_values(arguments):
        if value.startswith("~"):
            expanded[at] = prefix + os.path.expanduser(value)
    return expanded


def _takes_a_path(param) -> bool:
    import typing
    from pathlib import Path

    annotation = param.type_descriptor.annotation
    return annotation is Path or Path in typing.get_args(annotation)


def path_too_long(exc: OSError) -> str | None:
    """A path the file system cannot even look up (a name over 255 bytes, a path over 4,096), as an error line.

    Any path a user gives (an index, a catalog, a photo, a --save file) reaches `os.stat` somewhere, and
    pathlib's exists() and is_file() raise ENAMETOOLONG rather than answer False; this is where every
    command's call ends, so one guard here covers them all."""
    if exc.errno != errno.ENAMETOOLONG:
        return None
    name = one_line(str(exc.filename or ""))
    shown = name if len(name) <= 80 else f"{name[:40]}...{name[-20:]} ({len(name):,} characters)"
    return f"error: the path {shown} is too long for the file system; give a shorter one"


def main() -> None:
    """Console-script entry point: usage errors end as one line on stderr and exit 2, like every other error."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    problem = not_utf8_argument(sys.argv[1:]) or empty_path_argument(sys.argv[1:])
    if problem:
        typer.echo(problem, err=True)
        sys.exit(2)
    sys.argv[1:] = expand_home(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except CLICK_ERROR as exc:
        typer.echo(usage_error_line(exc), err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except OSError as exc:
        problem = path_too_long(exc)
        if problem is None:
            raise
        typer.echo(problem, err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
