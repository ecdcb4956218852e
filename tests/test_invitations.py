from __future__ import annotations

import re
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.errors import HolderLimitReached
from accounts.models import Account, Invitation, Membership
from tests.base import HX, PASSWORD, JointAccountTestCase, make_user


class InvitationTestCase(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.dave = make_user("dave@example.com")

    def invite(self, email="dave@example.com", **headers):
        with self.captureOnCommitCallbacks(execute=True):
            return self.client.post(self.url("invite"), {"email": email}, **headers)

    def sent_link(self) -> str:
        """The path of the accept link in the last e-mail sent."""
        return re.search(r"http://testserver(/accounts/invitations/\S+/)", mail.outbox[-1].body)[1]

    def invitation(self) -> Invitation:
        return Invitation.objects.latest("pk")

    def holders(self, account=None):
        account = account or self.account
        current = account.memberships.current().order_by("user__email")
        return list(current.values_list("user__email", flat=True))


class InviteTests(InvitationTestCase):
    def test_it_stores_the_invitation_and_mails_the_link_after_commit(self):
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.client.post(self.url("invite"), {"email": " Dave@Example.com "})
            self.assertEqual(len(mail.outbox), 0)  # nothing is sent before COMMIT

        self.assertRedirects(response, self.url("detail"), status_code=303)
        invitation = self.invitation()
        self.assertEqual(
            (invitation.email, invitation.invited_by, invitation.state),
            ("dave@example.com", self.alice, "pending"),
        )
        self.assertAlmostEqual(
            invitation.expires_at - invitation.created_at, timedelta(days=7), delta=timedelta(0)
        )
        for callback in callbacks:
            callback()
        [message] = mail.outbox
        self.assertEqual(message.to, ["dave@example.com"])
        # The inviter by name, and her address in the body, so the invitee can tell who it is.
        self.assertIn("Alice invites you", message.subject)
        self.assertIn("Alice (alice@example.com) invites you", message.body)
        self.assertIn("Household", message.subject)
        self.assertIn(self.sent_link(), message.body)

    def test_only_a_hash_of_the_token_is_stored_and_tokens_are_unguessable(self):
        self.invite()
        token = self.sent_link().rstrip("/").split("/")[-1]
        invitation = self.invitation()
        self.assertGreaterEqual(len(token), 43)  # 32 random bytes
        self.assertNotEqual(invitation.token_hash, token)
        self.assertNotIn(token, str(Invitation.objects.values().get(pk=invitation.pk)))
        self.assertTrue(invitation.token_matches(token))
        self.assertFalse(invitation.token_matches(token[:-1] + ("A" if token[-1] != "A" else "B")))

        self.invite("erin@example.com")
        self.assertNotEqual(self.sent_link().rstrip("/").split("/")[-1], token)

    def test_holders_see_pending_invitations_with_a_revoke_button(self):
        self.invite()
        self.client.force_login(self.bob)
        response = self.client.get(self.url("detail"))
        invitation = self.invitation()
        self.assertContains(response, f'id="invitation-{invitation.pk}"')
        self.assertContains(response, "dave@example.com")
        self.assertContains(
            response, reverse("accounts:revoke", args=[self.account.pk, invitation.pk])
        )

    def test_htmx_answers_with_the_sharing_section(self):
        response = self.invite(**HX)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'id="sharing"')
        self.assertContains(response, "Invitation sent to dave@example.com")
        self.assertContains(response, 'id="invitation-')
        self.assertNotContains(response, "<html")
        self.assertEqual(len(mail.outbox), 1)

    def test_a_bad_address_is_a_422_and_nothing_is_stored(self):
        for email in (
            "",
            "   ",
            "dave",
            "dave@",
            "@example.com",
            "a b@example.com",
            "x" * 250 + "@example.com",
            "İ" * 130 + "@example.com",  # 142 characters, 272 once lower-cased
            "İnfo@example.com",  # valid, but lower-cased "i̇nfo" (with a combining dot) is not
        ):
            for headers in (HX, {}):
                with self.subTest(email=email, htmx=bool(headers)):
                    response = self.invite(email, **headers)
                    self.assertContains(response, 'id="invite-error"', status_code=422)
                    self.assertEqual(bool(headers), b"<html" not in response.content)
        self.assertFalse(Invitation.objects.exists())
        self.assertEqual(mail.outbox, [])

    def test_inviting_a_holder_is_a_form_error(self):
        EmailAddress.objects.create(user=self.bob, email="bobby@example.net", verified=True)
        for email in (
            "bob@example.com",
            "BOB@example.com",
            "alice@example.com",
            "bobby@example.net",
        ):
            with self.subTest(email=email):
                response = self.invite(email, **HX)
                self.assertContains(response, "already holds this account", status_code=422)
        self.assertFalse(Invitation.objects.exists())

    def test_an_address_a_holder_added_without_verifying_it_does_not_block_an_invitation(self):
        # Bob cannot keep dave out by claiming dave's address on his own user.
        EmailAddress.objects.create(user=self.bob, email="dave@example.com", verified=False)
        self.bob.email = "dave@example.com"  # even as his login address
        self.bob.save()
        response = self.invite("dave@example.com")
        self.assertRedirects(response, self.url("detail"), status_code=303)
        self.assertEqual(self.invitation().email, "dave@example.com")
        self.assertEqual(mail.outbox[-1].to, ["dave@example.com"])

    def test_a_second_pending_invitation_to_the_same_address_is_a_form_error(self):
        self.invite()
        response = self.invite("DAVE@example.com")
        self.assertContains(response, "already has a pending invitation", status_code=422)
        self.assertEqual(Invitation.objects.count(), 1)
        self.assertEqual(len(mail.outbox), 1)

    def test_an_expired_invitation_does_not_block_a_new_one(self):
        self.invite()
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        self.assertRedirects(self.invite(), self.url("detail"), status_code=303)
        states = sorted(Invitation.objects.values_list("state", flat=True))
        self.assertEqual(states, ["expired", "pending"])

    def test_the_page_lists_only_pending_invitations(self):
        self.invite()
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        self.assertNotContains(self.client.get(self.url("detail")), 'id="invitation-')


