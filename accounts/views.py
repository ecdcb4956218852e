from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from .chart import balance_chart
from .emails import send_invitation
from .forms import AccountForm, AmountForm, InviteForm
from .models import (
    Account,
    AccountError,
    AlreadyAHolder,
    AlreadyInvited,
    BalanceNotZero,
    InsufficientFunds,
    Invitation,
    InvitationNotPending,
    MoneyError,
    NotAHolder,
    WrongInvitee,
)
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
    entry, status = None, 422
    if form.is_valid():
        amount = form.cleaned_data["amount"]
        try:
            entry = getattr(account, kind)(amount, by=request.user)
        except InsufficientFunds as error:
            form.add_error("amount", f"Insufficient funds: the balance is {money(error.balance)}.")
        except MoneyError as error:
            form.add_error("amount", str(error))
        except AccountError as error:
            status = _refusal_status(error)
            form.add_error("amount", str(error))

    if entry is None:
        if request.htmx:
            context = {"account": account, "kind": kind, "form": form}
            return render(request, PAGE + "#money_form", context, status=status)
        forms = {f"{kind}_form": form}
        return render(request, PAGE, _page_context(account, **forms), status=status)

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
        deposit_form=forms.get("deposit_form") or AmountForm(auto_id="deposit-%s"),
        withdraw_form=forms.get("withdraw_form") or AmountForm(auto_id="withdraw-%s"),
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
    context = _page_context(account, invite_form=invite_form)
    context.update(extra)
    return render(request, PAGE, context, status=status)


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
    if request.htmx:
        return _sharing_response(request, account, sent=sent)
    messages.success(request, sent)
    return HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))


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
    if request.htmx:
        return _sharing_response(request, account, sent=revoked)
    messages.success(request, revoked)
    return HttpResponseSeeOther(reverse("accounts:detail", args=[account.pk]))


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
    return render(request, PAGE, _page_context(account, action_error=message), status=status)


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
    invitation = _get_invitation(invitation_pk, token)
    if invitation is None:
        return _invitation_page(request, None, token)
    try:
        invitation.accept(request.user)
    except AccountError as error:
        return _invitation_page(request, invitation, token, error, _refusal_status(error))
    message = f"You are now a holder of {invitation.account.name}."
    return _done(request, reverse("accounts:detail", args=[invitation.account_id]), message)


@login_required
@require_POST
def decline(request: HttpRequest, invitation_pk: int, token: str) -> HttpResponse:
    invitation = _get_invitation(invitation_pk, token)
    if invitation is None:
        return _invitation_page(request, None, token)
    try:
        invitation.decline(request.user)
    except AccountError as error:
        return _invitation_page(request, invitation, token, error, _refusal_status(error))
    message = f"You declined the invitation to {invitation.account.name}."
    return _done(request, reverse("accounts:list"), message)
