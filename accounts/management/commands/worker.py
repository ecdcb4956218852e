from __future__ import annotations

import asyncio
import contextlib
import signal

from django.core.management.base import BaseCommand
from procrastinate import PsycopgConnector
from procrastinate.contrib.django import app
from procrastinate.contrib.django.utils import connector_params


class Command(BaseCommand):
    help = (
        "Run the background worker (procrastinate, on the app's PostgreSQL): the jobs the site "
        "queues and the periodic ones (README). SIGTERM or Ctrl-C stops it once the job in "
        "hand is done. Run as many as you like, on as many machines: each job runs once."
    )

    def handle(self, *args, **options):
        asyncio.run(self._work())
        # Stopped and exiting: a late signal (the SIGTERM `make run` sends after Ctrl-C) must
        # not turn a clean exit into "killed by SIGTERM".
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def _work(self):
        # The site queues jobs on Django's own connection, inside its transactions; the worker
        # needs a pool of connections of its own, one of them LISTENing for new jobs.
        with app.replace_connector(PsycopgConnector(kwargs=connector_params())):
            async with app.open_async():
                worker = asyncio.create_task(app.run_worker_async(install_signal_handlers=False))
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, _stop_once, worker)
                with contextlib.suppress(asyncio.CancelledError):
                    await worker


def _stop_once(worker: asyncio.Task) -> None:
    """procrastinate stops when its task is cancelled: it takes no new job and waits for the
    one in hand. A second cancel would cut that job short, and Ctrl-C under `make run` reaches
    the worker twice (from the terminal, then as SIGTERM from the shell), hence only once."""
    if not worker.cancelling():
        worker.cancel()
