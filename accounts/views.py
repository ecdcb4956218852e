from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.db import transaction
from django.db.models import Subquery
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh, push_url
from django_htmx.middleware import HtmxDetails

from notifications.forms import PreferenceForm
from notifications.models import Preference

if TYPE_CHECKING:
    from django.contrib.auth.models import User

from .activity import recent_activity
from .approvals import ApprovalRequest
from .chart import balance_chart
from .contributions import contributions
from .emails import send_invitation
from .errors import (
    AccountBusy,
    AccountClosed,
    AccountError,
    AccountLimitReached,
    BalanceChangedSinceSeen,
    IdempotencyConflict,
    InvitationNotPending,
    LastHolder,
    MoneyError,
    NotAHolder,
    NotYourRequest,
    OwnRequest,
    TooManyInvitations,
    WrongInvitee,
)
from .formatting import money
from .forms import AccountForm, AmountForm, InviteForm, RulesForm, TransferForm, WithdrawForm
from .history import HistoryFilter
from .models import Account, Invitation, LedgerEntry
from .statements import BadDates, statement_dates, statement_lines

HISTORY_PAGE_SIZE = 25
PAGE = "accounts/account_detail.html"


class HtmxHttpRequest(HttpRequest):
    """A request to the views here: signed in (every view is behind login_required), with
    what django-htmx's middleware adds."""

    user: User
    htmx: HtmxDetails


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def get_account_for_holder(request: HtmxHttpRequest, pk: int) -> Account:
    """The account if the signed-in user holds it; 404 for everyone else, so that outsiders
    cannot even tell which accounts exist."""
    return get_object_or_404(Account.objects.held_by(request.user), pk=pk)


@login_required
@require_GET
def account_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "accounts/account_list.html", _list_context(request, AccountForm()))


@login_required
@require_POST
def account_create(request: HtmxHttpRequest) -> HttpResponse:
    form = AccountForm(request.POST)
    template = "accounts/account_list.html" + ("#create_form" if request.htmx else "")
    if not form.is_valid():
        return render(request, template, _list_context(request, form), status=422)
    try:
        account = Account.open(form.cleaned_data["name"], by=request.user)
    except AccountError as error:  # the limit on accounts per user, or busy
        form.add_error(None, str(error))
        return _refused(render(request, template, _list_context(request, form)), error)
    url = reverse("accounts:detail", args=[account.pk])
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseSeeOther(url)


def _list_context(request, form):
    return {
        "accounts": Account.objects.held_by(request.user).order_by("name"),
        "form": form,
        "activity": recent_activity(request.user),
    }


@login_required
@require_GET
def account_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The account page; with filters in the query string (accounts/history.py), its history
    shows only what they match. The filter form swaps just the results (HTMX)."""
    account = get_account_for_holder(request, pk)
    filters = HistoryFilter(request.GET, account=account)
    status = 200 if filters.is_valid() else 422
    if request.htmx and request.htmx.target == "history-results":
        context = _history_context(account, filters=filters)
        if filters.is_valid():
            context["newest_id"] = _newest_id(context)
        return push_url(
            render(request, PAGE + "#filtered", context, status=status), filters.page_url
        )
    return render(request, PAGE, _page_context(request, account, filters=filters), status=status)


@login_required
@require_GET
def history(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Older history, 25 rows before the entry id `before` (keyset pagination), filtered like
    the page it was asked from."""
    account = get_account_for_holder(request, pk)
    before = _whole_number(request.GET.get("before"))
    if before is None:
        raise BadRequest("`before` must be a ledger entry id.")
    filters = HistoryFilter(request.GET, account=account)
    status = 200 if filters.is_valid() else 422
    if request.htmx:
        context = _history_context(account, before, filters)
        return render(request, PAGE + "#history_page", context, status=status)
    # Without JavaScript "show older" is a plain link: the whole page, history from there.
    context = _page_context(request, account, before=before, filters=filters)
    return render(request, PAGE, context, status=status)


