"""``provision probe --record DIR``: the wire scenarios (the probe among them) recorded as scrubbed cassettes.

Anyone with an Orkes account records the conversation this client has with their server, and the
replay tests check the client against it (``cassettes/`` holds the sandbox's). Needs vcrpy (the
``record`` extra). Against a loopback server (a sandbox) every scenario is recorded; against any
other, the portable ones (the others use the sandbox's fault plan).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from orkes_provision.errors import ConfigError, VerificationFailed
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.urls import is_loopback_host


@dataclass
class RecordResult:
    directory: Path
    files: list[Path]
    requests: int
    secrets_checked: int
    failed: dict[str, str]
    leaks: list[str]

    def lines(self) -> list[str]:
        out = [f"wrote {path}" for path in self.files]
        out += [f"scenario {name} failed: {error}" for name, error in self.failed.items()]
        out += [f"LEAK: {leak}" for leak in self.leaks]
        out.append(f"{len(self.files)} cassettes, {self.requests} requests; the files were checked for the "
                   f"{self.secrets_checked} secrets and tokens of this run: {len(self.leaks)} found")
        return out

    def error(self) -> VerificationFailed | None:
        if self.leaks:
            return VerificationFailed(f"{len(self.leaks)} secret(s) or token(s) reached the cassettes in "
                                      f"{self.directory}", "delete that directory; do not share it")
        if self.failed:
            return VerificationFailed(f"{len(self.failed)} scenario(s) failed to record: {', '.join(self.failed)}",
                                      "the lines above say why; the other cassettes are usable")
        return None


def record_cassettes(admin: Credentials, directory: Path) -> RecordResult:
    try:
        from orkes_provision.probe.wire.recorder import record
    except ImportError as err:
        raise ConfigError(f"recording needs vcrpy, which is not installed ({err.name})",
                          "pip install 'orkes-provision[record]'") from None
    host = urllib.parse.urlsplit(admin.server).hostname or ""
    against = "sandbox" if is_loopback_host(host) else "orkes"
    done = record(admin, directory, against=against)
    return RecordResult(directory=directory, files=done.files, requests=len(done.exchanges),
                        secrets_checked=done.secrets_checked, failed=done.failed, leaks=done.leaks)
