"""Real OS processes for concurrency tests: forked children, each with its own connection.

A child gets the barrier first, so it can wait for the others at the moment that matters
(usually the start, so that they really race). Use from a TransactionTestCase: children only
see committed rows.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

from django.db import connections

CONTEXT = multiprocessing.get_context("fork")


@dataclass
class Raised:
    """An exception from a child, reduced to what pickles."""

    name: str
    sqlstate: str | None
    message: str


class Processes:
    def __init__(self, function, calls: list[tuple]):
        self.results_queue = CONTEXT.Queue()
        barrier = CONTEXT.Barrier(len(calls))
        connections.close_all()  # a forked child must never reuse the parent's socket
        self.workers = [
            CONTEXT.Process(target=self._child, args=(index, function, barrier, args))
            for index, args in enumerate(calls)
        ]
        for worker in self.workers:
            worker.start()

    def _child(self, index, function, barrier, args):
        connections.close_all()
        try:
            outcome = function(barrier, *args)
        except Exception as error:  # reported to the test, which decides
            sqlstate = getattr(error.__cause__, "sqlstate", None)
            outcome = Raised(type(error).__name__, sqlstate, str(error))
        finally:
            connections.close_all()
        self.results_queue.put((index, outcome))

    def results(self, timeout: float = 120) -> list:
        """What each call returned (or raised), in call order."""
        outcomes = dict(self.results_queue.get(timeout=timeout) for _ in self.workers)
        for worker in self.workers:
            worker.join(timeout)
        return [outcomes[index] for index in range(len(self.workers))]


def run_in_processes(function, calls: list[tuple]) -> list:
    return Processes(function, calls).results()
