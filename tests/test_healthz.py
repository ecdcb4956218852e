from __future__ import annotations

from django.test import TestCase
from django.urls import reverse

from tests.production import run_in_production
from tests.servers import shared_database_url

HEALTHZ = """
response = client.get("/healthz")
print(json.dumps({"status": response.status_code, "body": response.content.decode()}))
"""


class HealthzTests(TestCase):
    def test_it_answers_200_after_a_database_round_trip(self):
        with self.assertNumQueries(1):
            response = self.client.get(reverse("healthz"))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"ok\n")
        self.assertIn("no-cache", response["Cache-Control"])

    def test_it_answers_503_when_the_database_is_down(self):
        # A process whose database is a closed port, as when PostgreSQL has gone away; the
        # shared test database is left alone.
        down = run_in_production(
            HEALTHZ, DATABASE_URL="postgres://jointbank@127.0.0.1:9/jointbank", DJANGO_SECURE="0"
        )
        self.assertEqual(down, {"status": 503, "body": "database unreachable\n"})

    def test_the_same_process_answers_200_when_the_database_is_up(self):
        # The control for the test above: only the database URL differs.
        up = run_in_production(HEALTHZ, DATABASE_URL=shared_database_url(), DJANGO_SECURE="0")
        self.assertEqual(up, {"status": 200, "body": "ok\n"})

    def test_load_balancers_probing_over_http_are_not_redirected_to_https(self):
        result = run_in_production("""
print(json.dumps({"healthz": client.get("/healthz").status_code,
                  "page": client.get("/auth/login/").status_code}))
""")
        self.assertEqual(result["page"], 301)
        self.assertEqual(result["healthz"], 200)
