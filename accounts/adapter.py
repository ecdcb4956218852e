from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    def _get_login_attempts_cache_key(self, request, **credentials) -> str:
        """The key of the "5 failed sign-ins per address" limit: the address alone.

        allauth prefixes it with the current site's domain, which without the sites framework
        is `request.get_host()`: the Host header, port included, which the client chooses
        (ALLOWED_HOSTS ignores the port), so each new port got five more guesses. allauth
        calls this both to count failures and to clear them after a password reset.
        """
        login = credentials.get("email", credentials.get("username", ""))
        return login.lower()
