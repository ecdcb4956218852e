"""The account page's history: which entries, filtered how, one keyset page at a time.

Filters come from the query string (`q`, `holder`, `kind`, `from`, `to`), so a filtered view
is a URL that can be reloaded, shared between the holders and followed by "Show older". A
filtered page is read newest first by the account's own entry number (`seq`), which only
indexes that start with the account can produce (ordered by id, PostgreSQL may walk the whole
table's primary key backwards, skipping other accounts' newer rows). Each filter has its index,
so a filtered page costs about the same however long the ledger is (a row in `make bench`):

- `q` (memo text, case-insensitive, ILIKE '%q%'): a trigram GIN index on the memo, or, when
  matches are frequent, the (account, seq) index read backwards until a page is full;
- `holder`: (account, created_by, seq); `kind`: (account, kind, seq);
- `from`/`to`: turned into the first and last seq of those days with two probes of the
  (account, created_at) index, so that the range is a seq range like every other page's.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

from .models import Account, LedgerEntry, Membership

DATE_RULES = "Enter a date like 2026-01-31."


class HistoryFilter(forms.Form):
    q = forms.CharField(
        label="Memo contains",
        required=False,
        max_length=140,
        error_messages={"max_length": "Search for at most 140 characters (a memo's length)."},
    )
    holder = forms.TypedChoiceField(label="Who", required=False, coerce=int, empty_value=None)
    kind = forms.ChoiceField(
        label="What",
        required=False,
        choices=[("", "Everything"), *LedgerEntry.Kind.choices],
        error_messages={"invalid_choice": "Choose one of the kinds in the list."},
    )

    def __init__(self, data, *, account: Account):
        super().__init__(data)
        self.account = account
        holder = cast(forms.TypedChoiceField, self.fields["holder"])
        # A callable: read only when a holder is asked for or the list is shown, so that the
        # live updates (which filter, but show no form) send no query for it.
        holder.choices = lambda: [("", "Anyone")] + [(u.pk, str(u)) for u in self.holders]
        holder.error_messages["invalid_choice"] = "Choose a holder from the list."

    @cached_property
    def holders(self) -> list[Any]:
        """Everyone who ever held the account: the history keeps naming former holders."""
        memberships = (
            Membership.objects.filter(account=self.account)
            .select_related("user__profile")
            .order_by("joined_at", "pk")
        )
        return list({m.user_id: m.user for m in memberships}.values())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("from"), data.get("to")
        if first and last and first > last:
            self.add_error("to", f"The end date ({last}) is before the start date ({first}).")
        return data

    @property
    def is_filtered(self) -> bool:
        return self.is_valid() and any(
            self.cleaned_data.get(name) not in (None, "") for name in self.fields
        )

    @property
    def params(self) -> list[tuple[str, str]]:
        """The filters as typed, (name, value) pairs; none when nothing (valid) is filtered."""
        if not self.is_filtered:
            return []
        values = [(name, self.data.get(name)) for name in self.fields]
        return [(name, value) for name, value in values if value]

    @property
    def page_url(self) -> str:
        """The account page with the filters as typed, empty ones left out: the URL the
        filter form pushes (a plain GET form would keep `holder=&kind=` and the like)."""
        typed = [(name, self.data.get(name)) for name in self.fields]
        query = urlencode([(name, value) for name, value in typed if value])
        url = reverse("accounts:detail", args=[self.account.pk])
        return f"{url}?{query}" if query else url

    @property
    def query(self) -> str:
        """The filters for "Show older" and the poller's URL: "&q=groc&kind=deposit" or ""."""
        return "&" + urlencode(self.params) if self.params else ""

    @property
    def first_error(self) -> str:
        return next((str(errors[0]) for errors in self.errors.values()), "")

    def entries(self, entries: QuerySet) -> QuerySet:
        """`entries` (one account's ledger) narrowed to what the filters ask for. Call it only
        on a valid form."""
        data = self.cleaned_data
        if data["q"]:
            entries = entries.filter(memo__icontains=data["q"])
        if data["holder"] is not None:
            entries = entries.filter(created_by_id=data["holder"])
        if data["kind"]:
            entries = entries.filter(kind=data["kind"])
        if data.get("from") or data.get("to"):
            entries = entries.filter(**self._seq_range(data.get("from"), data.get("to")))
        return entries

    def _seq_range(self, first: date | None, last: date | None) -> dict:
        """Days as entry numbers: created_at grows with seq within an account (both are set
        under the account's row lock), so the entries of those days are exactly a seq range."""
        zone = timezone.get_current_timezone()
        ledger = self.account.entries.all()
        bounds = {}
        if first:
            start = datetime.combine(first, time.min, tzinfo=zone)
            low = ledger.filter(created_at__gte=start).order_by("created_at", "seq")
            low_seq = low.values_list("seq", flat=True).first()
            # Nothing that late: a range that holds nothing (seq starts at 1).
            bounds["seq__gte"] = low_seq if low_seq is not None else 2**62
        if last:
            end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
            high = ledger.filter(created_at__lt=end).order_by("-created_at", "-seq")
            bounds["seq__lte"] = high.values_list("seq", flat=True).first() or 0
        return bounds


# `from` is a Python keyword, so these two are added by name.
for _name, _label in (("from", "From"), ("to", "To")):
    HistoryFilter.base_fields[_name] = forms.DateField(
        label=_label,
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": DATE_RULES},
    )
