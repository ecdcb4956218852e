from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from procrastinate.contrib.django.admin import ProcrastinateJobAdmin
from procrastinate.contrib.django.models import ProcrastinateJob

from .approvals import ApprovalRequest, RuleChange
from .errors import AccountBusy, AccountError
from .formatting import money
from .forms import AmountForm
from .models import Account, Invitation, LedgerEntry, Membership


def busy_response(request: HttpRequest, model_admin: admin.ModelAdmin, error: AccountBusy):
    """409 with Retry-After: an account's lock was not granted in time and the whole request,
    rolled back, wrote nothing. Sending it again (the browser's back button, then the same
    form) is safe."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Account busy",
        "message": str(error),
    }
    response = TemplateResponse(request, "admin/accounts/busy.html", context, status=409)
    response["Retry-After"] = "1"
    return response


def apply_to_each(request, model_admin, queryset, change, done: str) -> None:
    """An admin action: `change` each selected row, which locks its account. A refusal is
    reported for its row and the others go ahead; a busy account undoes them all
    (AccountBusy goes up to AnswersBusy, which answers 409), so the action can simply be run
    again."""
    outcomes = []
    with transaction.atomic():
        # Account order: the locks are held until the end, and one order cannot deadlock.
        for row in queryset.order_by("account_id", "pk"):
            try:
                change(row)
            except AccountBusy:
                raise
            except AccountError as error:
                outcomes.append((f"{row}: {error}", messages.ERROR))
            else:
                outcomes.append((f"{row}: {done}", messages.SUCCESS))
    # Only once committed: a rolled-back action must not leave "done" messages behind.
    for message, level in outcomes:
        model_admin.message_user(request, message, level)


class AnswersBusy(admin.ModelAdmin):
    """The add/change pages and the actions (run from the list page) of a model whose saves
    lock an account: a lock not granted in time answers 409, with nothing written."""

    def changeform_view(self, request, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except AccountBusy as error:  # raised inside the admin's transaction: rolled back
            return busy_response(request, self, error)

    def changelist_view(self, request, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changelist_view(request, *args, **kwargs)
        except AccountBusy as error:  # actions run in one transaction: rolled back
            return busy_response(request, self, error)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff may look, never add, edit or delete: the change view shows the row read-only,
    and the add and delete views, and any POST to the change view, answer 403. Actions that
    change rows ask for their own permission and take the account's lock."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    """Read-only here: holders are added and removed on the membership pages, which apply
    the same rules as invitations and leaving."""

    model = Membership
    extra = 0
    readonly_fields = fields = ("user", "joined_at", "left_at")
    can_delete = False
    ordering = ["joined_at", "pk"]

    def has_add_permission(self, request, obj=None):
        return False


class CorrectionForm(AmountForm):
    kind = forms.ChoiceField(
        choices=[("deposit", "Deposit (credit)"), ("withdraw", "Withdraw (debit)")]
    )


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "balance", "created_at", "closed_at"]
    search_fields = ["name", "memberships__user__email"]
    # The rules are the holders' to set (and to approve loosening): read-only here.
    readonly_fields = [
        "balance",
        "held",
        "correct_balance",
        "approval_threshold",
        "daily_limit",
        "version",
        "last_seq",
        "created_at",
        "closed_at",
    ]
    fields = ["name", *readonly_fields]
    inlines = [MembershipInline]

    @admin.display(description="Correction")
    def correct_balance(self, account):
        if account.pk is None:
            return "Available once the account is saved."
        url = reverse("admin:accounts_account_correct", args=[account.pk])
        return format_html('<a href="{}">Deposit or withdraw a correction…</a>', url)

    def save_model(self, request, obj, form, change):
        # The balance only ever changes through the locked deposit/withdraw methods; saving
        # every field from the form's copy could write back a balance read seconds ago.
        if change:
            obj.save(update_fields=["name"])
        else:
            obj.save()

    def get_urls(self):
        correct = self.admin_site.admin_view(self.correct_view)
        return [
            path("<int:pk>/correct/", correct, name="accounts_account_correct"),
            *super().get_urls(),
        ]

    def correct_view(self, request, pk):
        """An admin correction is an ordinary locked, recorded balance change."""
        account = get_object_or_404(Account, pk=pk)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        form = CorrectionForm(request.POST or None)
        if form.is_valid():
            kind, amount = form.cleaned_data["kind"], form.cleaned_data["amount"]
            key = form.cleaned_data["idempotency_key"]
            change = account.deposit if kind == "deposit" else account.withdraw
            try:
                change(amount, by=request.user, by_staff=True, idempotency_key=key)
            except AccountBusy as error:
                return busy_response(request, self, error)
            except AccountError as error:
                form.add_error(error.field, str(error))
            else:
                self.message_user(
                    request, f"{kind.title()} of {money(amount)} recorded.", messages.SUCCESS
                )
                return redirect("admin:accounts_account_change", account.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": account,
            "title": f"Correct the balance of {account}",
            "form": form,
        }
        status = 422 if form.is_bound else 200
        return TemplateResponse(
            request, "admin/accounts/correct_balance.html", context, status=status
        )


class AddHolderForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["account", "user"]

    def clean(self):
        cleaned = super().clean() or {}
        account, user = cleaned.get("account"), cleaned.get("user")
        if account and user:
            # The admin validates and saves in one transaction, so this lock is held until
            # the membership is saved: the same locked check-and-add as accepting an invitation
            # (closed account, already a holder, holder limit). AccountBusy goes up to
            # AnswersBusy, which answers 409.
            try:
                with account.lock() as locked:
                    locked.check_can_add_holder(user)
            except AccountBusy:
                raise
            except AccountError as error:
                raise ValidationError(str(error)) from error
        return cleaned


def _may_change(request, opts) -> bool:
    """The model's "change" permission. Memberships and invitations are read-only in their
    forms (has_change_permission is False there), but ending or revoking one is a change: staff
    who may only view them must not run these actions, which an action without `permissions`
    would allow."""
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")


@admin.register(Membership)
class MembershipAdmin(AnswersBusy):
    """Staff add holders here and end memberships with the action; rows are never edited or
    deleted, so the record of who held which account when stays complete."""

    list_display = ["account", "user", "joined_at", "left_at"]
    list_filter = [("left_at", admin.EmptyFieldListFilter)]
    list_select_related = ["account", "user"]
    raw_id_fields = ["account", "user"]
    search_fields = ["account__name", "user__email"]
    actions = ["end_memberships"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = AddHolderForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["account", "user", "joined_at", "left_at"] if obj else []

    def get_fields(self, request, obj=None):
        return ["account", "user", "joined_at", "left_at"] if obj else ["account", "user"]

    def has_change_permission(self, request, obj=None):
        # Read-only once created: saving a form's copy of the row could undo a leave that
        # committed meanwhile. Memberships end through the action, which takes the lock.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_end_permission(self, request):
        return _may_change(request, self.opts)

    @admin.action(
        description="End the selected memberships (the holder leaves the account)",
        permissions=["end"],
    )
    def end_memberships(self, request, queryset):
        current = queryset.filter(left_at__isnull=True).select_related("account", "user")
        apply_to_each(
            request,
            self,
            current,
            lambda membership: membership.account.leave(by=membership.user),
            "membership ended.",
        )


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin, AnswersBusy):
    """Invitations are created and answered by holders and invitees; staff can look and
    revoke. The token itself is never stored, only its hash, which is not shown. Read-only:
    saving a form's copy of the row could undo an accept that committed meanwhile; revoking
    goes through the action, which takes the account's lock."""

    list_display = ["email", "account", "invited_by", "state", "created_at", "expires_at"]
    list_filter = ["state"]
    list_select_related = ["account", "invited_by"]
    search_fields = ["email", "account__name", "invited_by__email"]
    readonly_fields = fields = (
        "account",
        "email",
        "invited_by",
        "state",
        "created_at",
        "expires_at",
        "answered_at",
    )
    actions = ["revoke"]

    def has_revoke_permission(self, request):
        return _may_change(request, self.opts)

    @admin.action(description="Revoke the selected pending invitations", permissions=["revoke"])
    def revoke(self, request, queryset):
        apply_to_each(
            request,
            self,
            queryset.select_related("account"),
            lambda invitation: invitation.account.revoke(
                invitation, by=request.user, by_staff=True
            ),
            "revoked.",
        )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    """The ledger is append-only: the admin shows it and nothing more."""

    list_display = [
        "id",
        "account",
        "seq",
        "kind",
        "amount",
        "balance_after",
        "created_by",
        "approved_by",
        "created_at",
        "memo",
    ]
    list_filter = ["kind"]
    search_fields = ["account__name", "created_by__email", "memo"]
    list_select_related = ["account", "created_by", "approved_by"]


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    """Read-only: a request is answered by another holder of its account, never by staff
    (approving is the holders' control over their money)."""

    list_display = ["id", "account", "kind", "amount", "requested_by", "state", "created_at"]
    list_filter = ["state", "kind"]
    list_select_related = ["account", "requested_by"]
    search_fields = ["account__name", "requested_by__email", "decided_by__email"]


@admin.register(RuleChange)
class RuleChangeAdmin(ReadOnlyAdmin):
    """Read-only: the record of each change of an account's rules."""

    list_display = ["id", "account", "__str__", "by", "approved_by", "at"]
    list_select_related = ["account", "by", "approved_by"]
    search_fields = ["account__name", "by__email"]


# The background worker's jobs, read-only (procrastinate's own admin), without the inline
# `style` attributes of its "Args" column and summary (templates/procrastinate/admin/), which
# the Content-Security-Policy refuses.
admin.site.unregister(ProcrastinateJob)


@admin.register(ProcrastinateJob)
class JobAdmin(ProcrastinateJobAdmin):
    @admin.display(description="Args")
    def pretty_args(self, instance: ProcrastinateJob) -> str:
        return format_html("<pre>{}</pre>", json.dumps(instance.args, indent=2)[:2000])
