from __future__ import annotations

from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from jointbank.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="accounts:list", permanent=False)),
    path("accounts/", include("accounts.urls")),
    path("auth/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages without an icon link (the admin's). Resolved per
    # request: the hashed static name exists only after collectstatic.
    path("favicon.ico", lambda request: redirect(static("img/jointbank.svg"))),
]
