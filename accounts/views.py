from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.db import transaction
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
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from .chart import balance_chart
from .emails import send_invitation
from .forms import AccountForm, AmountForm, InviteForm, TransferForm
from .models import (
    MAX_BALANCE,
    Account,
    AccountBusy,
    AccountError,
    AlreadyAHolder,
    AlreadyInvited,
    BalanceLimitExceeded,
    BalanceNotZero,
    IdempotencyConflict,
    InsufficientFunds,
    Invitation,
    InvitationNotPending,
    MoneyError,
    NotAHolder,
    SameAccountTransfer,
    WrongInvitee,
)
from .statements import BadDates, statement_dates, statement_lines
from .templatetags.money import money

HISTORY_PAGE_SIZE = 25
PAGE = "accounts/account_detail.html"
FORMS = {"deposit": AmountForm, "withdraw": AmountForm, "transfer": TransferForm}
VERBS = {"deposit": "Deposited", "withdraw": "Withdrew", "transfer": "Transferred"}


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
    return render(request, PAGE, _page_context(request, account))


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
    return render(request, PAGE, _page_context(request, account, before=before))


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


@login_required
@require_POST
def transfer(request: HttpRequest, pk: int) -> HttpResponse:
    return _change_balance(request, pk, "transfer")


def _change_balance(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    form = FORMS[kind](request.POST, auto_id=f"{kind}-%s")
    entry, status, busy = None, 422, False
    if form.is_valid():
        amount, key = form.cleaned_data["amount"], form.cleaned_data["idempotency_key"]
        try:
            if kind == "transfer":
                # 404 for an account the user does not hold, before anything is written.
                target = get_account_for_holder(request, form.cleaned_data["to_account"])
                entry = account.transfer(target, amount, by=request.user, idempotency_key=key)
            else:
                entry = getattr(account, kind)(amount, by=request.user, idempotency_key=key)
        except AccountBusy as error:
            form.add_error(None, str(error))
            status, busy = 409, True
        except IdempotencyConflict as error:
            applied = error.entry
            form.add_error(
                None,
                f"This form was already used for another operation, which was applied "
                f"({applied.get_kind_display().lower()} of {money(applied.amount)}): check the "
                "transactions. Send the form again to make this one a new operation.",
            )
            form.renew_key()
            status = 409
        except InsufficientFunds as error:
            form.add_error("amount", f"Insufficient funds: the balance is {money(error.balance)}.")
        except BalanceLimitExceeded:
            whose = f"the balance of {target.name}" if kind == "transfer" else "the balance"
            form.add_error("amount", f"This would take {whose} above {money(MAX_BALANCE)}.")
        except SameAccountTransfer as error:
            form.add_error("to_account", str(error))
        except MoneyError as error:
            form.add_error("amount", str(error))
        except AccountError as error:
            status = _refusal_status(error)
            form.add_error("amount", str(error))

    if entry is None:
        if request.htmx:
            context = {"account": account, "kind": kind, "form": form}
            context["targets"] = _transfer_targets(request, account)
            response = render(request, PAGE + "#money_form", context, status=status)
        else:
            context = _page_context(request, account, **{f"{kind}_form": form})
            response = render(request, PAGE, context, status=status)
        if busy:  # nothing was written: the same request, same key, may simply be sent again
            response["Retry-After"] = "1"
        return response

    if request.htmx:
        fresh_form = FORMS[kind](auto_id=f"{kind}-%s")
        after = _entry_id(request.POST.get("after"))
        after = entry.pk - 1 if after is None else after
        response = _updates(request, account, after, form=fresh_form, kind=kind, done=entry)
    else:
        to = f" to {entry.counterparty}" if kind == "transfer" else ""
        text = (
            f"{VERBS[kind]} {money(entry.amount)}{to}. The balance is now {money(account.balance)}."
        )
        if entry.replayed:
            text = f"Already applied, nothing new was done: {text}"
        messages.success(request, text)
        response = HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))
    if entry.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


@login_required
@require_GET
def statement(request: HttpRequest, pk: int) -> HttpResponse:
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


