from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from .chart import balance_chart
from .forms import AccountForm, AmountForm
from .models import Account, InsufficientFunds, MoneyError
from .templatetags.money import money

HISTORY_PAGE_SIZE = 25
PAGE = "accounts/account_detail.html"


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def get_account_for_holder(request: HttpRequest, pk: int) -> Account:
    """The account if the signed-in user holds it; 404 for everyone else, so that outsiders
    cannot even tell which accounts exist."""
    return get_object_or_404(Account.objects.held_by(request.user), pk=pk)


@login_required
@require_GET
def account_list(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/account_list.html", _list_context(request, AccountForm()))


@login_required
@require_POST
def account_create(request: HttpRequest) -> HttpResponse:
    form = AccountForm(request.POST)
    if not form.is_valid():
        template = "accounts/account_list.html"
        if request.htmx:
            template += "#create_form"
        return render(request, template, _list_context(request, form), status=422)
    account = Account.open(form.cleaned_data["name"], by=request.user)
    url = reverse("accounts:detail", args=[account.pk])
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseSeeOther(url)


def _list_context(request, form):
    return {"accounts": Account.objects.held_by(request.user).order_by("name"), "form": form}


@login_required
@require_GET
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    return render(request, PAGE, _page_context(account))


@login_required
@require_GET
def history(request: HttpRequest, pk: int) -> HttpResponse:
    """Older history, 25 rows before the entry id `before` (keyset pagination)."""
    account = get_account_for_holder(request, pk)
    before = _entry_id(request.GET.get("before"))
    if before is None:
        raise BadRequest("`before` must be a ledger entry id.")
    if request.htmx:
        return render(request, PAGE + "#history_page", _history_context(account, before))
    # Without JavaScript "show older" is a plain link: the whole page, history from there.
    return render(request, PAGE, _page_context(account, before=before))


@login_required
@require_GET
def balance(request: HttpRequest, pk: int) -> HttpResponse:
    """The fragment that open account pages poll: 304 until the account's version changes.

    The page sends the ETag it has in If-None-Match and the newest entry it shows in
    `after`; a 200 carries the new balance and the rows it has not seen yet.
    """
    account = get_account_for_holder(request, pk)
    etag = f'"{account.version}"'
    response = get_conditional_response(request, etag=etag)
    if response is None:
        response = _updates(request, account, _entry_id(request.GET.get("after")))
    response["ETag"] = etag
    patch_cache_control(response, no_cache=True, private=True)
    return response


@login_required
@require_POST
def deposit(request: HttpRequest, pk: int) -> HttpResponse:
    return _change_balance(request, pk, "deposit")


@login_required
@require_POST
def withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    return _change_balance(request, pk, "withdraw")


def _change_balance(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    form = AmountForm(request.POST, auto_id=f"{kind}-%s")
    entry = None
    if form.is_valid():
        amount = form.cleaned_data["amount"]
        try:
            entry = getattr(account, kind)(amount, by=request.user)
        except InsufficientFunds as error:
            form.add_error("amount", f"Insufficient funds: the balance is {money(error.balance)}.")
        except MoneyError as error:
            form.add_error("amount", str(error))

    if entry is None:
        if request.htmx:
            context = {"account": account, "kind": kind, "form": form}
            return render(request, PAGE + "#money_form", context, status=422)
        return render(request, PAGE, _page_context(account, **{f"{kind}_form": form}), status=422)

    if request.htmx:
        fresh_form = AmountForm(auto_id=f"{kind}-%s")
        after = _entry_id(request.POST.get("after"))
        after = entry.pk - 1 if after is None else after
        return _updates(request, account, after, form=fresh_form, kind=kind, done=entry)
    verb = "Deposited" if kind == "deposit" else "Withdrew"
    messages.success(
        request, f"{verb} {money(entry.amount)}. The balance is now {money(entry.balance_after)}."
    )
    return HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))


def _updates(request, account, after, form=None, kind=None, done=None) -> HttpResponse:
    """The new balance, the poller's new state and the history rows newer than `after`,
    all swapped out of band; with `form`, the reset money form in front of them."""
    context = {"account": account, "form": form, "kind": kind, "done": done}
    if after is not None:
        new_entries = list(_entries(account).filter(pk__gt=after)[: HISTORY_PAGE_SIZE + 1])
        if len(new_entries) > HISTORY_PAGE_SIZE:
            # More changed than one page shows: reload rather than leave a gap in the history.
            return HttpResponseClientRefresh()
        context["new_entries"] = new_entries
        context["newest_id"] = new_entries[0].pk if new_entries else after
    context["chart"] = balance_chart(account)
    template = PAGE + ("#money_done" if form is not None else "#updates")
    return render(request, template, context)


def _entries(account):
    return account.entries.select_related("created_by").order_by("-pk")


def _history_context(account, before=None):
    entries = _entries(account)
    if before is not None:
        entries = entries.filter(pk__lt=before)
    page = list(entries[: HISTORY_PAGE_SIZE + 1])
    return {
        "account": account,
        "entries": page[:HISTORY_PAGE_SIZE],
        "older_before": page[HISTORY_PAGE_SIZE - 1].pk if len(page) > HISTORY_PAGE_SIZE else None,
    }


def _page_context(account, before=None, **forms):
    context = _history_context(account, before)
    if before is None:  # only the first page is live; an older page stays as it was
        context["newest_id"] = context["entries"][0].pk if context["entries"] else 0
    context.update(
        memberships=account.memberships.select_related("user").order_by("joined_at"),
        deposit_form=forms.get("deposit_form") or AmountForm(auto_id="deposit-%s"),
        withdraw_form=forms.get("withdraw_form") or AmountForm(auto_id="withdraw-%s"),
        before=before,
        chart=balance_chart(account),
    )
    return context


def _entry_id(value) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)
