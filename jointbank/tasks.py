"""The queue's own upkeep, run by `python manage.py worker` (procrastinate)."""

from __future__ import annotations

from procrastinate import builtin_tasks
from procrastinate.contrib.django import app

DAY = 24  # hours
# A running worker records a heartbeat every 10 s; three missed ones mean it is gone.
STALLED_AFTER = 30  # seconds


@app.periodic(cron="* * * * *", periodic_id="every-minute")
@app.task(queue="upkeep", queueing_lock="requeue_stalled_jobs", pass_context=True)
async def requeue_stalled_jobs(context, timestamp: int) -> None:
    """Put the jobs of a worker that died mid-job (SIGKILL, lost machine) back in the queue
    for another worker: every task is written to be safe to run twice."""
    manager = context.app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER):
        await manager.retry_job(job)


@app.periodic(cron="30 3 * * *", periodic_id="daily")
@app.task(queue="upkeep", pass_context=True)
async def prune_finished_jobs(context, timestamp: int) -> None:
    """Forget jobs that ended long ago: the ones that succeeded, were cancelled or aborted
    after a week, failed ones after a month (they are what someone investigates)."""
    await builtin_tasks.remove_old_jobs(
        context, max_hours=7 * DAY, remove_cancelled=True, remove_aborted=True
    )
    await builtin_tasks.remove_old_jobs(context, max_hours=30 * DAY, remove_failed=True)
