from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.views import HttpResponseSeeOther

from .forms import ProfileForm
from .models import Profile, display_name


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """The signed-in user's name, and the way to their e-mail, password and two-factor pages."""
    if request.method == "GET":
        form = ProfileForm(initial={"display_name": display_name(request.user)})
        return render(request, "profiles/profile.html", {"form": form})
    form = ProfileForm(request.POST)
    if not form.is_valid():
        return render(request, "profiles/profile.html", {"form": form}, status=422)
    profile = Profile.set_name(request.user, form.cleaned_data["display_name"])
    messages.success(request, f"Saved: the other holders now see you as {profile.display_name}.")
    return HttpResponseSeeOther(reverse("profiles:profile"))
