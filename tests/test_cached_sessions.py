"""With REDIS_URL, sessions are read from Redis (and written through to the database), and
signing out on one server process ends the session on every other one."""

from __future__ import annotations

from django.conf import settings
from django.test import TransactionTestCase
from django.urls import reverse

from tests.base import PASSWORD, make_user
from tests.servers import Visitor, gunicorn, redis_server

SESSION_KEYS = "*django.contrib.sessions.cached_db*"
SIGNED_IN = "Your joint accounts"


class CachedSessionTests(TransactionTestCase):
    def setUp(self):
        make_user("alice@example.com")

    def test_without_redis_sessions_stay_in_the_database(self):
        self.assertEqual(settings.SESSION_ENGINE, "django.contrib.sessions.backends.db")

    def test_a_sign_out_on_one_server_ends_the_session_on_the_other(self):
        import redis

        accounts = reverse("accounts:list")
        with redis_server() as url, gunicorn(REDIS_URL=url) as one, gunicorn(REDIS_URL=url) as two:
            cache = redis.Redis.from_url(url)
            alice = Visitor(one)
            status, _ = alice.post_form(
                reverse("account_login"), {"login": "alice@example.com", "password": PASSWORD}
            )
            self.assertEqual(status, 200)
            self.assertIn(SIGNED_IN, alice.get(accounts)[1])
            self.assertEqual(len(cache.keys(SESSION_KEYS)), 1)
            # The same session cookie, kept by someone else (another device, a thief), used
            # on server one after alice has signed out on server two.
            copy = Visitor(one)
            for cookie in alice.cookies:
                copy.cookies.set_cookie(cookie)
            self.assertIn(SIGNED_IN, copy.get(accounts)[1])

            alice.base_url = two
            alice.post_form(reverse("account_logout"), {})
            self.assertEqual(cache.keys(SESSION_KEYS), [])

            _, page = copy.get(accounts)
            self.assertNotIn(SIGNED_IN, page)
            self.assertIn('name="password"', page)  # the sign-in form instead
