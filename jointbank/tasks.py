"""The queue's own upkeep, run by `python manage.py worker` (procrastinate)."""

from procrastinate import builtin_tasks
from procrastinate.contrib.django import app

DAY = 24  # hours


@app.periodic(cron="30 3 * * *", periodic_id="daily")
@app.task(queue="upkeep", pass_context=True)
async def prune_finished_jobs(context, timestamp: int) -> None:
    """Forget jobs that ended long ago: the ones that succeeded, were cancelled or aborted
    after a week, failed ones after a month (they are what someone investigates)."""
    await builtin_tasks.remove_old_jobs(
        context, max_hours=7 * DAY, remove_cancelled=True, remove_aborted=True
    )
    await builtin_tasks.remove_old_jobs(context, max_hours=30 * DAY, remove_failed=True)