@login_required
@require_GET
def balance(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The fragment that open account pages poll: 304 until the account's version changes.

    The page sends the ETag it has in If-None-Match and the newest entry it shows in
    `after`; a 200 carries the new balance and the rows it has not seen yet.
    """
    account = get_account_for_holder(request, pk)
    etag = f'"{account.version}"'
    response = get_conditional_response(request, etag=etag)
    if response is None:
        filters = HistoryFilter(request.GET, account=account)
        response = _updates(request, account, _whole_number(request.GET.get("after")), filters)
    response["ETag"] = etag
    patch_cache_control(response, no_cache=True, private=True)
    return response


@login_required
@require_POST
def deposit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _deposit_or_withdraw(request, pk, Account.deposit, AmountForm(request.POST))


@login_required
@require_POST
def withdraw(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _deposit_or_withdraw(request, pk, Account.withdraw, WithdrawForm(request.POST))


def _deposit_or_withdraw(
    request: HtmxHttpRequest,
    pk: int,
    change: Callable[..., LedgerEntry | ApprovalRequest],
    form: AmountForm,
) -> HttpResponse:
    """`change` (Account.deposit or Account.withdraw) with the posted amount and memo, and
    for a withdrawal the version of the balance the page showed."""
    kind = "withdraw" if isinstance(form, WithdrawForm) else "deposit"
    account = get_account_for_holder(request, pk)
    if not form.is_valid():
        return _money_form(request, account, kind, form, status=422)
    options = {
        "by": request.user,
        "idempotency_key": form.cleaned_data["idempotency_key"],
        "memo": form.cleaned_data["memo"],
    }
    if kind == "withdraw":
        options["seen_version"] = form.cleaned_data["seen_version"]
    try:
        result = change(account, form.cleaned_data["amount"], **options)
    except AccountError as error:
        return _money_refused(request, account, kind, form, error)
    return _money_done(request, account, kind, form, result)


@login_required
@require_POST
def transfer(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    form = TransferForm(request.POST)
    if not form.is_valid():
        return _money_form(request, account, "transfer", form, status=422)
    # 404 for an account the user does not hold, before anything is written.
    target = get_account_for_holder(request, form.cleaned_data["to_account"])
    amount, key = form.cleaned_data["amount"], form.cleaned_data["idempotency_key"]
    try:
        result = account.transfer(
            target,
            amount,
            by=request.user,
            idempotency_key=key,
            memo=form.cleaned_data["memo"],
            seen_version=form.cleaned_data["seen_version"],
        )
    except AccountError as error:
        return _money_refused(request, account, "transfer", form, error)
    return _money_done(request, account, "transfer", form, result)


def _money_form(
    request: HtmxHttpRequest, account: Account, kind: str, form: AmountForm, status: int = 200
) -> HttpResponse:
    """The money form again, with its errors: the form alone for HTMX, else the page."""
    if request.htmx:
        context = {"account": account, "kind": kind, "form": form}
        context["targets"] = _transfer_targets(request, account)
        return render(request, PAGE + "#money_form", context, status=status)
    context = _page_context(request, account, **{f"{kind}_form": form})
    return render(request, PAGE, context, status=status)


def _money_refused(
    request: HtmxHttpRequest, account: Account, kind: str, form: AmountForm, error: AccountError
) -> HttpResponse:
    form.add_error(error.field, str(error))
    if isinstance(error, IdempotencyConflict):
        form.renew_key()  # its key names an operation already done: what is sent next is new
    if isinstance(error, BalanceChangedSinceSeen) and isinstance(form, WithdrawForm):
        # The confirm step: the same form and key, the version just shown, the new balance.
        form.confirm_with(error.version)
        account.refresh_from_db()
        confirm = form.cleaned_data["amount"]
        if request.htmx:
            after = _whole_number(request.POST.get("after"))
            filters = HistoryFilter(request.POST, account=account)
            response = _updates(
                request, account, after, filters, form=form, kind=kind, confirm=confirm
            )
            return _refused(response, error)
        page = _page_context(request, account, **{f"{kind}_form": form}, confirm=confirm)
        return _refused(render(request, PAGE, page), error)
    return _refused(_money_form(request, account, kind, form), error)


def _money_done(
    request: HtmxHttpRequest,
    account: Account,
    kind: str,
    form: AmountForm,
    result: LedgerEntry | ApprovalRequest,
) -> HttpResponse:
    """HTMX: a fresh form, the new balance and the new rows (or, for a request, the notice
    that it waits, 202). Otherwise back to the page, which says what was done."""
    waiting = result if isinstance(result, ApprovalRequest) else None
    if request.htmx:
        fresh_form = type(form)()  # with a new idempotency key
        after = _whole_number(request.POST.get("after"))
        if after is None and waiting is None:
            after = result.pk - 1
        # The page's history filters come along with `after` (hx-include="#poller input").
        filters = HistoryFilter(request.POST, account=account)
        done = {"waiting": waiting} if waiting else {"done": result}
        response = _updates(
            request,
            account,
            after,
            filters,
            form=fresh_form,
            kind=kind,
            only=_the_only_change(request, result),
            **done,
        )
        if waiting and waiting.state == ApprovalRequest.State.PENDING:
            response.status_code = 202  # Accepted: it waits for another holder
    else:
        if isinstance(result, ApprovalRequest):
            text = f"{result.describe()}: {result.outcome()}"
        else:
            text = f"{result.summary}. The balance is now {money(account.balance)}."
        if result.replayed:
            text = f"Already applied, nothing new was done: {text}"
        messages.success(request, text)
        response = HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _the_only_change(request: HtmxHttpRequest, result) -> LedgerEntry | None:
    """The entry just written, if it is the only change since the account version the page
    shows (`page_version`, which the poller carries): then the answer need not read back
    what the page already has. None for a request, a replay, or when anything else happened
    in between (every change of the account, its requests or rules bumps the version)."""
    shown = _whole_number(request.POST.get("page_version"))
    if isinstance(result, LedgerEntry) and not result.replayed and shown is not None:
        return result if result.version == shown + 1 else None
    return None


# --- Shared control: rules and approval requests ---------------------------------------------


@login_required
@require_POST
def rules(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    form = RulesForm(request.POST)
    if not form.is_valid():
        return _rules_response(request, account, form, status=422)
    before = (account.approval_threshold, account.daily_limit)
    try:
        waiting = account.set_rules(
            form.cleaned_data["approval_threshold"],
            form.cleaned_data["daily_limit"],
            by=request.user,
            idempotency_key=form.cleaned_data["idempotency_key"],
        )
    except AccountError as error:
        form.add_error(error.field, str(error))
        return _refused(_rules_response(request, account, form), error)
    applied = (account.approval_threshold, account.daily_limit) != before
    parts = ["The rules are saved." if applied else ""]
    if waiting:
        parts.append(f"{waiting.describe()}: {waiting.outcome()}")
    message = " ".join(part for part in parts if part) or "The rules are unchanged."
    status = 202 if waiting and waiting.state == ApprovalRequest.State.PENDING else 200
    if request.htmx:
        response = _rules_response(request, account, _rules_form(account), rules_done=message)
        response.status_code = status
        return response
    messages.success(request, message)
    return HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))


def _rules_form(account: Account) -> RulesForm:
    return RulesForm(
        initial={
            "approval_threshold": account.approval_threshold,
            "daily_limit": account.daily_limit,
        }
    )


def _rules_response(request, account, form, status=200, **extra) -> HttpResponse:
    """HTMX: the rules form, with the rules now and the requests out of band; else the page."""
    if request.htmx:
        after = _whole_number(request.POST.get("after"))
        filters = HistoryFilter(request.POST, account=account)
        response = _updates(
            request, account, after, filters, template="#rules_done", rules_form=form, **extra
        )
    else:
        response = render(request, PAGE, _page_context(request, account, rules_form=form))
    response.status_code = status
    return response


@login_required
@require_POST
def approve_request(request: HtmxHttpRequest, pk: int, request_pk: int) -> HttpResponse:
    return _decide(request, pk, request_pk, Account.approve, "Approved")


@login_required
@require_POST
def reject_request(request: HtmxHttpRequest, pk: int, request_pk: int) -> HttpResponse:
    return _decide(request, pk, request_pk, Account.reject, "Rejected")


@login_required
@require_POST
def cancel_request(request: HtmxHttpRequest, pk: int, request_pk: int) -> HttpResponse:
    return _decide(request, pk, request_pk, Account.cancel, "Cancelled")


def _decide(
    request: HtmxHttpRequest,
    pk: int,
    request_pk: int,
    decide: Callable[..., ApprovalRequest],
    verb: str,
) -> HttpResponse:
    """`decide` (Account.approve, reject or cancel) on one of this account's requests.
    HTMX: the requests, balance and history, all out of band; else back to the page."""
    account = get_account_for_holder(request, pk)
    approval = get_object_or_404(account.approval_requests, pk=request_pk)
    try:
        decided = decide(account, approval, by=request.user)
    except AccountError as error:
        account.refresh_from_db()  # an expired request was voided meanwhile
        if request.htmx and isinstance(error, (OwnRequest, NotYourRequest)):
            # 403: htmx reloads the page (HX-Refresh), which then says why.
            messages.error(request, str(error))
        return _refused(_decision_response(request, account, decision_error=error), error)
    message = f"{verb}: {decided.describe()}."
    if decided.entry_id:
        message += f" The balance is now {money(account.balance)}."
    if request.htmx:
        return _decision_response(request, account, decided=message)
    messages.success(request, message)
    return HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))


def _decision_response(request, account, **extra) -> HttpResponse:
    if request.htmx:
        after = _whole_number(request.POST.get("after"))
        filters = HistoryFilter(request.POST, account=account)
        return _updates(request, account, after, filters, **extra)
    return render(request, PAGE, _page_context(request, account, **extra))


@login_required
@require_GET
def statement(request: HtmxHttpRequest, pk: int) -> HttpResponse | StreamingHttpResponse:
    """The ledger from `from` to `to` (dates, inclusive) as CSV, streamed in chunks."""
    account = get_account_for_holder(request, pk)
    try:
        first_day, last_day = statement_dates(
            account, request.GET.get("from"), request.GET.get("to")
        )
    except BadDates as error:
        return HttpResponse(f"{error}\n", status=422, content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(
        statement_lines(account, first_day, last_day), content_type="text/csv; charset=utf-8"
    )
    filename = f"statement-{account.pk}-{first_day}-to-{last_day}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _updates(
    request, account, after, filters, form=None, kind=None, template=None, only=None, **extra
) -> HttpResponse:
    """The new balance, the requests, the rules, the poller's new state and the history rows
    newer than `after` that the page's filters match, all swapped out of band; with `form`,
    the money form in front of them (`template`: another partial in front of them instead).

    `only`: the entry just written, known to be the only change since the version the page
    shows (`_the_only_change`). Then the new rows are that entry, and, while nothing is held
    for a request, the requests and the rules are left as the page shows them: neither is
    read nor redrawn (half the answer's CPU; docs/benchmarks.md). With something held, the
    available balance needs the requests (one may have expired meanwhile), so they are read.
    """
    context = {"account": account, "form": form, "kind": kind, "filters": filters, **extra}
    if only is not None and not account.held:
        context.update(requests_unchanged=True, held=Decimal("0.00"), available=account.balance)
    else:
        context.update(_approvals_context(account))
    # Called by the template only if the transfer form shows: building the query costs too.
    context["targets"] = functools.partial(_transfer_targets, request, account)
    panel = contributions(account)
    if after is not None:
        if only is not None and not filters.is_filtered:
            new_entries = [only]
        else:
            entries = _entries(account, people=False).filter(pk__gt=after)
            if filters.is_filtered:
                entries = filters.entries(entries)
            new_entries = list(entries[: HISTORY_PAGE_SIZE + 1])
        _name_people(new_entries, panel)
        if len(new_entries) > HISTORY_PAGE_SIZE:
            # More changed than one page shows: reload rather than leave a gap in the history.
            return HttpResponseClientRefresh()
        context["new_entries"] = new_entries
        context["newest_id"] = new_entries[0].pk if new_entries else after
    context["chart"] = balance_chart(account)
    context["contributions"] = panel
    template = template or ("#money_done" if form is not None else "#updates")
    return render(request, PAGE + template, context)


def _entries(account, people=True):
    """The account's entries, newest first, with what their rows show. `people=False`: without
    their authors and approvers, whom the caller names with `_name_people` (joining them and
    their profiles doubles the CPU the ORM spends on the query)."""
    related = ["created_by__profile", "approved_by__profile"] if people else []
    return account.entries.select_related("counterparty", *related).order_by("-pk")


def _name_people(entries, panel) -> None:
    """Give each entry its author and approver (profiles loaded, for their names) from the
    "who put in what" panel's rows, which have every holder, current and former, and anyone
    else who moved money here; anyone else (the staff member who posted interest) is read."""
    people = {row.user.pk: row.user for row in panel.holders}
    wanted = {pk for entry in entries for pk in (entry.created_by_id, entry.approved_by_id) if pk}
    if missing := wanted - people.keys():
        people.update(get_user_model().objects.select_related("profile").in_bulk(missing))
    for entry in entries:
        entry.created_by = people[entry.created_by_id]
        if entry.approved_by_id:
            entry.approved_by = people[entry.approved_by_id]


def _approvals_context(account: Account) -> dict:
    """The requests the page lists, and the available balance as the next withdrawal will
    see it: requests past their expiry hold nothing any more, even before they are voided."""
    # Most accounts have none to list: asking whether there are any costs a third of the
    # CPU of the listing query (its joins and ordering take the ORM ~2 ms to compile). Money
    # held means a request is pending: then there is no need to ask.
    requests = account.approval_requests
    listed = account.held or requests.listed().exists()
    approvals = list(requests.for_page()) if listed else []
    pending = ApprovalRequest.State.PENDING
    held = sum((a.hold for a in approvals if a.effective_state == pending), Decimal("0.00"))
    return {"approvals": approvals, "held": held, "available": account.balance - held}


def _transfer_targets(request, account):
    accounts = Account.objects.held_by(request.user).filter(closed_at__isnull=True)
    return accounts.exclude(pk=account.pk).order_by("name")


def _history_context(account, before=None, filters=None):
    context = {"account": account, "filters": filters, "entries": [], "older_before": None}
    if filters is not None and not filters.is_valid():
        return context  # the page says what is wrong with the filters, and lists nothing
    entries = _entries(account)
    if filters is not None and filters.is_filtered:
        # Newest first by seq, as the filter indexes are (accounts/history.py); "Show older"
        # still names an entry id, which this account's own entry turns into its seq.
        entries = filters.entries(entries).order_by("-seq")
        if before is not None:
            before_seq = account.entries.filter(pk=before).values("seq")[:1]
            entries = entries.filter(seq__lt=Subquery(before_seq))
    elif before is None:
        # The newest page by the account's own entry number: only the (account, seq) index
        # yields that order. Ordered by id, PostgreSQL may walk the whole table's newest ids
        # backwards and skip other accounts' rows (41 ms instead of 0.1 ms for an account that
        # holds most of the ledger; docs/benchmarks.md). seq and id grow together within an
        # account: both are assigned under its row lock.
        entries = entries.order_by("-seq")
    else:  # older pages keep the id keyset, which the (account, -id) index serves
        entries = entries.filter(pk__lt=before)
    page = list(entries[: HISTORY_PAGE_SIZE + 1])
    context["entries"] = page[:HISTORY_PAGE_SIZE]
    if len(page) > HISTORY_PAGE_SIZE:
        context["older_before"] = page[HISTORY_PAGE_SIZE - 1].pk
    return context


def _newest_id(context) -> int:
    """The newest entry the first page shows: the live updates (poller, money forms) bring
    what comes after it."""
    return context["entries"][0].pk if context["entries"] else 0


def _page_context(request, account, before=None, filters=None, **forms):
    if filters is None:
        filters = HistoryFilter({}, account=account)
    context = _history_context(account, before, filters)
    # Only the first page is live; an older page, or one whose filters are wrong, stays as is.
    if before is None and filters.is_valid():
        context["newest_id"] = _newest_id(context)
    context.update(
        deposit_form=forms.get("deposit_form") or AmountForm(),
        withdraw_form=forms.get("withdraw_form") or WithdrawForm(),
        transfer_form=forms.get("transfer_form") or TransferForm(),
        rules_form=forms.get("rules_form") or _rules_form(account),
        confirm=forms.get("confirm"),
        decision_error=forms.get("decision_error"),
        **_approvals_context(account),
        targets=_transfer_targets(request, account),
        before=before,
        **_sharing_context(account, forms.get("invite_form")),
        action_error=forms.get("action_error"),
        chart=balance_chart(account),
        notification_form=forms.get("notification_form")
        or PreferenceForm.for_preference(Preference.for_holder(account, request.user)),
    )
    context["contributions"] = contributions(account, context["all_memberships"])
    return context


@login_required
@require_POST
def notification_preference(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """When the signed-in holder is e-mailed about the other holders' moves on this account."""
    account = get_account_for_holder(request, pk)
    form = PreferenceForm(request.POST)
    if account.closed_at is not None:  # read-only, and nothing moves on it any more
        error = AccountClosed(account.closed_at)
        form.add_error(None, str(error))
        return _refused(_notification_form(request, account, form), error)
    if not form.is_valid():
        return _notification_form(request, account, form, status=422)
    saved, _ = Preference.objects.update_or_create(
        account=account,
        user=request.user,
        defaults={"when": form.cleaned_data["when"], "above": form.cleaned_data["above"]},
    )
    text = f"E-mails when another holder moves money: {saved.description}."
    if request.htmx:
        return _notification_form(request, account, PreferenceForm.for_preference(saved), text)
    messages.success(request, text)
    return HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))


