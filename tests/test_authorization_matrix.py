"""Who may do what, on every URL of the accounts and profiles apps.

The URLs come from the URLconf itself, so a URL added later without a row here fails
`test_every_url_has_a_row`. Every request runs in a savepoint that is rolled back, so each
one starts from the same fixture.

The roles and what the design allows them:
- signed out: everything redirects to sign-in (`?next=` back), HTMX requests get HX-Redirect
  (back to the page they came from);
- holder: alice, who holds Household with bob. Allowed; `close` is refused by the rules
  (409: bob still holds it and it holds money), not by authorization;
- outsider: carol, who never held Household: 404 on every account URL (404, not 403, so that
  outsiders cannot tell which accounts exist); 403 on someone else's invitation;
- former: erin, who held Household and left. Leaving means losing access, so 404 on every
  account URL like an outsider, even for reading the history. The one thing the design lets
  her do is answer a new invitation to rejoin, which a holder sent her;
- closed: frank, the last holder of "Old savings", which he closed. He keeps reading it (200);
  every write answers 409 (read-only).
"""

from __future__ import annotations

from decimal import Decimal
from itertools import product

from django.db import transaction
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.approvals import ApprovalRequest
from accounts.models import Account, Invitation
from tests.base import HX, JointAccountTestCase, make_user

ROLES = ["holder", "outsider", "former", "closed"]

# url name: (method, data, {role: expected status}).
READ = {"holder": 200, "outsider": 404, "former": 404, "closed": 200}
WRITE = {"holder": 303, "outsider": 404, "former": 404, "closed": 409}
INVITEE_ONLY = {"holder": 403, "outsider": 403, "former": None, "closed": 403}
SHARED = object()  # stands for the pk of "Shared", which alice and frank hold
MATRIX = {
    "list": ("get", {}, dict.fromkeys(ROLES, 200)),
    "create": ("post", {"name": "Trip"}, dict.fromkeys(ROLES, 303)),
    "detail": ("get", {}, READ),
    "balance": ("get", {}, READ),
    "history": ("get", {"before": "999999999"}, READ),
    "deposit": ("post", {"amount": "1.00"}, WRITE),
    "withdraw": ("post", {"amount": "1.00"}, WRITE),
    "transfer": ("post", {"amount": "1.00", "to_account": SHARED}, WRITE),
    "statement": ("get", {}, READ),
    "rules": ("post", {"approval_threshold": "50", "daily_limit": ""}, WRITE),
    # bob's request, for alice to approve or reject; her own, for her to cancel.
    "approve_request": ("post", {}, WRITE),
    "reject_request": ("post", {}, WRITE),
    "cancel_request": ("post", {}, WRITE),
    "invite": ("post", {"email": "new@example.com"}, WRITE),
    "revoke": ("post", {}, WRITE),
    "notifications": ("post", {"when": "never"}, WRITE),
    "leave": ("post", {}, WRITE),
    "close": ("post", {}, {**WRITE, "holder": 409}),
    "invitation": ("get", {}, {**INVITEE_ONLY, "former": 200}),
    "accept": ("post", {}, {**INVITEE_ONLY, "former": 303}),
    "decline": ("post", {}, {**INVITEE_ONLY, "former": 303}),
    # /profile/: everyone signed in has their own.
    "profile": ("get", {}, dict.fromkeys(ROLES, 200)),
}
# URLs that answer a second method too: url name: [(method, data, {role: status})].
ALSO = {
    # The confirmation before leaving; the closed account's last holder cannot leave.
    "leave": [("get", {}, {**READ, "closed": 409})],
}
NAMESPACES = ("accounts", "profiles")


def rows(name):
    return [MATRIX[name], *ALSO.get(name, [])]


def account_url_patterns():
    """The accounts and profiles apps' URL patterns as the site actually mounts them, each
    with its `namespace` set."""
    found = []
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace in NAMESPACES:
            for pattern in entry.url_patterns:
                pattern.namespace = entry.namespace
                found.append(pattern)
    namespaces = {pattern.namespace for pattern in found}
    assert namespaces == set(NAMESPACES), f"not in the URLconf: {set(NAMESPACES) - namespaces}"
    return found


class AuthorizationMatrixTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.erin = make_user("erin@example.com")
        cls.account.add_holder(cls.erin)
        cls.account.deposit(Decimal("10.00"), by=cls.erin)
        cls.account.leave(by=cls.erin)
        cls.invitation, cls.token = cls.account.invite("erin@example.com", by=cls.alice)

        cls.frank = make_user("frank@example.com")
        cls.closed = Account.open("Old savings", by=cls.frank)
        cls.closed_invitation, _ = cls.closed.invite("gina@example.com", by=cls.frank)
        cls.closed.close(by=cls.frank)  # revokes gina's invitation
        # A transfer target that both the holder and the closed account's holder hold.
        cls.shared = Account.open("Shared", by=cls.alice)
        cls.shared.add_holder(cls.frank)

        # Requests waiting for approval on Household, and an answered one on Old savings.
        Account.objects.filter(pk=cls.account.pk).update(approval_threshold=Decimal("10.00"))
        cls.bobs_request = cls.account.withdraw(Decimal("20.00"), by=cls.bob)
        cls.alices_request = cls.account.withdraw(Decimal("30.00"), by=cls.alice)
        now = timezone.now()
        cls.closed_request = ApprovalRequest.objects.create(
            account=cls.closed,
            kind="withdrawal",
            amount=Decimal("5.00"),
            requested_by=cls.frank,
            decided_by=cls.frank,
            state="cancelled",
            expires_at=now,
            decided_at=now,
        )

        cls.users = {"holder": cls.alice, "outsider": cls.carol, "former": cls.erin}
        cls.users["closed"] = cls.frank

    def url_for(self, pattern, role=None) -> str:
        closed = role == "closed"
        values = {
            "pk": (self.closed if closed else self.account).pk,
            "invitation_pk": self.invitation.pk,
            "token": self.token,
        }
        if pattern.name == "revoke" and closed:
            values["invitation_pk"] = self.closed_invitation.pk
        request = self.alices_request if pattern.name == "cancel_request" else self.bobs_request
        values["request_pk"] = (self.closed_request if closed else request).pk
        kwargs = {name: values[name] for name in pattern.pattern.converters}
        return reverse(f"{pattern.namespace}:{pattern.name}", kwargs=kwargs)

    def data(self, data):
        return {key: self.shared.pk if value is SHARED else value for key, value in data.items()}

    def request(self, method, url, data, **headers):
        """One request whose writes are rolled back afterwards."""
        data = self.data(data)
        with transaction.atomic():
            response = getattr(self.client, method)(url, data, **headers)
            transaction.set_rollback(True)
        return response

    def test_every_url_has_a_row(self):
        names = [pattern.name for pattern in account_url_patterns()]
        self.assertEqual(len(names), len(set(names)), "every pattern needs its own name")
        self.assertEqual(set(names), set(MATRIX), "add a row to MATRIX for each new URL")

    def test_signed_out_visitors_are_sent_to_sign_in_and_back(self):
        self.client.logout()
        login = reverse("account_login")
        for pattern in account_url_patterns():
            url = self.url_for(pattern)
            for method in ("get", "post"):
                with self.subTest(url=url, method=method):
                    response = self.request(method, url, {})
                    self.assertEqual(response.status_code, 302)
                    # After signing in, a GET comes back to its URL; a form sent while signed
                    # out comes back to the page it was on (its Referer), else to the start.
                    back = url if method == "get" else "/"
                    self.assertEqual(response["Location"], f"{login}?next={back}")
                    if method == "post":
                        page = "http://testserver/accounts/"
                        response = self.request(method, url, {}, HTTP_REFERER=page)
                        self.assertEqual(response["Location"], f"{login}?next=/accounts/")

                    # HTMX: back to the page the request came from, not to the fragment.
                    page = "http://testserver/accounts/"
                    response = self.request(method, url, {}, **HX, HTTP_HX_CURRENT_URL=page)
                    self.assertEqual(response["HX-Redirect"], f"{login}?next=/accounts/")

    def test_each_role_gets_what_the_design_allows(self):
        self.assertEqual(set(ROLES), set(self.users))
        for pattern in account_url_patterns():
            for (method, data, expected), role in product(rows(pattern.name), ROLES):
                self.client.force_login(self.users[role])
                url = self.url_for(pattern, role)
                with self.subTest(url=pattern.name, role=role, method=method):
                    response = self.request(method, url, data)
                    self.assertEqual(response.status_code, expected[role])

    def test_no_answer_is_kept_in_a_cache(self):
        # Every URL, every role, plain and HTMX: pages, fragments, statements and refusals
        # alike. Only the polled balance revalidates instead (its ETag: test_security_headers).
        for pattern in account_url_patterns():
            method, data, _ = MATRIX[pattern.name]
            for role in ROLES:
                self.client.force_login(self.users[role])
                for headers in ({}, HX):
                    with self.subTest(url=pattern.name, role=role, htmx=bool(headers)):
                        url = self.url_for(pattern, role)
                        response = self.request(method, url, data, **headers)
                        directives = {
                            directive.strip() for directive in response["Cache-Control"].split(",")
                        }
                        if pattern.name == "balance" and response.status_code == 200:
                            self.assertEqual(directives, {"no-cache", "private"})
                        else:
                            self.assertLessEqual({"no-store", "private"}, directives)

    def test_refused_roles_get_404_before_their_input_is_even_looked_at(self):
        # A 400/422 about the input would tell an outsider that the account exists, and
        # would mean the view validated before checking who is asking.
        bad = {"amount": "abc", "email": "not-an-address", "before": "x", "name": ""}
        for pattern in account_url_patterns():
            for (method, _, expected), role in product(rows(pattern.name), ROLES):
                if expected[role] != 404:
                    continue
                self.client.force_login(self.users[role])
                with self.subTest(url=pattern.name, role=role, method=method):
                    response = self.request(method, self.url_for(pattern, role), bad)
                    self.assertEqual(response.status_code, 404)

    def test_nothing_was_written_by_anyone_refused(self):
        balances = dict(Account.objects.values_list("pk", "balance"))
        for pattern in account_url_patterns():
            method, data, expected = MATRIX[pattern.name]
            for role in ("outsider", "former"):
                if expected[role] in (200, 303):
                    continue
                self.client.force_login(self.users[role])
                # Not rolled back: a refused request must not have changed anything.
                getattr(self.client, method)(self.url_for(pattern, role), self.data(data))
        self.assertEqual(dict(Account.objects.values_list("pk", "balance")), balances)
        self.assertEqual(Invitation.objects.filter(state="pending").count(), 1)
        holders = self.account.memberships.current().values_list("user__email", flat=True)
        self.assertEqual(sorted(holders), ["alice@example.com", "bob@example.com"])