def _updates(request, account, after, form=None, kind=None, done=None) -> HttpResponse:
    """The new balance, the poller's new state and the history rows newer than `after`,
    all swapped out of band; with `form`, the reset money form in front of them."""
    context = {"account": account, "form": form, "kind": kind, "done": done}
    if kind == "transfer":
        context["targets"] = _transfer_targets(request, account)
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
    return account.entries.select_related("created_by", "counterparty").order_by("-pk")


def _transfer_targets(request, account):
    accounts = Account.objects.held_by(request.user).filter(closed_at__isnull=True)
    return accounts.exclude(pk=account.pk).order_by("name")


def _history_context(account, before=None):
    # The newest page by the account's own entry number: only the (account, seq) index yields
    # that order. Ordered by id, PostgreSQL may walk the whole table's newest ids backwards and
    # skip other accounts' rows (41 ms instead of 0.1 ms for an account that holds most of the
    # ledger; docs/benchmarks.md). seq and id grow together within an account: both are
    # assigned under its row lock. Older pages keep the id keyset, which the index also serves.
    entries = _entries(account)
    entries = entries.order_by("-seq") if before is None else entries.filter(pk__lt=before)
    page = list(entries[: HISTORY_PAGE_SIZE + 1])
    return {
        "account": account,
        "entries": page[:HISTORY_PAGE_SIZE],
        "older_before": page[HISTORY_PAGE_SIZE - 1].pk if len(page) > HISTORY_PAGE_SIZE else None,
    }


def _page_context(request, account, before=None, **forms):
    context = _history_context(account, before)
    if before is None:  # only the first page is live; an older page stays as it was
        context["newest_id"] = context["entries"][0].pk if context["entries"] else 0
    context.update(
        deposit_form=forms.get("deposit_form") or AmountForm(auto_id="deposit-%s"),
        withdraw_form=forms.get("withdraw_form") or AmountForm(auto_id="withdraw-%s"),
        transfer_form=forms.get("transfer_form") or TransferForm(auto_id="transfer-%s"),
        targets=_transfer_targets(request, account),
        before=before,
        **_sharing_context(account, forms.get("invite_form")),
        action_error=forms.get("action_error"),
        chart=balance_chart(account),
    )
    return context


def _entry_id(value) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


# --- Sharing: invitations, leaving, closing -------------------------------------------------


def _refusal_status(error: AccountError) -> int:
    """The HTTP status for a domain refusal. A user who stopped holding the account between
    the view's check and the locked one gets the 404 every non-holder gets."""
    if isinstance(error, NotAHolder):
        raise Http404("You do not hold this account.")
    if isinstance(error, WrongInvitee):
        return 403
    if isinstance(error, InvitationNotPending):
        return 410  # Gone: expired, revoked, declined or already used
    return 409  # closed, full, last holder, money left, ...: the account's state, not input


