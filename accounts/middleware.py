from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect


class HtmxLoginRedirectMiddleware:
    """Send signed-out HTMX requests to the sign-in page as a whole-page navigation.

    htmx follows a plain 302 inside the XHR and would swap the sign-in page into a fragment
    (a balance, a form); HX-Redirect makes the browser go there instead, and `next` is the
    page the user was on, not the fragment it was polling.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            getattr(request, "htmx", False)
            and response.status_code == 302
            and response["Location"].startswith(resolve_url(settings.LOGIN_URL))
        ):
            page = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(page)["Location"])
        return response
