"""DJANGO_EMAIL_URL: where the app's e-mail goes, as one URL.

    smtp://[user:password@]host[:port]             plain SMTP (port 25)
    smtp://[user:password@]host[:port]?tls=1       SMTP with STARTTLS (port 587)
    smtps://[user:password@]host[:port]            SMTP over TLS from the first byte (port 465)
    console://                                     printed on standard output (development)

User and password are percent-encoded (`@` is `%40`, `:` is `%3A`). `timeout=SECONDS` (default
10) bounds every exchange with the server: a hung mail server must not hold a worker for ever.

A few lines of our own rather than dj-email-url, whose `smtps://` means STARTTLS (not TLS on
port 465) and which quietly ignores a scheme it does not know.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

SMTP = "django.core.mail.backends.smtp.EmailBackend"
CONSOLE = "django.core.mail.backends.console.EmailBackend"
DEFAULT_TIMEOUT = 10
YES, NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def email_settings(url: str) -> dict:
    """Django's EMAIL_* settings for `url`. Refuses (ImproperlyConfigured) anything it does not
    understand; the message never repeats the URL, which may hold a password."""
    parts = urlsplit(url)
    if parts.scheme == "console":
        return {"EMAIL_BACKEND": CONSOLE}
    if parts.scheme not in ("smtp", "smtps"):
        raise _refused(f"the scheme must be smtp, smtps or console, not {parts.scheme!r}")
    try:
        port = parts.port
    except ValueError:
        raise _refused("the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise _refused("it names no mail server (smtp://host:port)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"tls", "timeout"}
    if unknown:
        raise _refused(f"unknown option {sorted(unknown)[0]!r} (known: tls, timeout)")
    tls = _flag(query, "tls")
    if tls and parts.scheme == "smtps":
        raise _refused("smtps:// is TLS already; tls=1 is for STARTTLS on smtp://")
    ssl = parts.scheme == "smtps"
    return {
        "EMAIL_BACKEND": SMTP,
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port or (465 if ssl else 587 if tls else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": tls,
        "EMAIL_USE_SSL": ssl,
        "EMAIL_TIMEOUT": _timeout(query),
    }


def _flag(query: dict, name: str) -> bool:
    value = query.get(name, ["0"])[-1].lower()
    if value not in YES | NO:
        raise _refused(f"{name} must be 1 or 0, not {value!r}")
    return value in YES


def _timeout(query: dict) -> int:
    value = query.get("timeout", [str(DEFAULT_TIMEOUT)])[-1]
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 600:
        raise _refused(f"timeout must be a number of seconds from 1 to 600, not {value!r}")
    return int(value)


def _refused(reason: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"DJANGO_EMAIL_URL is not usable: {reason}.")
