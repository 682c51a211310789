"""Everything a running sandbox holds: its options, database, token issuer, fault plan, poll data and log."""

from __future__ import annotations

from dataclasses import dataclass, field

from orkes_provision.sandbox.config import DATABASE, REQUESTS_LOG, SandboxConfig
from orkes_provision.sandbox.db import Database
from orkes_provision.sandbox.faults import FaultPlan
from orkes_provision.sandbox.polldata import PollDataBook
from orkes_provision.sandbox.requestlog import RequestLog
from orkes_provision.sandbox.tokens import TokenIssuer


@dataclass
class SandboxState:
    config: SandboxConfig
    db: Database
    tokens: TokenIssuer
    request_log: RequestLog
    faults: FaultPlan = field(default_factory=FaultPlan)
    poll_data: PollDataBook = field(default_factory=PollDataBook)

    @classmethod
    def open(cls, config: SandboxConfig) -> SandboxState:
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = Database(config.data_dir / DATABASE)
        return cls(config=config, db=db, tokens=TokenIssuer(db), request_log=RequestLog(config.data_dir / REQUESTS_LOG))

    def close(self) -> None:
        self.db.close()
