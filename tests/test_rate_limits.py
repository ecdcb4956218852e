"""allauth's sign-in rate limit counts in a cache that every server process shares."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.test import TestCase, TransactionTestCase
from django.urls import reverse

from tests.base import PASSWORD, make_user
from tests.servers import Visitor, gunicorn, redis_server

TOO_MANY = "Too many failed login attempts"
LOGIN = reverse("account_login")


class SharedRateLimitTests(TransactionTestCase):
    def setUp(self):
        make_user("alice@example.com")
        cache.clear()  # the cache table outlives the flush between TransactionTestCases

    def sign_in(self, server: str, password: str) -> str:
        status, page = Visitor(server).post_form(
            LOGIN, {"login": "alice@example.com", "password": password}
        )
        self.assertIn(status, (200, 400))  # the form again, with its error; never a 500
        return page if TOO_MANY in page or "not correct" in page else "signed in"

    def guess_on_two_servers(self, **env) -> str:
        """Five wrong passwords spread over two processes, then the right one."""
        with gunicorn(**env) as one, gunicorn(**env) as two:
            for server in (one, two, one, two, one):
                self.assertNotIn(TOO_MANY, self.sign_in(server, "wrong-password"))
            return self.sign_in(two, PASSWORD)

    def test_the_limit_holds_across_two_server_processes(self):
        self.assertEqual(
            settings.CACHES["default"]["BACKEND"], "django.core.cache.backends.db.DatabaseCache"
        )
        self.assertIn(TOO_MANY, self.guess_on_two_servers())

    def test_the_limit_holds_across_two_server_processes_on_redis(self):
        import redis

        with redis_server() as url:
            self.assertIn(TOO_MANY, self.guess_on_two_servers(REDIS_URL=url))
            # Counted in Redis, not in the database cache.
            self.assertTrue(redis.Redis.from_url(url).keys("*login_failed*"))

    def test_a_per_process_cache_would_let_the_guesses_through(self):
        # The control: with locmem each process counts alone (3 and 2 guesses, both under 5),
        # so the sixth attempt signs in. This is the failure the shared cache prevents.
        result = self.guess_on_two_servers(DJANGO_SETTINGS_MODULE="tests.settings_locmem")
        self.assertEqual(result, "signed in")


class HostHeaderTests(TestCase):
    """The per-address limit must not restart for each Host header a client makes up:
    ALLOWED_HOSTS ignores the port, and allauth keyed the count by the host, port included."""

    def setUp(self):
        make_user("alice@example.com")
        cache.clear()

    def sign_in(self, password: str, host: str):
        return self.client.post(
            LOGIN, {"login": "alice@example.com", "password": password}, HTTP_HOST=host
        )

    def test_a_new_port_in_the_host_header_brings_no_new_guesses(self):
        for _ in range(5):
            self.assertContains(self.sign_in("wrong-password", "127.0.0.1:8000"), "not correct")
        response = self.sign_in(PASSWORD, "127.0.0.1:2")
        self.assertContains(response, TOO_MANY)
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_nor_does_another_host_name(self):
        for _ in range(5):
            self.sign_in("wrong-password", "127.0.0.1")
        self.assertContains(self.sign_in(PASSWORD, "localhost"), TOO_MANY)
