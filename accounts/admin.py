from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .forms import AmountForm
from .models import Account, LedgerEntry, Membership, MoneyError
from .templatetags.money import money


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class CorrectionForm(AmountForm):
    kind = forms.ChoiceField(
        choices=[("deposit", "Deposit (credit)"), ("withdraw", "Withdraw (debit)")]
    )


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "balance", "created_at"]
    search_fields = ["name", "memberships__user__email"]
    fields = ["name", "balance", "correct_balance", "version", "last_seq", "created_at"]
    readonly_fields = ["balance", "correct_balance", "version", "last_seq", "created_at"]
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
                getattr(account, kind)(amount, by=request.user, idempotency_key=key)
            except MoneyError as error:
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


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["account", "user", "joined_at"]
    autocomplete_fields = ["account", "user"]
    search_fields = ["account__name", "user__email"]


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