def _notification_form(request, account, form, saved=None, status=200) -> HttpResponse:
    if request.htmx:
        context = {"account": account, "notification_form": form, "notification_saved": saved}
        return render(request, PAGE + "#notification_settings", context, status=status)
    context = _page_context(request, account, notification_form=form)
    return render(request, PAGE, context, status=status)


def _whole_number(value) -> int | None:
    """A query or form value that must be a whole number (an entry id, an account version):
    None for anything else, which the caller refuses or treats as not sent."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


# --- Sharing: invitations, leaving, closing -------------------------------------------------


def _refused(response: HttpResponse, error: AccountError) -> HttpResponse:
    """`response`, which shows the refusal, with the status that says why.

    A user who stopped holding the account between the view's check and the locked one gets
    the 404 every non-holder gets. A refused amount is the input's fault (422), and so is one
    account more than a user may hold; an invitation over a rate limit is 429, with
    Retry-After saying when one more is allowed; the others are about the account's or the
    invitation's state (409: closed, full, busy, last holder, money left, a request answered
    already, money moved since the page was shown...), except a wrong invitee, or a holder
    answering a request that is not theirs to answer (403), and a used invitation (410).
    """
    if isinstance(error, NotAHolder):
        raise Http404("You do not hold this account.")
    if isinstance(error, (WrongInvitee, OwnRequest, NotYourRequest)):
        response.status_code = 403
    elif isinstance(error, InvitationNotPending):
        response.status_code = 410  # Gone: expired, revoked, declined or already used
    elif isinstance(error, (MoneyError, AccountLimitReached)):
        response.status_code = 422  # about the amount or the account chosen: the input
    elif isinstance(error, TooManyInvitations):
        response.status_code = 429
        response["Retry-After"] = str(error.retry_after)
    else:
        response.status_code = 409
    if isinstance(error, AccountBusy):
        # Nothing was written: the same request, same key, may simply be sent again.
        response["Retry-After"] = "1"
    return response


def _sharing_context(account, invite_form=None, **extra):
    memberships = account.memberships.select_related("user__profile").order_by("joined_at", "pk")
    return {
        "account": account,
        "all_memberships": memberships,
        "memberships": [m for m in memberships if m.left_at is None],
        "former_memberships": [m for m in memberships if m.left_at is not None],
        "invitations": account.invitations.pending()
        .select_related("invited_by__profile")
        .order_by("created_at", "pk"),
        "invite_form": invite_form or InviteForm(),
        **extra,
    }


def _sharing_response(request, account, status=200, invite_form=None, **extra):
    """The holders-and-invitations section for HTMX; the whole page otherwise."""
    if request.htmx:
        context = _sharing_context(account, invite_form, **extra)
        return render(request, PAGE + "#sharing", context, status=status)
    context = _page_context(request, account, invite_form=invite_form)
    context.update(extra)
    return render(request, PAGE, context, status=status)


def _sharing_done(request, account, message: str) -> HttpResponse:
    """After an invite or a revoke: the refreshed section saying so (HTMX), else back to the
    page with the message."""
    if request.htmx:
        return _sharing_response(request, account, sent=message)
    messages.success(request, message)
    return HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))


def _done(request, url: str, message: str) -> HttpResponse:
    messages.success(request, message)
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseSeeOther(url)


@login_required
@require_POST
def invite(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _sharing_response(request, account, 422, form)
    email = form.cleaned_data["email"]
    try:
        invitation, token = account.invite(email, by=request.user)
    except AccountError as error:
        if error.field:  # about the address typed in (already a holder, already invited)
            form.add_error(error.field, str(error))
            return _sharing_response(request, account, 422, form)
        return _refused(_sharing_response(request, account, invite_form=form, refused=error), error)
    link = request.build_absolute_uri(reverse("accounts:invitation", args=[invitation.pk, token]))
    # After COMMIT (at once here, outside any transaction): the mail server may be slow, and
    # no mail may go out for an invitation that was rolled back. `robust`: a mail failure is
    # logged, it does not turn into an error page for an invitation that was saved.
    transaction.on_commit(lambda: send_invitation(invitation, link), robust=True)
    sent = f"Invitation sent to {email}. It expires in {Invitation.LIFETIME.days} days."
    return _sharing_done(request, account, sent)


@login_required
@require_POST
def revoke(request: HtmxHttpRequest, pk: int, invitation_pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    invitation = get_object_or_404(account.invitations, pk=invitation_pk)
    try:
        account.revoke(invitation, by=request.user)
    except AccountError as error:
        response = _refused(_sharing_response(request, account, refused=error), error)
        if isinstance(error, InvitationNotPending):
            # Answered or expired since the page was shown: a conflict with the page (409,
            # which htmx swaps), not a dead link (the 410 of the invitation page).
            response.status_code = 409
        return response
    revoked = f"The invitation to {invitation.email} is revoked; its link no longer works."
    return _sharing_done(request, account, revoked)


@login_required
@require_http_methods(["GET", "POST"])
def leave(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation, with what the user put in and took out, so that the holders can
    settle before they go. POST: leave."""
    account = get_account_for_holder(request, pk)
    if request.method == "GET":
        return _leave_confirmation(request, account)
    try:
        account.leave(by=request.user)
    except AccountError as error:
        return _action_refused(request, account, error)
    message = f"You left {account.name}. Its other holders keep the account and its money."
    return _done(request, reverse("accounts:list"), message)


