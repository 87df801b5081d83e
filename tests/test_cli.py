"""The `shoplens` command line: each command, --json, --help, and one-line errors."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from tests.helpers import REPO, SAMPLE, sample_products, write_catalog

runner = CliRunner()
COMMANDS = ["index", "search", "shell", "info", "train-encoder"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_index_search_info_json(tmp_path):
    catalog = write_catalog(tmp_path / "c.jsonl", sample_products(40))
    index = tmp_path / "ix"
    result = invoke("index", catalog, "--index", index, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["version"] == 1 and report["products"] == 40 and report["rejects"] == []

    result = invoke("search", "shirt", "--index", index, "-k", "3", "--json", "--filter", "price<=5000")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["query"]["text"] == "shirt" and len(data["results"]) == 3
    assert set(data["stages_ms"]) == {"encode", "lexical", "vector", "fuse", "rerank"}
    assert all(r["price"] <= 5000 for r in data["results"])

    result = invoke("search", "--image", SAMPLE.parent / sample_products(1)[0]["image"], "--index", index, "-k", "2")
    assert result.exit_code == 0, result.output
    assert "title" in result.stdout and "ms" in result.stdout

    result = invoke("info", "--index", index, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["counts"]["products"] == 40 and info["model"]["name"] == "shoplens-lite0-minilm"
    assert info["vector"]["kind"] == "flat" and info["lexical"]["backend"] == "tantivy"
    assert info["lexical"]["idf"] == "shared"  # new indexes weigh a term by its shared IDF (indexers/lexical/base.py)


def test_index_reports_bad_rows_and_strict_fails(tmp_path):
    catalog = write_catalog(tmp_path / "c.jsonl", sample_products(5))
    with open(catalog, "a") as handle:
        handle.write('{"id": "q", "title": "bad price", "price": -1}\n')
    index = tmp_path / "ix"
    result = invoke("index", catalog, "--index", index, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "1 bad row(s) skipped" in result.stderr and "line 6" in result.stderr
    assert (tmp_path / "ix.rejects.jsonl").exists()
    result = invoke("index", catalog, "--index", index, "--strict")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "index left unchanged" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["search", "shirt", "--index", "{tmp}/nothing"], "no index at"),
    (["info", "--index", "{tmp}/nothing"], "no index at"),
    (["index", "{tmp}/missing.jsonl", "--index", "{tmp}/ix"], "does not exist"),
    (["index", "{tmp}/missing.jsonl", "--index", "{tmp}/ix", "--lexical", "solr"], "unknown lexical backend"),
    (["search", "--index", "{tmp}/nothing"], "empty query"),
    (["search", "x", "--weights", "a,b", "--index", "{tmp}/nothing"], "--weights"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, args, message):
    result = invoke(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output


def test_console_script_exits_non_zero_without_traceback(tmp_path):
    """The installed entry point, in a real process."""
    env = dict(os.environ, SHOPLENS_INDEX=str(tmp_path / "none"))
    process = subprocess.run([sys.executable, "-m", "shoplens", "search", "shoes"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().startswith("error: no index at")
    assert "Traceback" not in process.stderr


@pytest.mark.parametrize("args, message", [
    (["search", "shoes", "--no-such-option"], "No such option: --no-such-option"),
    (["search", "shoes", "-k", "many"], "Invalid value for '-k'"),
    (["serve", "--port", "99999"], "Invalid value for '--port'"),
    (["no-such-command"], "No such command"),
    (["eval"], "Missing argument"),
])
def test_usage_errors_are_one_line_in_a_real_process(tmp_path, args, message):
    """Click's usage errors (unknown option, bad value, missing argument) end as one line too, exit 2."""
    env = dict(os.environ, SHOPLENS_INDEX=str(tmp_path / "none"))
    process = subprocess.run([sys.executable, "-m", "shoplens", *args], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], process.stderr
    assert "--help" in lines[0] and process.stdout == ""


def test_search_with_a_different_model_is_an_error(tmp_path):
    catalog = write_catalog(tmp_path / "c.jsonl", sample_products(5))
    assert invoke("index", catalog, "--index", tmp_path / "ix").exit_code == 0
    result = invoke("search", "shirt", "--index", tmp_path / "ix", "--model", "ViT-B-32")
    assert result.exit_code == 2 and "built with model shoplens-lite0-minilm" in result.stderr


@pytest.mark.parametrize("args", [[b"search", b"red \xff shoes"], [b"delete", b"--ids", b"\xe9t\xe9"],
                                  [b"search", b"shoes", b"--index", b"shop-\xff"]])
def test_arguments_that_are_not_utf8_are_one_line_in_a_real_process(tmp_path, args):
    """Bytes that are not UTF-8 (a Latin-1 terminal) reach Python as lone surrogates; they are refused where
    arguments enter, escaped in the message, instead of a traceback from the tokenizer or the rejects file."""
    env = dict(os.environ, SHOPLENS_INDEX=str(tmp_path / "none"))
    process = subprocess.run([sys.executable, "-m", "shoplens", *args], cwd=REPO, env=env, capture_output=True,
                             timeout=120)
    lines = [line for line in process.stderr.decode("utf-8").splitlines() if line.strip()]
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1 and lines[0].startswith("error: argument ") and "is not UTF-8 text" in lines[0], lines
    assert "\\udc" in lines[0]  # the bad byte shown escaped


