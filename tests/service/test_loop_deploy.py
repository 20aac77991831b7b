"""The deploy files run `graphwiz serve` with arguments its parser accepts, stop it with SIGTERM with time for the
running cycle, restart on failure, and take secrets from an environment file (never from the unit itself)."""

import argparse
import configparser
import shlex
from pathlib import Path

import yaml

from graphwiz_trader.core.commandline import GraphwizParser
from graphwiz_trader.service import commands

ROOT = Path(__file__).resolve().parents[2]


def serve_parser():
    p = GraphwizParser(prog="graphwiz")
    commands.register(p.add_subparsers(dest="command", parser_class=GraphwizParser))
    return p


def test_the_systemd_unit_restarts_on_failure_and_stops_with_sigterm_after_the_cycle():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "deploy" / "graphwiz.service")
    svc = unit["Service"]
    assert svc["Restart"] == "on-failure" and svc["KillSignal"] == "SIGTERM"
    assert int(svc["TimeoutStopSec"]) > 120                   # > service.shutdown_timeout_s of the shipped config
    assert svc["EnvironmentFile"].startswith("/etc/graphwiz/")
    argv = shlex.split(svc["ExecStart"])
    assert argv[0].endswith("/graphwiz") and argv[1] == "serve"
    args = serve_parser().parse_args(argv[1:])
    assert args.func is commands._serve and args.config.endswith("trading_config.yaml")
    settings = [ln.split("=", 1) for ln in (ROOT / "deploy" / "graphwiz.service").read_text().splitlines()
                if "=" in ln and not ln.lstrip().startswith("#")]
    for key, value in settings:                                # no secret value written into the unit
        assert not any(s in value.upper() for s in ("_KEY=", "_SECRET=", "_TOKEN=", "_PASSWORD=")), key


def test_the_compose_service_runs_serve_with_valid_arguments_on_the_loopback_port():
    svc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["graphwiz"]
    assert svc["command"][:2] == ["graphwiz", "serve"] and svc["stop_signal"] == "SIGTERM"
    args = serve_parser().parse_args(svc["command"][1:])
    assert args.port == 8000 and svc["ports"] == ["127.0.0.1:8000:8000"] and svc["env_file"] == ".env"


def test_every_serve_flag_has_help_that_states_its_default():
    sub = next(a for a in serve_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices["serve"]._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
            assert "default" in action.help or action.const is True or action.dest == "json", action.dest
