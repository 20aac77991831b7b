"""A SIGTERM that lands inside a library's socket read (the neo4j driver) can make the library's clean-up fail and
replace the SystemExit(143) with its own error: the command still exits as terminated (143), with one line saying
what happened, not with a traceback. Without a SIGTERM the same error is not hidden."""

from __future__ import annotations

import argparse

import pytest

from graphwiz_trader import cli
from graphwiz_trader.graph import server_process


def _command_failing_with(error: Exception, terminating: bool):
    def run(args: argparse.Namespace) -> int:
        server_process._SIGTERM.terminating = terminating
        raise error
    return run


@pytest.fixture(autouse=True)
def _restore_state():
    before = server_process._SIGTERM.terminating
    yield
    server_process._SIGTERM.terminating = before


def _main_with(monkeypatch, func) -> int:
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=func, no_run_folder=True)
    monkeypatch.setattr(cli, "build_parser", lambda *a, **k: parser)
    return cli.main([])


def test_a_library_error_raised_while_stopping_on_sigterm_exits_as_terminated(monkeypatch, capsys):
    rc = _main_with(monkeypatch, _command_failing_with(BufferError("Existing exports of data"), terminating=True))
    assert rc == 143
    assert "terminated by SIGTERM (while stopping, a library raised BufferError" in capsys.readouterr().err


def test_the_same_error_without_a_sigterm_is_not_hidden(monkeypatch):
    with pytest.raises(BufferError):
        _main_with(monkeypatch, _command_failing_with(BufferError("boom"), terminating=False))
