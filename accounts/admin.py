from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .forms import AmountForm
from .models import Account, AccountError, Invitation, LedgerEntry, Membership
from .templatetags.money import money


class MembershipInline(admin.TabularInline):
    """Read-only here: holders are added and removed on the membership pages, which apply
    the same rules as invitations and leaving."""

    model = Membership
    extra = 0
    fields = ["user", "joined_at", "left_at"]
    readonly_fields = fields
    can_delete = False
    ordering = ["joined_at", "pk"]

    def has_add_permission(self, request, obj):
        return False


class CorrectionForm(AmountForm):
    kind = forms.ChoiceField(
        choices=[("deposit", "Deposit (credit)"), ("withdraw", "Withdraw (debit)")]
    )


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "balance", "created_at", "closed_at"]
    search_fields = ["name", "memberships__user__email"]
    fields = [
        "name",
        "balance",
        "correct_balance",
        "version",
        "last_seq",
        "created_at",
        "closed_at",
    ]
    readonly_fields = [
        "balance",
        "correct_balance",
        "version",
        "last_seq",
        "created_at",
        "closed_at",
    ]
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
            try:
                getattr(account, kind)(amount, by=request.user, by_staff=True, idempotency_key=key)
            except AccountError as error:
                form.add_error("amount", str(error))
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
        cleaned = super().clean()
        account, user = cleaned.get("account"), cleaned.get("user")
        if account and user:
            # The admin validates and saves in one transaction, so this lock is held until
            # the membership is saved: the same locked check-and-add as accepting an invitation
            # (closed account, already a holder, holder limit).
            try:
                account.locked().check_can_add_holder(user)
            except AccountError as error:
                raise ValidationError(str(error)) from error
        return cleaned


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Staff add holders here and end memberships with the action; rows are never edited or
    deleted, so the record of who held which account when stays complete."""

    list_display = ["account", "user", "joined_at", "left_at"]
    list_filter = [("left_at", admin.EmptyFieldListFilter)]
    list_select_related = ["account", "user"]
    raw_id_fields = ["account", "user"]
    search_fields = ["account__name", "user__email"]
    actions = ["end_memberships"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = AddHolderForm
        return super().get_form(request, obj, **kwargs)

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

    @admin.action(description="End the selected memberships (the holder leaves the account)")
    def end_memberships(self, request, queryset):
        for membership in queryset.filter(left_at__isnull=True).select_related("account", "user"):
            try:
                membership.account.leave(by=membership.user)
            except AccountError as error:
                self.message_user(request, f"{membership}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{membership}: membership ended.", messages.SUCCESS)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are created and answered by holders and invitees; staff can look and
    revoke. The token itself is never stored, only its hash, which is not shown."""

    list_display = ["email", "account", "invited_by", "state", "created_at", "expires_at"]
    list_filter = ["state"]
    list_select_related = ["account", "invited_by"]
    search_fields = ["email", "account__name", "invited_by__email"]
    fields = ["account", "email", "invited_by", "state", "created_at", "expires_at", "answered_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Read-only: saving a form's copy of the row could undo an accept that committed
        # meanwhile. Revoking goes through the action, which takes the account's lock.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected pending invitations")
    def revoke(self, request, queryset):
        for invitation in queryset.select_related("account"):
            try:
                invitation.account.revoke(invitation, by=request.user, by_staff=True)
            except AccountError as error:
                self.message_user(request, f"{invitation}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{invitation}: revoked.", messages.SUCCESS)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """The ledger is append-only: the admin shows it and nothing more."""

    list_display = [
        "id",
        "account",
        "seq",
        "kind",
        "amount",
        "balance_after",
        "created_by",
        "created_at",
    ]
    list_filter = ["kind"]
    search_fields = ["account__name", "created_by__email"]
    list_select_related = ["account", "created_by"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
