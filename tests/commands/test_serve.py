"""`shoplens serve` refuses what it could not serve before announcing anything: a port in use, an address
of another machine, an API key no HTTP header can carry as typed."""

import socket
import sys

import pytest

from shoplens.cli import main
from shoplens.commands.serve import check_address, check_api_key, check_cors_origins
from shoplens.common.errors import ConfigError


@pytest.fixture
def busy_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_port_in_use_is_a_one_line_error(busy_port):
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1 port {busy_port} .*pick another --port"):
        check_address("127.0.0.1", busy_port)


def test_an_address_of_another_machine_is_refused():
    with pytest.raises(ConfigError, match="an address of this machine"):
        check_address("192.0.2.1", 8080)  # TEST-NET-1: never assigned to a machine


def test_a_free_port_passes():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_address("127.0.0.1", port)


@pytest.mark.parametrize("key", ["", "two words", "clé", "tab\there", "\x00"])
def test_an_api_key_a_header_cannot_carry_is_refused(key):
    with pytest.raises(ConfigError, match="printable ASCII"):
        check_api_key(key)


def test_a_usable_api_key_passes():
    check_api_key(None)
    check_api_key("s3cret-Key_~.!")


def test_the_command_says_so_in_one_line_before_serving(tmp_path, busy_port, capsys, monkeypatch):
    index = tmp_path / "index"  # what `serve` looks for before binding: CURRENT and versions/
    (index / "versions").mkdir(parents=True)
    (index / "CURRENT").write_text("000001\n")
    for args in (["--port", str(busy_port)], ["--api-key", "clé"]):
        monkeypatch.setattr(sys, "argv", ["shoplens", "serve", "--index", str(index), *args])
        with pytest.raises(SystemExit) as stopped:
            main()
        captured = capsys.readouterr()
        assert stopped.value.code == 2 and captured.out == ""  # no "serving ..." announced
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), captured.err


def test_an_unreadable_warm_up_file_is_refused_before_serving(tmp_path, capsys, monkeypatch):
    index = tmp_path / "index"
    (index / "versions").mkdir(parents=True)
    (index / "CURRENT").write_text("000001\n")
    bad = tmp_path / "warm.txt"
    bad.write_text('{"text": \n', encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for path, message in ((tmp_path / "missing.txt", "not found"), (bad, "line 1: not valid JSON")):
        monkeypatch.setattr(sys, "argv", ["shoplens", "serve", "--index", str(index), "--port", str(port),
                                          "--warm-up-file", str(path)])
        with pytest.raises(SystemExit) as stopped:
            main()
        captured = capsys.readouterr()
        assert stopped.value.code != 0 and captured.out == ""
        assert len(captured.err.strip().splitlines()) == 1 and message in captured.err


def test_the_warm_up_option_says_what_the_engine_defines():
    """The option's default and ceiling are literals (the engine is not imported to parse options)."""
    import inspect

    from shoplens.commands.serve import serve
    from shoplens.engine.warmup import MAX_WARM_UP_QUERIES, WARM_UP_QUERIES

    option = inspect.signature(serve).parameters["warm_up"].default
    assert (option.default, option.max) == (WARM_UP_QUERIES, MAX_WARM_UP_QUERIES)


@pytest.mark.parametrize("origin, message", [
    ("not a url", "is not an origin; give scheme://host"), ("localhost:3000", "is not an origin"),
    ("ftp://files.example.com", "is not an origin"), ("http://x.example.com:abc", "is not an origin"),
    ("http://localhost:3000/", "give http://localhost:3000$"), ("https://shop.example.com/path", "give https://shop.example.com$"),
    ("http://user:pw@shop.example.com", "give http://shop.example.com$"), ("https://Shop.Example.com", "give https://shop.example.com$"),
    ("https://shop.example.com:443", "give https://shop.example.com$"),
])
def test_a_cors_origin_no_browser_sends_is_refused_with_the_one_it_does(origin, message):
    """--cors took any text and compared it with the Origin header as typed: `http://localhost:3000/` (a
    trailing slash, as an address bar shows it) never matched, and CORS stayed off without a word."""
    with pytest.raises(ConfigError, match=message):
        check_cors_origins([origin])


def test_usable_cors_origins_pass():
    origins = ["*", "http://localhost:3000", "https://shop.example.com", "http://[::1]:8080", "http://127.0.0.1:8080"]
    assert check_cors_origins(origins) == origins
