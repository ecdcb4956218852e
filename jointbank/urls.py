from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from jointbank.health import healthz

# The admin signs in through allauth, with its rate limits and two-factor step, instead of its
# own password-only form; staff then need two-factor before any admin page
# (accounts/two_factor.py). Replacing the bound method is allauth's documented way.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="accounts:list", permanent=False)),
    path("accounts/", include("accounts.urls")),
    path("profile/", include("profiles.urls")),
    path("auth/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages without an icon link (the admin's). Resolved per
    # request: the hashed static name exists only after collectstatic.
    path("favicon.ico", lambda request: redirect(static("img/jointbank.svg"))),
]
