"""Fail-points: named places where a test can make the process fail on purpose.

Code that must survive a crash at a precise step calls :func:`failpoint` with the step's
name (``failpoint('after_snapshot_write')``). Nothing happens unless the environment
variable ``MILLSTREAM_FAILPOINTS`` names that step when the process starts (or
:func:`configure` is called), as a comma-separated list of ``name:action``:

* ``kill``: the process kills itself with SIGKILL (no cleanup, no ``finally``), like a
  power cut or ``kill -9``;
* ``raise``: raise :class:`~millstream.exceptions.FailpointError`;
* ``sleep(SECONDS)``: pause there (to widen a window a test wants to hit).

``name:action@N`` acts only at the N-th time the step is reached (counting from 1), e.g.
``after_snapshot_write:kill@3``. The checkpoint steps are listed in
:data:`millstream.checkpoint.FAILPOINTS`. Each hit of an active fail-point is written to
stderr as ``millstream failpoint NAME ACTION`` first, so a test can check that its fault
really happened.

Examples
--------
>>> configure('demo_step:raise@2')
>>> failpoint('demo_step')      # the first time: nothing
>>> failpoint('demo_step')
Traceback (most recent call last):
...
millstream.exceptions.FailpointError: fail-point 'demo_step' reached (hit 2)
>>> configure('')
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from dataclasses import dataclass

from ..exceptions import FailpointError

__all__ = ["FailpointError", "configure", "failpoint"]

ENV = "MILLSTREAM_FAILPOINTS"


@dataclass
class _Rule:
    action: str
    seconds: float = 0.0
    at: int | None = None
    hits: int = 0


_rules: dict[str, _Rule] = {}
_SPEC = re.compile(r"^([\w.\-]+):(kill|raise|sleep\(([\d.]+)\))(?:@(\d+))?$")


def configure(spec: str | None = None) -> None:
    """Set the active fail-points from ``spec`` (default: ``$MILLSTREAM_FAILPOINTS``).

    Raises ``ValueError`` for an entry that is not ``name:kill``, ``name:raise`` or
    ``name:sleep(S)``, optionally followed by ``@N``.
    """
    if spec is None:
        spec = os.environ.get(ENV, "")
    rules: dict[str, _Rule] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        match = _SPEC.match(entry)
        if match is None:
            raise ValueError(
                f"{ENV}: {entry!r} is not NAME:kill, NAME:raise or NAME:sleep(SECONDS), "
                "optionally followed by @N"
            )
        name, action, seconds, at = match.groups()
        kind = "sleep" if action.startswith("sleep") else action
        rules[name] = _Rule(kind, float(seconds or 0), int(at) if at else None)
    _rules.clear()
    _rules.update(rules)


def failpoint(name: str) -> None:
    """Act on the fail-point ``name`` if it is active (a dict lookup when none is)."""
    if not _rules:
        return
    rule = _rules.get(name)
    if rule is None:
        return
    rule.hits += 1
    if rule.at is not None and rule.hits != rule.at:
        return
    sys.stderr.write(f"millstream failpoint {name} {rule.action}\n")
    sys.stderr.flush()
    if rule.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # pragma: no cover - the signal ends the process
    elif rule.action == "raise":
        raise FailpointError(f"fail-point {name!r} reached (hit {rule.hits})")
    else:
        time.sleep(rule.seconds)


configure()