def test_a_path_too_long_for_the_file_system_is_one_line_in_a_real_process(small_index, tmp_path):
    """pathlib's exists() and is_file() raise ENAMETOOLONG instead of answering False, so any path argument
    over 255 bytes a name (or 4,096 a path) ended in an OSError traceback, from whichever command met it
    first; `main` now turns that error into one line naming the path, cut short, exit 2."""
    long_name = "x" * 5000
    env = dict(os.environ, SHOPLENS_INDEX=str(small_index))
    for args in (["search", "shirt", "--index", long_name], ["index", long_name + ".jsonl", "--index", "ix"],
                 ["update", long_name + ".jsonl"], ["delete", "--file", long_name], ["eval", long_name],
                 ["search", "--queries", long_name], ["watch", long_name, "--once"], ["events", long_name]):
        process = subprocess.run([sys.executable, "-m", "shoplens", *args], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=120)
        lines = [line for line in process.stderr.splitlines() if line.strip()]
        assert "Traceback" not in process.stderr, (args[0], process.stderr[-2000:])
        assert process.returncode == 2 and len(lines) == 1, (args[0], process.stderr[-1000:])
        assert "is too long for the file system; give a shorter one" in lines[0] and len(lines[0]) < 200, lines[0]
    assert not (tmp_path / "ix").exists()


@pytest.mark.parametrize("args, message", [
    (["index", "{catalog}", "--index", ""], "--index is empty"), (["search", "shirt", "--index="], "--index is empty"),
    (["index", "", "--index", "{tmp}/ix"], "the CATALOG argument is empty"),
    (["search", "--image", "", "--index", "{tmp}/ix"], "--image is empty"),
    (["watch", "", "--once"], "the INBOX argument is empty"), (["eval", ""], "the JUDGMENTS argument is empty"),
    (["bench", "startup", "--save", ""], "--save is empty"), (["serve", "--events-inbox", ""], "--events-inbox is empty"),
])
def test_an_empty_path_argument_is_one_line_in_a_real_process(tmp_path, args, message):
    """pathlib reads "" as ".": `index --index ""` (an unset shell variable) built an index into the current
    folder, `watch ""` moved its files into processed/ and failed/, and other commands blamed "." for what
    the user never typed. An empty path is now refused where arguments enter, naming the option."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.jsonl").write_text('{"id": "1", "title": "Shirt"}\n')
    argv = [a.format(catalog=work / "keep.jsonl", tmp=tmp_path) for a in args]
    process = subprocess.run([sys.executable, "-m", "shoplens", *argv], cwd=work, capture_output=True, text=True,
                             timeout=120, env=dict(os.environ, SHOPLENS_INDEX=str(tmp_path / "none")))
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert process.returncode == 2 and len(lines) == 1 and lines[0] == f"error: {message}; give a path (is a " \
        "shell variable unset?)", process.stderr[-1000:]
    assert sorted(p.name for p in work.iterdir()) == ["keep.jsonl"]  # nothing made or moved in the current folder


def test_a_path_starting_with_a_tilde_is_read_from_the_home_folder_in_a_real_process(tmp_path):
    """A `~` the shell did not expand (quoted, or after `=` in an option) was read as a folder named "~" in the
    current one: `index --index "~/ix"` built the index under ./~/ix, and `search` said "no index at ~/ix".
    Every path argument, option and SHOPLENS_INDEX now has its `~` expanded where arguments enter."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    write_catalog(home / "c.jsonl", sample_products(3))
    env = dict(os.environ, HOME=str(home))
    env.pop("SHOPLENS_INDEX", None)
    for args in (["index", "~/c.jsonl", "--index", "~/ix", "--device", "cpu", "--json"],
                 ["search", "shirt", "--index=~/ix", "--device", "cpu", "--json"], ["info", "--json"]):
        env["SHOPLENS_INDEX"] = "~/ix" if args[0] == "info" else ""
        process = subprocess.run([sys.executable, "-m", "shoplens", *args], cwd=work, env=env, capture_output=True,
                                 text=True, timeout=300)
        assert process.returncode == 0, (args, process.stderr[-1000:])
        json.loads(process.stdout)
    assert (home / "ix" / "CURRENT").is_file() and list(work.iterdir()) == []


READ_ONLY_MOUNT = 'mount --bind -o ro "$0" "$0" && exec "$@"'  # in a private mount namespace: gone with the process


def test_search_on_a_read_only_file_system_is_one_line_in_a_real_process(small_index):
    """A real read-only file system: the index bind-mounted read-only onto itself in a mount namespace of
    the command's own (`unshare`: as root, or in a user namespace where those are allowed), then `shoplens
    search` there. tantivy writes a lock file to read, so the answer is a line that says to copy the index."""
    probe = subprocess.run(["unshare", "-r", "-m", "sh", "-c", READ_ONLY_MOUNT + ' || exit 3', str(small_index),
                            "sh", "-c", '! touch "$0/probe" 2>/dev/null', str(small_index)], capture_output=True)
    if probe.returncode:
        pytest.skip(f"no read-only mount in a private namespace here: {probe.stderr.decode(errors='replace')[:200]}")
    process = subprocess.run(["unshare", "-r", "-m", "sh", "-c", READ_ONLY_MOUNT, str(small_index), sys.executable,
                              "-m", "shoplens", "search", "shirt", "--index", str(small_index), "--device", "cpu"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert process.returncode == 2 and process.stdout == "", process.stderr
    assert len(lines) == 1 and "read-only file system" in lines[0], process.stderr
    assert "copy the index to a writable folder" in lines[0] and "Traceback" not in process.stderr