class AcceptTests(InvitationTestCase):
    def setUp(self):
        super().setUp()
        self.invite()
        self.link = self.sent_link()
        self.client.force_login(self.dave)

    def test_the_invitee_sees_who_invites_them_to_what(self):
        response = self.client.get(self.link)
        self.assertContains(response, "<strong>Alice</strong> (alice@example.com) invites you")
        self.assertContains(response, "Household")
        self.assertContains(response, f'action="{self.link}accept/"')
        self.assertContains(response, f'action="{self.link}decline/"')

    def test_accepting_makes_the_invitee_a_holder(self):
        response = self.client.post(self.link + "accept/", follow=True)

        self.assertEqual(response.redirect_chain, [(self.url("detail"), 303)])
        self.assertContains(response, "You are now a holder of Household")
        self.assertEqual(
            self.holders(), ["alice@example.com", "bob@example.com", "dave@example.com"]
        )
        self.assertEqual(self.invitation().state, "accepted")
        self.assertIsNotNone(self.invitation().answered_at)

    def test_the_link_works_once(self):
        self.client.post(self.link + "accept/")
        for method, url in (
            ("get", self.link),
            ("post", self.link + "accept/"),
            ("post", self.link + "decline/"),
        ):
            with self.subTest(method=method, url=url):
                response = getattr(self.client, method)(url)
                self.assertContains(response, "has already been accepted", status_code=410)
        self.assertEqual(Membership.objects.filter(user=self.dave).count(), 1)

    def test_declining_changes_nothing_but_the_invitation(self):
        response = self.client.post(self.link + "decline/")
        self.assertRedirects(response, reverse("accounts:list"), status_code=303)
        self.assertEqual(self.invitation().state, "declined")
        self.assertEqual(self.holders(), ["alice@example.com", "bob@example.com"])
        self.assertContains(
            self.client.post(self.link + "accept/"), "was declined", status_code=410
        )

    def test_a_wrong_user_gets_a_clear_403_and_nothing_changes(self):
        self.client.force_login(self.carol)
        for method, url in (
            ("get", self.link),
            ("post", self.link + "accept/"),
            ("post", self.link + "decline/"),
        ):
            with self.subTest(method=method, url=url):
                response = getattr(self.client, method)(url)
                self.assertContains(response, "was sent to dave@example.com", status_code=403)
                self.assertContains(response, "carol@example.com", status_code=403)
        self.assertEqual(self.invitation().state, "pending")
        self.assertEqual(self.holders(), ["alice@example.com", "bob@example.com"])

    def test_an_unverified_address_is_not_enough(self):
        EmailAddress.objects.create(user=self.carol, email="dave@example.org", verified=False)
        Invitation.objects.update(email="dave@example.org")
        self.client.force_login(self.carol)
        self.assertEqual(self.client.post(self.link + "accept/").status_code, 403)
        EmailAddress.objects.filter(email="dave@example.org").update(verified=True)
        self.assertEqual(self.client.post(self.link + "accept/").status_code, 303)

    def test_an_expired_invitation_is_410_and_marked_expired(self):
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        response = self.client.post(self.link + "accept/")
        self.assertContains(response, "has expired", status_code=410)
        self.assertEqual(self.invitation().state, "expired")
        self.assertEqual(self.holders(), ["alice@example.com", "bob@example.com"])

    def test_a_revoked_invitation_is_410(self):
        self.client.force_login(self.alice)
        self.client.post(reverse("accounts:revoke", args=[self.account.pk, self.invitation().pk]))
        self.client.force_login(self.dave)
        response = self.client.post(self.link + "accept/")
        self.assertContains(response, "was withdrawn", status_code=410)
        self.assertEqual(self.holders(), ["alice@example.com", "bob@example.com"])

    def test_a_wrong_token_or_id_is_404_and_looks_the_same(self):
        pk = self.invitation().pk
        token = self.link.rstrip("/").split("/")[-1]
        wrong_token = reverse("accounts:invitation", args=[pk, token[:-2] + "xx"])
        unknown_id = reverse("accounts:invitation", args=[pk + 1000, token])
        pages = []
        for method, url in (
            ("get", wrong_token),
            ("get", unknown_id),
            ("post", wrong_token + "accept/"),
            ("post", unknown_id + "decline/"),
        ):
            with self.subTest(method=method, url=url):
                response = getattr(self.client, method)(url)
                self.assertContains(response, "This invitation link is not valid", status_code=404)
                main = response.content.decode().split("<h1>")[1].split("</main>")[0]
                pages.append(main)
        self.assertEqual(len(set(pages)), 1)  # nothing tells an existing id from a made-up one
        self.assertEqual(self.invitation().state, "pending")

    def test_a_full_account_refuses_at_accept_time(self):
        with self.settings(JOINTBANK_MAX_HOLDERS=3):
            self.account.add_holder(self.carol)
            response = self.client.post(self.link + "accept/")
        self.assertContains(response, "at most 3 holders", status_code=409)
        self.assertEqual(self.invitation().state, "pending")
        self.assertNotIn("dave@example.com", self.holders())

    def test_an_account_closed_since_refuses(self):
        Account.objects.filter(pk=self.account.pk).update(closed_at=timezone.now())
        response = self.client.post(self.link + "accept/")
        self.assertContains(response, "is read-only", status_code=409)
        self.assertNotIn("dave@example.com", self.holders())

    def test_a_holder_who_left_can_be_invited_again_and_rejoins_with_a_new_membership(self):
        self.client.post(self.link + "accept/")
        self.client.post(self.url("leave"))
        self.assertNotIn("dave@example.com", self.holders())
        self.client.force_login(self.alice)
        self.invite()
        self.client.force_login(self.dave)
        self.assertEqual(self.client.post(self.sent_link() + "accept/").status_code, 303)
        periods = Membership.objects.filter(user=self.dave).order_by("pk")
        self.assertEqual([m.left_at is None for m in periods], [False, True])


