"""What the scheduler runs: named periodic jobs made of small steps (offered by features and extensions)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

Step = Callable[[], None]
"""One small unit of work (for example one repository of one store)."""


@dataclass(frozen=True)
class Job:
    """A periodic job: every ``interval`` seconds the scheduler calls ``steps()`` and runs each step.

    Steps run one at a time; an exception in a step is logged and the job moves on to the next step.
    ``interval`` 0 means once, at start.
    """

    name: str
    interval: float
    steps: Callable[[], Iterable[Step]]
