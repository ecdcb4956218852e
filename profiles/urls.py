from __future__ import annotations

from django.urls import path

from . import views

app_name = "profiles"

urlpatterns = [
    path("", views.profile, name="profile"),
]
