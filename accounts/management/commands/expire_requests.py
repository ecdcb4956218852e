from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.approvals import ApprovalRequest
from accounts.models import Account


class Command(BaseCommand):
    help = (
        "Void the approval requests past their expiry (JOINTBANK_APPROVAL_TTL), releasing "
        "their holds. Each account is locked while its requests are voided, so a request "
        "answered at the same instant ends in one state. Safe to run at any time, and twice "
        "at once."
    )

    def handle(self, *args, **options):
        # The partial index on pending requests' expiry finds them without a scan.
        due = ApprovalRequest.objects.due(timezone.now()).values_list("account_id", flat=True)
        voided, accounts = 0, 0
        for account in Account.objects.filter(pk__in=due.distinct()).order_by("pk"):
            # Re-checked under the account's lock: some may have been answered since.
            count = len(account.void_expired_requests())
            voided += count
            accounts += bool(count)
        self.stdout.write(
            f"Expired {voided} request{'' if voided == 1 else 's'} on {accounts} "
            f"account{'' if accounts == 1 else 's'}."
        )
