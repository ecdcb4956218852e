"""Each holder chooses, per account, when the other holders' moves are e-mailed to them: on the
account page, a small form (HTMX or plain); bad values are refused with nothing changed."""

from __future__ import annotations

from decimal import Decimal

from accounts.models import Account
from notifications.models import Preference
from tests.base import JointAccountTestCase


class NotificationSettingsTests(JointAccountTestCase):
    def preference(self, user=None) -> Preference:
        return Preference.for_holder(self.account, user or self.alice)

    def test_it_is_always_by_default_and_shown_on_the_account_page(self):
        response = self.client.get(self.url("detail"))
        self.assertContains(response, 'id="notification-settings"')
        self.assertContains(
            response,
            '<input type="radio" name="when" value="always" id="notification-when_0"'
            " required checked>",
            html=True,
        )
        self.assertFalse(Preference.objects.exists())
        self.assertEqual(self.preference().when, Preference.When.ALWAYS)

    def test_it_saves_never_and_goes_back_to_the_page(self):
        response = self.client.post(self.url("notifications"), {"when": "never", "above": ""})
        self.assertRedirects(
            response, self.url("detail"), status_code=303, fetch_redirect_response=False
        )
        self.assertEqual(self.preference().when, Preference.When.NEVER)
        self.assertContains(
            self.client.get(self.url("detail")),
            "E-mails when another holder moves money: never.",
        )

    def test_it_saves_above_an_amount_with_htmx(self):
        response = self.client.post(
            self.url("notifications"),
            {"when": "above", "above": "50"},
            headers={"HX-Request": "true"},
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "E-mails when another holder moves money: only above $50.00.")
        self.assertContains(response, 'value="50.00"')
        self.assertNotContains(response, "<html")
        saved = self.preference()
        self.assertEqual((saved.when, saved.above), ("above", Decimal("50.00")))

    def test_it_is_per_holder_and_per_account(self):
        other = Account.open("Holiday", by=self.alice)
        other.memberships.create(user=self.bob)
        self.client.post(self.url("notifications"), {"when": "never"})
        self.assertEqual(self.preference().when, "never")
        self.assertEqual(self.preference(self.bob).when, "always")
        self.assertEqual(Preference.for_holder(other, self.alice).when, "always")

    def test_changing_it_again_keeps_one_row_and_drops_the_amount(self):
        self.client.post(self.url("notifications"), {"when": "above", "above": "20.00"})
        self.client.post(self.url("notifications"), {"when": "always", "above": "20.00"})
        [saved] = Preference.objects.all()
        self.assertEqual((saved.when, saved.above), ("always", None))

    def test_bad_values_are_refused_with_422_and_nothing_changed(self):
        self.client.post(self.url("notifications"), {"when": "above", "above": "75"})
        for data in (
            {"when": "sometimes"},
            {},
            {"when": "above"},
            {"when": "above", "above": ""},
            {"when": "above", "above": "0"},
            {"when": "above", "above": "-5"},
            {"when": "above", "above": "1e3"},
            {"when": "above", "above": "12.345"},
            {"when": "above", "above": "NaN"},
            {"when": "above", "above": "１０"},
            {"when": "above", "above": "99999999999"},
        ):
            for htmx in (False, True):
                with self.subTest(data=data, htmx=htmx):
                    headers = {"HX-Request": "true"} if htmx else {}
                    response = self.client.post(self.url("notifications"), data, headers=headers)
                    self.assertEqual(response.status_code, 422)
                    self.assertContains(response, 'role="alert"', status_code=422)
                    saved = self.preference()
                    self.assertEqual((saved.when, saved.above), ("above", Decimal("75.00")))

    def test_outsiders_get_404_and_change_nothing(self):
        self.client.force_login(self.carol)
        response = self.client.post(self.url("notifications"), {"when": "never"})
        self.assertEqual(response.status_code, 404)
        self.assertFalse(Preference.objects.exists())

    def test_it_needs_a_post(self):
        self.assertEqual(self.client.get(self.url("notifications")).status_code, 405)