class RevokeTests(InvitationTestCase):
    def setUp(self):
        super().setUp()
        self.invite()
        self.revoke_url = reverse("accounts:revoke", args=[self.account.pk, self.invitation().pk])

    def test_a_holder_revokes_and_the_link_stops_working(self):
        self.client.force_login(self.bob)  # any holder, not only the one who invited
        response = self.client.post(self.revoke_url, follow=True)

        self.assertEqual(response.redirect_chain, [(self.url("detail"), 303)])
        self.assertContains(response, "The invitation to dave@example.com is revoked")
        self.assertNotContains(response, 'id="invitation-')
        self.assertEqual(self.invitation().state, "revoked")
        self.client.force_login(self.dave)
        self.assertEqual(self.client.get(self.sent_link()).status_code, 410)

    def test_with_htmx_it_answers_with_the_sharing_section(self):
        response = self.client.post(self.revoke_url, **HX)
        self.assertContains(response, 'id="sharing"')
        self.assertNotContains(response, 'id="invitation-')
        self.assertNotContains(response, "<html")

    def test_revoking_an_invitation_answered_meanwhile_is_a_409_the_page_shows(self):
        self.client.force_login(self.dave)
        self.client.post(self.sent_link() + "accept/")
        self.client.force_login(self.alice)
        for headers in (HX, {}):
            with self.subTest(htmx=bool(headers)):
                response = self.client.post(self.revoke_url, **headers)
                self.assertContains(response, "has already been accepted", status_code=409)
        self.assertEqual(self.invitation().state, "accepted")

    def test_an_invitation_of_another_account_is_404(self):
        other = Account.open("Trip", by=self.alice)
        url = reverse("accounts:revoke", args=[other.pk, self.invitation().pk])
        self.assertEqual(self.client.post(url).status_code, 404)
        self.assertEqual(self.invitation().state, "pending")


