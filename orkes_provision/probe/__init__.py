"""``provision probe``: what the current server really does, for each behaviour the tool relies on.

Orkes documents some behaviours and not others (docs/reliability.md lists them, UNCONFIRMED where no
source speaks); the sandbox takes the stricter choice for those. The probe asks the server itself,
with the provisioning credentials, creating only objects named ``orkes-provision-probe-*`` and
removing them all at the end, after a failure or Ctrl-C too; a run first removes what an earlier,
killed run left (``cleanup``). What it observes that the tool acts on is remembered per server
(``orkes.serverfacts``).

May import ``orkes`` and ``sandbox`` (its test client, for the wire scenarios of ``wire/``).
"""

from orkes_provision.probe.checks import Observation, ProbeReport, run_probe
from orkes_provision.probe.cleanup import PREFIX, remove_probe_objects

__all__ = ["PREFIX", "Observation", "ProbeReport", "remove_probe_objects", "run_probe"]