def _sharing_context(account, invite_form=None, **extra):
    memberships = account.memberships.select_related("user").order_by("joined_at", "pk")
    return {
        "account": account,
        "memberships": [m for m in memberships if m.left_at is None],
        "former_memberships": [m for m in memberships if m.left_at is not None],
        "invitations": account.invitations.pending()
        .select_related("invited_by")
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
def invite(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _sharing_response(request, account, 422, form)
    email = form.cleaned_data["email"]
    try:
        invitation, token = account.invite(email, by=request.user)
    except (AlreadyAHolder, AlreadyInvited) as error:
        form.add_error("email", str(error))
        return _sharing_response(request, account, 422, form)
    except AccountError as error:
        return _sharing_response(request, account, _refusal_status(error), form, refused=error)
    link = request.build_absolute_uri(reverse("accounts:invitation", args=[invitation.pk, token]))
    # After COMMIT (at once here, outside any transaction): the mail server may be slow, and
    # no mail may go out for an invitation that was rolled back. `robust`: a mail failure is
    # logged, it does not turn into an error page for an invitation that was saved.
    transaction.on_commit(lambda: send_invitation(invitation, link), robust=True)
    sent = f"Invitation sent to {email}. It expires in {Invitation.LIFETIME.days} days."
    return _sharing_done(request, account, sent)


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int, invitation_pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    invitation = get_object_or_404(account.invitations, pk=invitation_pk)
    try:
        account.revoke(invitation, by=request.user)
    except AccountError as error:
        # Answered or expired since the page was shown: a conflict with the page (409, which
        # htmx swaps), not a dead link (the 410 of the invitation page).
        status = 409 if isinstance(error, InvitationNotPending) else _refusal_status(error)
        return _sharing_response(request, account, status, refused=error)
    revoked = f"The invitation to {invitation.email} is revoked; its link no longer works."
    return _sharing_done(request, account, revoked)


@login_required
@require_POST
def leave(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    try:
        account.leave(by=request.user)
    except AccountError as error:
        return _action_refused(request, account, error)
    message = f"You left {account.name}. Its other holders keep the account and its money."
    return _done(request, reverse("accounts:list"), message)


@login_required
@require_POST
def close(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_account_for_holder(request, pk)
    try:
        account.close(by=request.user)
    except AccountError as error:
        return _action_refused(request, account, error)
    message = f"{account.name} is closed. Its history stays here, read-only."
    return _done(request, reverse("accounts:detail", args=[account.pk]), message)


def _action_refused(request, account, error: AccountError) -> HttpResponse:
    status = _refusal_status(error)
    message = str(error)
    if isinstance(error, BalanceNotZero):
        message = (
            f"Only an account with a balance of {money(0)} can be closed; this one holds "
            f"{money(error.balance)}. Withdraw it first."
        )
    if request.htmx:
        context = {"account": account, "action_error": message, **_sharing_context(account)}
        return render(request, PAGE + "#account_actions", context, status=status)
    context = _page_context(request, account, action_error=message)
    return render(request, PAGE, context, status=status)


def _get_invitation(pk: int, token: str) -> Invitation | None:
    """The invitation if the link's token is its token. None looks the same whether or not
    an invitation with that id exists."""
    invitation = Invitation.objects.select_related("account", "invited_by").filter(pk=pk).first()
    if invitation is None or not invitation.token_matches(token):
        return None
    invitation.mark_if_expired()
    return invitation


def _invitation_page(request, invitation, token, error=None, status=200) -> HttpResponse:
    if invitation is None:
        error, status = "This invitation link is not valid: check that you opened all of it.", 404
    elif error is None:
        try:
            invitation.check_answerable_by(request.user)
            invitation.account.check_can_add_holder(request.user)
        except AccountError as refusal:
            error, status = refusal, _refusal_status(refusal)
    context = {
        "invitation": invitation,
        "token": token,
        "error": error,
        "wrong_user": isinstance(error, WrongInvitee),
    }
    return render(request, "accounts/invitation.html", context, status=status)


@login_required
@require_GET
def invitation(request: HttpRequest, invitation_pk: int, token: str) -> HttpResponse:
    return _invitation_page(request, _get_invitation(invitation_pk, token), token)


@login_required
@require_POST
def accept(request: HttpRequest, invitation_pk: int, token: str) -> HttpResponse:
    return _answer_invitation(request, invitation_pk, token, accepting=True)


@login_required
@require_POST
def decline(request: HttpRequest, invitation_pk: int, token: str) -> HttpResponse:
    return _answer_invitation(request, invitation_pk, token, accepting=False)


def _answer_invitation(request, invitation_pk, token, *, accepting: bool) -> HttpResponse:
    invitation = _get_invitation(invitation_pk, token)
    if invitation is None:
        return _invitation_page(request, None, token)
    try:
        (invitation.accept if accepting else invitation.decline)(request.user)
    except AccountError as error:
        return _invitation_page(request, invitation, token, error, _refusal_status(error))
    name = invitation.account.name
    if accepting:
        url = reverse("accounts:detail", args=[invitation.account_id])
        return _done(request, url, f"You are now a holder of {name}.")
    return _done(request, reverse("accounts:list"), f"You declined the invitation to {name}.")
