#!/usr/bin/env python
from __future__ import annotations

import os
import shlex
import sys

if __name__ == "__main__":
    if not os.environ.get("DATABASE_URL"):
        # The settings start no database; say in one line how to get one, not in a traceback.
        from jointbank.embedded_db import missing_url

        args = shlex.join(sys.argv[1:]) or "help"
        sys.exit(missing_url(f"python manage.py {args}", f'make manage ARGS="{args}"'))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jointbank.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
