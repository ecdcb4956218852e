"""jointbank's settings without the per-request connection health check (`SELECT 1`): a
variant that `make bench-levers` measures against the real settings. Bench-only."""

from __future__ import annotations

from jointbank.settings import *  # noqa: F403
from jointbank.settings import DATABASES

DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
