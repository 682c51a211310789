"""Running ``provision`` in this process (fast, for the table-driven tests) with a private environment."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import keyring
from click.testing import CliRunner

from orkes_provision.cli import main
from orkes_provision.credentials.stores.memory import MemoryKeyring


@dataclass
class Result:
    args: list[str]
    code: int
    out: str
    err: str
    crashed: str | None = None

    def json(self) -> Any:
        """stdout as exactly one JSON document."""
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"provision {' '.join(self.args)} -> exit {self.code}\nstdout: {self.out}\nstderr: {self.err}" + \
            (f"\n{self.crashed}" if self.crashed else "")


@contextlib.contextmanager
def _memory_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def run_cli(args: list[str], *, env: Mapping[str, str], cwd: Path, stdin: str = "") -> Result:
    """``provision ARGS`` through the console-script entry point, as a user would run it."""
    package_logger = logging.getLogger("orkes_provision")
    saved = (package_logger.handlers[:], package_logger.level)
    crashed = None
    try:
        with mock.patch.dict(os.environ, dict(env), clear=True), contextlib.chdir(cwd), _memory_keyring(), \
                CliRunner().isolation(input=stdin) as streams:
            try:
                main(list(args))
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:  # a traceback is a bug: the test reports it
                crashed, code = traceback.format_exc(), -1
            out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    finally:
        package_logger.handlers[:] = saved[0]
        package_logger.setLevel(saved[1])
    return Result(list(args), code, out, err, crashed)
