from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from jointbank.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="accounts:list", permanent=False)),
    path("accounts/", include("accounts.urls")),
    path("auth/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
