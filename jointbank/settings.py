"""jointbank settings: one module, configured from the environment (see README)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from jointbank.email_url import email_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    """A whole number of at least 1 (a limit); anything else is refused at start-up."""
    value = env(name) or str(default)
    if not (value.isascii() and value.isdigit() and int(value) >= 1):
        raise ImproperlyConfigured(f"{name} must be a whole number of at least 1, not {value!r}.")
    return int(value)


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it (50 or more random characters) to run with "
            "DEBUG off, or set DJANGO_DEBUG=1 for development."
        )
    SECRET_KEY = "development-only-not-secret"  # only ever used with DEBUG on

# The key signs sessions, password-reset links and CSRF tokens, and a short one can be found
# offline from any of them. Django's deploy check asks for 50 characters; production does not
# start with fewer.
if not DEBUG and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY is too short ({len(SECRET_KEY)} characters): use at least 50 "
        "random characters, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

ALLOWED_HOSTS = [
    host.strip()
    for host in env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # For the memo search index: OpClass expressions (gin_trgm_ops on UPPER(memo)).
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "csp",
    # The background worker's queue (procrastinate): its tables come with `manage.py migrate`.
    "procrastinate.contrib.django",
    "accounts",
    "profiles",
    "notifications",
]

MIDDLEWARE = [
    # Outermost, so that it times and logs the response every other middleware produced.
    "jointbank.request_log.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.SignInRedirectMiddleware",
    # Cache-Control: no-store, private on every answer of the accounts app.
    "accounts.middleware.PrivatePagesMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # After authentication, messages and htmx; inside SignInRedirectMiddleware, which turns
    # the sign-in redirect of an expired session into HX-Redirect for htmx.
    "accounts.session_expiry.SessionExpiryMiddleware",
    "accounts.two_factor.TwoFactorRequiredMiddleware",
]

ROOT_URLCONF = "jointbank.urls"
WSGI_APPLICATION = "jointbank.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# --- Database: PostgreSQL only -------------------------------------------------------------
# Row locks (select_for_update) are what keep concurrent balance changes from losing money,
# and SQLite silently ignores them. So anything but PostgreSQL is refused outright.
# Importing the settings starts nothing: the Makefile's targets and the test run pass the
# embedded PostgreSQL's URL (`python -m jointbank.embedded_db run -- ...`). Production must say
# where its database is; in development, manage.py and pytest ask for it in one line.
DATABASE_URL = env("DATABASE_URL")
if not DATABASE_URL and not DEBUG:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Set it to your PostgreSQL (postgres://user@host:5432/name) "
        "to run with DEBUG off; jointbank starts no database of its own."
    )


def database(url: str) -> dj_database_url.DBConfig:
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL must point to PostgreSQL, not {config['ENGINE']}: "
            "jointbank relies on PostgreSQL row locks, which SQLite and others ignore."
        )
    options = config.setdefault("OPTIONS", {})
    # A database host that drops packets must not hang requests (and /healthz) for minutes.
    options.setdefault("connect_timeout", 5)
    # Behind PgBouncer in transaction mode a server connection is ours only for one
    # transaction, so no server-side cursors (they outlive it). Django already leaves psycopg's
    # prepared statements off. See docs/deploy.md.
    config["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("JOINTBANK_PGBOUNCER", False)
    # A worker stuck inside a transaction (a bug, a hung call) would hold its row locks for
    # ever; PostgreSQL ends such a session after this long idle in a transaction, releasing
    # them. Added to any `options` DATABASE_URL brings, not in place of them.
    idle = env("JOINTBANK_IDLE_IN_TRANSACTION_TIMEOUT", "30s")
    options["options"] = " ".join(
        filter(None, [options.get("options"), f"-c idle_in_transaction_session_timeout={idle}"])
    )
    return config


# Without a URL (development only): no database, so a stray query fails instead of starting one.
DATABASES = {"default": database(DATABASE_URL)} if DATABASE_URL else {}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth (django-allauth, e-mail as the login) ---------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "accounts:list"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
# Adds "Your name" (profiles.Profile) to allauth's sign-up form.
ACCOUNT_SIGNUP_FORM_CLASS = "profiles.forms.SignupForm"
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_GET = False  # sign-out is a POST
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
# allauth's default rate limits (e.g. 5 failed sign-ins per e-mail address in 5 minutes)
# count in the cache below, which every process shares. Behind N reverse proxies the client's
# address is the Nth from the right in X-Forwarded-For; left at 0, every client would share the
# proxy's address and its per-IP limits (docs/deploy.md).
ALLAUTH_TRUSTED_PROXY_COUNT = int(env("JOINTBANK_TRUSTED_PROXY_COUNT", "0"))

# Two-factor sign-in for every holder: an authenticator app, with recovery codes as backup.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "jointbank"

# --- Sign-in and sessions (issue 10: admin two-factor, rate-limit key, sessions) -----------
# The admin's sign-in goes through allauth (jointbank/urls.py), so staff get its rate limits
# and two-factor step; staff need an authenticator before any admin page, and so does every
# holder before any account page when JOINTBANK_REQUIRE_MFA is on (accounts/two_factor.py).
JOINTBANK_REQUIRE_MFA = env_bool("JOINTBANK_REQUIRE_MFA", False)
# Keys the sign-in failure count by the address alone, not by a Host header the client picks
# (accounts/adapter.py); the sign-up form hashes a password on every path (accounts/forms.py).
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}


def env_seconds(name: str, default: int) -> int:
    value = env(name, str(default))
    if not value.isdigit() or int(value) == 0:
        raise ImproperlyConfigured(f"{name} must be a whole number of seconds, e.g. {default}.")
    return int(value)


# A sign-in lasts until the browser closes, JOINTBANK_SESSION_IDLE_TIMEOUT without a user
# action (the balance poll does not count), or JOINTBANK_SESSION_MAX_AGE after signing in,
# whichever comes first (accounts/session_expiry.py). JOINTBANK_REMEMBER_ME=1 offers allauth's
# "Remember me", which keeps the cookie across browser restarts (still within both limits).
JOINTBANK_SESSION_IDLE_TIMEOUT = env_seconds("JOINTBANK_SESSION_IDLE_TIMEOUT", 30 * 60)
JOINTBANK_SESSION_MAX_AGE = env_seconds("JOINTBANK_SESSION_MAX_AGE", 12 * 60 * 60)
SESSION_COOKIE_AGE = JOINTBANK_SESSION_MAX_AGE
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
ACCOUNT_SESSION_REMEMBER = None if env_bool("JOINTBANK_REMEMBER_ME", False) else False
# --- end of sign-in and sessions ----------------------------------------------------------

# --- Cache: shared by every process -------------------------------------------------------
# Rate limits are counted here; a per-process cache (locmem) would give each gunicorn worker
# its own count, so an attacker would get WORKERS times the attempts. The database cache needs
# `manage.py createcachetable` (the Makefile runs it next to migrate).
REDIS_URL = env("REDIS_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "jointbank_cache"}
}
# Every request reads its session. With Redis it is read from there and written through to the
# database (a query fewer per request; the database copy survives a Redis restart). Not with
# the database cache (that read is a query too), and never with a per-process cache, where a
# sign-out on one worker would leave the session alive in the others.
if REDIS_URL:
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- E-mail: where sign-up, password-reset and invitation mail goes ---------------------------
# DJANGO_EMAIL_URL (smtp://user:password@host:587?tls=1, smtps://...:465, console://; see
# jointbank/email_url.py) or any Django backend by its path in DJANGO_EMAIL_BACKEND. With DEBUG
# off one of them is required: the console default would write password-reset links and
# invitation tokens into the logs.
EMAIL_URL = env("DJANGO_EMAIL_URL")
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND")
if EMAIL_URL and EMAIL_BACKEND:
    raise ImproperlyConfigured("Set DJANGO_EMAIL_URL or DJANGO_EMAIL_BACKEND, not both.")
if EMAIL_URL:
    # EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD,
    # EMAIL_USE_TLS, EMAIL_USE_SSL, EMAIL_TIMEOUT
    globals().update(email_settings(EMAIL_URL))
elif not EMAIL_BACKEND:
    if not DEBUG:
        raise ImproperlyConfigured(
            "No e-mail setting. Set DJANGO_EMAIL_URL (e.g. smtp://user:password@mail.example.com"
            ":587?tls=1) to run with DEBUG off: without it, password-reset links and invitation "
            "tokens would be printed into the logs."
        )
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", "jointbank <noreply@jointbank.test>")
# The site's address as people reach it, for links in e-mails the worker sends (it has no
# request to take the address from). Default: https:// and the first allowed host.
JOINTBANK_SITE_URL = env(
    "JOINTBANK_SITE_URL",
    "http://localhost:8000" if DEBUG else f"https://{ALLOWED_HOSTS[0]}" if ALLOWED_HOSTS else "",
).rstrip("/")
# allauth would prefix subjects with the request's host ("[127.0.0.1:8000] Confirm ...").
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[jointbank] "

# --- Background worker (procrastinate, on the same PostgreSQL) -----------------------------
# Tasks live in each app's `tasks.py` (found by procrastinate) and in jointbank/tasks.py.
PROCRASTINATE_IMPORT_PATHS = ["jointbank.tasks"]
JOINTBANK_PGBOUNCER = env_bool("JOINTBANK_PGBOUNCER", False)
PROCRASTINATE_WORKER_DEFAULTS = {
    # A worker hears of a new job at once through LISTEN/NOTIFY, which needs a session of its
    # own; behind PgBouncer in transaction mode it polls instead (docs/deploy.md).
    "listen_notify": not JOINTBANK_PGBOUNCER,
    "fetch_job_polling_interval": 1.0 if JOINTBANK_PGBOUNCER else 5.0,
}
PROCRASTINATE_PERIODIC_DEFAULTS = {
    # A worker that starts late (a deploy at midnight, all workers down) still defers each
    # periodic job's latest run if it is at most this old (in seconds); the queue runs each
    # run once however many workers try. So a monthly job missed on the 1st runs later that
    # month instead of waiting a month.
    "max_delay": 31 * 24 * 60 * 60,
}

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # The manifest storage needs collectstatic, which development and tests skip.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security ----------------------------------------------------------------------------
SECURE = env_bool("DJANGO_SECURE", not DEBUG)
if SECURE:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Load balancers probe over plain HTTP; a redirect would read as "unhealthy".
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Only our own files run: no inline scripts or styles, no eval (htmx's allowEval is off), and
# no framing. The TOTP QR code is an inline data: image, hence img-src data:.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

# --- Locale ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Money -------------------------------------------------------------------------------
JOINTBANK_CURRENCY = env("JOINTBANK_CURRENCY", "USD")
# Annual interest rate that `post_interest` credits monthly: Σ daily closing balances × rate / 365.
try:
    JOINTBANK_INTEREST_RATE = Decimal(env("JOINTBANK_INTEREST_RATE", "0.02"))
except ArithmeticError:  # decimal.InvalidOperation: not a number at all
    JOINTBANK_INTEREST_RATE = Decimal("NaN")
if not (JOINTBANK_INTEREST_RATE.is_finite() and 0 <= JOINTBANK_INTEREST_RATE < 1):
    raise ImproperlyConfigured(
        "JOINTBANK_INTEREST_RATE must be a yearly rate from 0 to 1, e.g. 0.02."
    )
# How long a money transaction waits for an account's row lock, and may run at all, before it
# gives up and answers 409 "busy, please retry" (PostgreSQL durations: "3s", "500ms").
JOINTBANK_LOCK_TIMEOUT = env("JOINTBANK_LOCK_TIMEOUT", "3s")
JOINTBANK_STATEMENT_TIMEOUT = env("JOINTBANK_STATEMENT_TIMEOUT", "10s")
# Holders per joint account, checked when an invitation is sent and again, under the
# account's row lock, when it is accepted.
JOINTBANK_MAX_HOLDERS = 10
# How long a request waits for another holder's approval before it expires and its hold is
# released: a number with a unit, "48h", "90m", "2d", "30s".
_ttl = re.fullmatch(r"([0-9]{1,6})([smhd])", env("JOINTBANK_APPROVAL_TTL", "48h").strip())
if not _ttl or int(_ttl[1]) == 0:
    raise ImproperlyConfigured(
        "JOINTBANK_APPROVAL_TTL must be a positive number with a unit: 48h, 90m, 2d or 30s."
    )
_unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[_ttl[2]]
JOINTBANK_APPROVAL_TTL = timedelta(**{_unit: int(_ttl[1])})

# --- Limits against flooding: invitation e-mails and accounts ---------------------------------
# Invitations are e-mails from the bank's address: each holder may send this many an hour, and
# an address may receive this many a day, on any account (revoked ones count too). Over
# either: 429 with Retry-After, nothing sent. Opening an account past the last limit: 422.
JOINTBANK_INVITATIONS_PER_HOLDER_PER_HOUR = env_int("JOINTBANK_INVITATIONS_PER_HOLDER_PER_HOUR", 10)
JOINTBANK_INVITATIONS_PER_ADDRESS_PER_DAY = env_int("JOINTBANK_INVITATIONS_PER_ADDRESS_PER_DAY", 3)
JOINTBANK_MAX_ACCOUNTS_PER_USER = env_int("JOINTBANK_MAX_ACCOUNTS_PER_USER", 20)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"bare": {"format": "%(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "requests": {"class": "logging.StreamHandler", "formatter": "bare"},
    },
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", "WARNING")},
    "loggers": {
        # Django logs every 4xx with its raw path, which can hold a secret (an invitation
        # token); the JSON request line below already records 4xx, by route. 5xx still log.
        "django.request": {"level": "ERROR"},
        # The worker's start and stop, and a line as each job starts and ends. (Other
        # procrastinate loggers stay at the root level: they would log every deferred job
        # in the web processes.)
        "procrastinate.worker": {"level": env("JOINTBANK_WORKER_LOG_LEVEL", "INFO")},
        # One JSON line per request (jointbank/request_log.py).
        "jointbank.requests": {
            "handlers": ["requests"],
            "level": env("JOINTBANK_REQUEST_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}
