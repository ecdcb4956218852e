"""When a change queues the notification job: once per account per transaction, after
COMMIT, and never counting on a queueing that a rolled-back savepoint dropped."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from django.db import transaction
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.approvals import ApprovalRequest
from notifications.tasks import notify_holders
from tests.base import JointAccountTestCase


class QueueingTests(JointAccountTestCase):
    def test_a_rules_change_that_both_tightens_and_asks_queues_one_job(self):
        self.account.set_rules(None, Decimal("50.00"), by=self.alice)
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            # The threshold tightens at once (a rule change), the daily limit waits for bob
            # (a request): two signals in one transaction.
            request = self.account.set_rules(Decimal("100.00"), None, by=self.alice)
        self.assertIsInstance(request, ApprovalRequest)
        self.assertEqual(self.account.rule_changes.count(), 2)
        self.assertEqual(len(callbacks), 1)
        jobs = ProcrastinateJob.objects.filter(task_name=notify_holders.name)
        self.assertEqual(
            list(jobs.values_list("args", flat=True)), [{"account_id": self.account.pk}]
        )

    def test_expiring_many_requests_queues_one_job(self):
        self.account.set_rules(Decimal("10.00"), None, by=self.alice)
        for _ in range(3):
            self.account.withdraw(Decimal("20.00"), by=self.alice)
        ApprovalRequest.objects.update(expires_at=self.account.created_at)
        with self.captureOnCommitCallbacks() as callbacks:
            self.assertEqual(len(self.account.void_expired_requests()), 3)
        self.assertEqual(len(callbacks), 1)

    def test_a_queueing_dropped_with_a_rolled_back_savepoint_is_registered_again(self):
        with self.captureOnCommitCallbacks() as callbacks, transaction.atomic():
            with contextlib.suppress(RuntimeError), transaction.atomic():
                self.account.deposit(Decimal("1.00"), by=self.alice)
                raise RuntimeError("rolled back, and its queueing with it")
            self.account.deposit(Decimal("2.00"), by=self.alice)
        self.assertEqual(len(callbacks), 1)
        self.assertEqual(self.balance(), Decimal("1002.00"))
