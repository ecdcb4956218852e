"""The real app with one piece of work left out, for `make bench-levers`: the most a lever that
makes that piece cheaper could gain. Which piece is `BENCH_VARIANT`:

- `no-chart`: responses carry no balance chart (what caching the chart could save at most;
  a deposit changes today's point, so its own response can never take the chart from a cache
  keyed by the account's version);
- `no-timeouts-statement`: money transactions skip their `set_config` of lock_timeout and
  statement_timeout (what taking them from the connection's options could save; the bench's
  lock waits stay far below the timeouts, so nothing else changes).

For the benchmark only: what it leaves out is not optional in the app. A separate WSGI module
that gunicorn serves when the bench names it; no URL of the real app reaches it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from jointbank.wsgi import application  # sets Django up before the app's modules are imported

# isort: split
from django.db import transaction

from accounts import models, views

VARIANT = os.environ["BENCH_VARIANT"]

if VARIANT == "no-chart":
    views.balance_chart = lambda account, today=None: None
elif VARIANT == "no-timeouts-statement":

    @contextmanager
    def _atomic_only():
        with transaction.atomic():
            yield

    models.locked_transaction = _atomic_only
else:
    raise SystemExit(f"unknown BENCH_VARIANT {VARIANT!r}")

__all__ = ["application"]