@login_required
@require_POST
def close(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    try:
        account.close(by=request.user)
    except AccountError as error:
        return _action_refused(request, account, error)
    message = f"{account.name} is closed. Its history stays here, read-only."
    return _done(request, reverse("accounts:detail", args=[account.pk]), message)


def _leave_confirmation(request: HtmxHttpRequest, account: Account) -> HttpResponse:
    sharing = _sharing_context(account)
    context = {**sharing, "contributions": contributions(account, sharing["all_memberships"])}
    context["mine"] = context["contributions"].of(request.user)
    status = 200
    # Refused now rather than after the click: closed, or nobody else would hold it.
    if account.closed_at is not None:
        context["refused"], status = AccountClosed(account.closed_at), 409
    elif len(sharing["memberships"]) < 2:
        context["refused"], status = LastHolder(), 409
    return render(request, "accounts/leave.html", context, status=status)


def _action_refused(
    request: HtmxHttpRequest, account: Account, error: AccountError
) -> HttpResponse:
    if request.htmx:
        context = {"account": account, "action_error": error, **_sharing_context(account)}
        return _refused(render(request, PAGE + "#account_actions", context), error)
    context = _page_context(request, account, action_error=error)
    return _refused(render(request, PAGE, context), error)


def _get_invitation(pk: int, token: str) -> Invitation | None:
    """The invitation if the link's token is its token. None looks the same whether or not
    an invitation with that id exists."""
    invitation = (
        Invitation.objects.select_related("account", "invited_by__profile").filter(pk=pk).first()
    )
    if invitation is None or not invitation.token_matches(token):
        return None
    invitation.mark_if_expired()
    return invitation


def _invitation_page(
    request: HtmxHttpRequest,
    invitation: Invitation | None,
    token: str,
    error: AccountError | None = None,
) -> HttpResponse:
    """The invitation with its buttons, or what stands in the way of answering it."""
    if invitation is None:
        message = "This invitation link is not valid: check that you opened all of it."
        page = {"invitation": None, "token": token, "error": message}
        return render(request, "accounts/invitation.html", page, status=404)
    if error is None:
        try:
            invitation.check_answerable_by(request.user)
            invitation.account.check_can_add_holder(request.user)
        except AccountError as refusal:
            error = refusal
    context: dict[str, object] = {
        "invitation": invitation,
        "token": token,
        "error": error,
        "wrong_user": isinstance(error, WrongInvitee),
    }
    response = render(request, "accounts/invitation.html", context)
    return response if error is None else _refused(response, error)


@login_required
@require_GET
def invitation(request: HtmxHttpRequest, invitation_pk: int, token: str) -> HttpResponse:
    return _invitation_page(request, _get_invitation(invitation_pk, token), token)


@login_required
@require_POST
def accept(request: HtmxHttpRequest, invitation_pk: int, token: str) -> HttpResponse:
    return _answer_invitation(request, invitation_pk, token, accepting=True)


@login_required
@require_POST
def decline(request: HtmxHttpRequest, invitation_pk: int, token: str) -> HttpResponse:
    return _answer_invitation(request, invitation_pk, token, accepting=False)


def _answer_invitation(request, invitation_pk, token, *, accepting: bool) -> HttpResponse:
    invitation = _get_invitation(invitation_pk, token)
    if invitation is None:
        return _invitation_page(request, None, token)
    try:
        (invitation.accept if accepting else invitation.decline)(request.user)
    except AccountError as error:
        return _invitation_page(request, invitation, token, error)
    name = invitation.account.name
    if accepting:
        url = reverse("accounts:detail", args=[invitation.account_id])
        return _done(request, url, f"You are now a holder of {name}.")
    return _done(request, reverse("accounts:list"), f"You declined the invitation to {name}.")