class HolderLimitTests(InvitationTestCase):
    @override_settings(JOINTBANK_MAX_HOLDERS=3)
    def test_pending_invitations_count_towards_the_limit_when_inviting(self):
        self.assertEqual(self.invite().status_code, 303)  # 2 holders + 1 pending = 3
        response = self.invite("erin@example.com", **HX)
        self.assertContains(response, "at most 3 holders", status_code=409)
        self.assertEqual(Invitation.objects.count(), 1)

    @override_settings(JOINTBANK_MAX_HOLDERS=2)
    def test_a_full_account_cannot_invite(self):
        response = self.invite()
        self.assertContains(response, "at most 2 holders", status_code=409)
        self.assertFalse(Invitation.objects.exists())

    def test_the_default_limit_is_ten_holders(self):
        for n in range(8):
            self.account.add_holder(make_user(f"h{n}@example.com"))
        with self.assertRaises(HolderLimitReached):
            self.account.add_holder(self.carol)
        self.assertEqual(len(self.holders()), 10)


class SignedOutInviteeTests(InvitationTestCase):
    def setUp(self):
        super().setUp()
        self.invite("frank@example.com")
        self.link = self.sent_link()
        self.client.logout()
        mail.outbox.clear()

    def test_it_signs_in_and_comes_back_to_the_invitation(self):
        make_user("frank@example.com")
        response = self.client.get(self.link)
        login = reverse("account_login")
        self.assertRedirects(response, f"{login}?next={self.link}", fetch_redirect_response=False)
        self.assertContains(self.client.get(response["Location"]), f'value="{self.link}"')

        signed_in = self.client.post(
            login, {"login": "frank@example.com", "password": PASSWORD, "next": self.link}
        )
        self.assertRedirects(signed_in, self.link)
        self.assertEqual(self.client.post(self.link + "accept/").status_code, 303)
        self.assertIn("frank@example.com", self.holders())

    def test_a_newcomer_signs_up_verifies_the_address_and_comes_back(self):
        login_page = self.client.get(reverse("account_login") + f"?next={self.link}")
        signup = reverse("account_signup")
        self.assertContains(login_page, f"{signup}?next=")  # the sign-up link keeps `next`

        response = self.client.post(
            signup,
            {
                "display_name": "Frank",
                "email": "frank@example.com",
                "password1": "a-long-new-password-42",
                "password2": "a-long-new-password-42",
                "next": self.link,
            },
        )
        self.assertEqual(response.status_code, 302)  # to "check your e-mail"
        confirm = re.search(r"http://testserver(/auth/\S+)", mail.outbox[-1].body)[1]
        confirmed = self.client.post(confirm)
        self.assertRedirects(confirmed, self.link, fetch_redirect_response=False)

        self.assertContains(self.client.get(self.link), "invites you to become a holder")
        self.assertEqual(self.client.post(self.link + "accept/").status_code, 303)
        self.assertIn("frank@example.com", self.holders())
