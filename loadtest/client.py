"""A signed-in browser, as far as the server can tell: session and CSRF cookies, HX-Request."""

from __future__ import annotations

import http.client
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Response:
    def __init__(self, status: int, headers: dict, body: str):
        self.status, self.headers, self.body = status, headers, body


class Browser:
    """Cookies shared by every request; one new TCP connection per request (gunicorn's sync
    workers close each connection anyway), so a killed worker costs exactly one request."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, data: dict | None = None, htmx=False) -> Response:
        headers = {"Host": f"{self.host}:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if htmx:
            headers["HX-Request"] = "true"
        body = None
        if data is not None:
            body = urlencode(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            raw = connection.getresponse()
            text = raw.read().decode()
            for value in raw.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    self.cookies[name] = morsel.value
            return Response(raw.status, dict(raw.headers.items()), text)
        finally:
            connection.close()

    def sign_in(self, email: str, password: str, attempts: int = 20) -> None:
        for attempt in range(attempts):
            try:
                page = self.request("GET", "/auth/login/")
                token = CSRF_INPUT.search(page.body).group(1)
                response = self.request(
                    "POST",
                    "/auth/login/",
                    {"login": email, "password": password, "csrfmiddlewaretoken": token},
                )
                if response.status == 302 and "sessionid" in self.cookies:
                    return
                raise RuntimeError(f"sign-in as {email} answered {response.status}")
            except (OSError, http.client.HTTPException, AttributeError, RuntimeError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)  # a fault may be in progress
