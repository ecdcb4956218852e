"""jointbank's settings with a per-process cache: what the rate-limit test must catch."""

from __future__ import annotations

from jointbank.settings import *  # noqa: F403

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
