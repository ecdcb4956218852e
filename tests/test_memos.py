"""Memos: what the money was for. Optional, at most 140 characters after trimming, plain text
only; stored on the entry (both halves of a transfer), covered by the hash chain, shown in the
history and the statement, searchable with `?q=`."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from decimal import Decimal
from io import StringIO

from django.core.management import CommandError, call_command

from accounts.errors import InvalidMemo
from accounts.models import Account, LedgerEntry, chain_hash
from tests.base import JointAccountTestCase
from tests.tampering import tamper

HX = {"HTTP_HX_REQUEST": "true"}
# Each would hide, reorder or break the text around it.
HIDDEN = {
    "right-to-left override": "rent\u202e gnirts",
    "left-to-right isolate": "rent \u2066x\u2069",
    "zero-width space": "ren\u200bt",
    "zero-width joiner": "ren\u200dt",
    "byte-order mark": "rent\ufeff!",
    "newline": "rent\nBcc: eve@example.com",
    "tab": "rent\there",
    "NUL": "rent\x00",
    "bell": "rent\x07",
    "line separator": "rent\u2028more",
    "private use": "rent\ue000",
}


def shown(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="entry-(\d+)"', response.content.decode())]


def statement_rows(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


class MemoFormTests(JointAccountTestCase):
    def ledger(self):
        return (self.balance(), LedgerEntry.objects.count())

    def test_a_memo_is_trimmed_and_stored_on_the_entry(self):
        response = self.client.post(self.url("deposit"), {"amount": "5.00", "memo": "  rent  "})
        self.assertEqual(response.status_code, 303)
        entry = self.account.entries.latest("pk")
        self.assertEqual(entry.memo, "rent")
        self.assertContains(self.client.get(self.url("detail")), '<span class="memo">rent</span>')

    def test_no_memo_is_fine(self):
        self.client.post(self.url("withdraw"), {"amount": "5.00"}, **HX)
        self.assertEqual(self.account.entries.latest("pk").memo, "")

    def test_140_characters_after_trimming_are_enough_and_141_are_a_422(self):
        self.client.post(self.url("deposit"), {"amount": "1.00", "memo": " " + "é" * 140 + " "})
        self.assertEqual(self.account.entries.latest("pk").memo, "é" * 140)
        before = self.ledger()
        for headers in (HX, {}):
            response = self.client.post(
                self.url("deposit"), {"amount": "1.00", "memo": "x" * 141}, **headers
            )
            self.assertContains(
                response, "Keep the memo to 140 characters (this one has 141).", status_code=422
            )
            self.assertContains(response, 'id="deposit-memo"', status_code=422)
        self.assertEqual(self.ledger(), before)

    def test_hidden_characters_are_a_422_and_nothing_is_written(self):
        before = self.ledger()
        for what, memo in HIDDEN.items():
            for name in ("deposit", "withdraw"):
                with self.subTest(what=what, form=name):
                    response = self.client.post(
                        self.url(name), {"amount": "1.00", "memo": memo}, **HX
                    )
                    self.assertEqual(response.status_code, 422)
                    self.assertRegex(
                        response.content.decode(),
                        r"(Use letters, digits, spaces and punctuation in a memo: U\+[0-9A-F]{4}"
                        r"[^<]* is not allowed\.|Null characters are not allowed\.)",
                    )
        self.assertEqual(self.ledger(), before)

    def test_the_model_refuses_what_the_form_refuses_so_no_caller_can_skip_it(self):
        before = self.ledger()
        savings = Account.open("Savings", by=self.alice)
        calls = [
            lambda memo: self.account.deposit(Decimal("1.00"), by=self.alice, memo=memo),
            lambda memo: self.account.withdraw(Decimal("1.00"), by=self.alice, memo=memo),
            lambda memo: self.account.transfer(savings, Decimal("1.00"), by=self.alice, memo=memo),
        ]
        for call in calls:
            for memo in [*HIDDEN.values(), "x" * 141, None, 42]:
                with self.subTest(memo=memo), self.assertRaises(InvalidMemo):
                    call(memo)
        self.assertEqual(self.ledger(), before)
        self.assertEqual(InvalidMemo.field, "memo")

    def test_both_halves_of_a_transfer_carry_it(self):
        savings = Account.open("Savings", by=self.alice)
        data = {"amount": "12.00", "to_account": savings.pk, "memo": "holiday fund"}
        self.client.post(self.url("transfer"), data, **HX)
        out = self.account.entries.latest("pk")
        self.assertEqual((out.kind, out.memo), ("transfer_out", "holiday fund"))
        self.assertEqual((out.paired_in.kind, out.paired_in.memo), ("transfer_in", "holiday fund"))
        page = self.client.get(f"/accounts/{savings.pk}/")
        self.assertContains(page, 'Transfer from Household<span class="memo">holiday fund</span>')

    def test_a_replayed_key_answers_with_the_original_entry_and_memo(self):
        data = {
            "amount": "3.00",
            "memo": "first",
            "idempotency_key": "8d6c7b0e-8a39-4f7e-a5f5-2d1b1c0f5a11",
        }
        self.client.post(self.url("deposit"), data, **HX)
        replay = self.client.post(self.url("deposit"), {**data, "memo": "second"}, **HX)
        self.assertEqual(replay["Idempotent-Replayed"], "true")
        self.assertEqual(
            list(self.account.entries.filter(amount=3).values_list("memo", flat=True)), ["first"]
        )

    def test_memos_are_escaped_in_the_page(self):
        self.account.deposit(Decimal("1.00"), by=self.bob, memo="<script>alert(1)</script>")
        page = self.client.get(self.url("detail"))
        self.assertContains(page, "&lt;script&gt;alert(1)&lt;/script&gt;")
        self.assertNotContains(page, "<script>alert(1)</script>")


class MemoHashChainTests(JointAccountTestCase):
    def test_the_memo_is_in_the_hash_and_older_entries_keep_theirs(self):
        entry = self.account.deposit(Decimal("2.00"), by=self.bob, memo='rent "May" | utilities')
        plain = self.account.entries.get(seq=1)  # no memo: hashed exactly as before memos
        fields = [
            plain.account_id, plain.seq, plain.kind, f"{plain.amount:.2f}",
            f"{plain.balance_after:.2f}", plain.created_by_id,
            plain.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "", "", "", "0" * 64,
        ]  # fmt: skip
        self.assertEqual(
            plain.hash, hashlib.sha256("|".join(map(str, fields)).encode()).hexdigest()
        )
        # With a memo: `|memo=` and the memo as a JSON string, quotes and all.
        base = [
            entry.account_id, entry.seq, entry.kind, "2.00", f"{entry.balance_after:.2f}",
            entry.created_by_id, entry.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "", "", "",
            plain.hash,
        ]  # fmt: skip
        text = "|".join(map(str, base)) + '|memo="rent \\"May\\" | utilities"'
        self.assertEqual(entry.hash, hashlib.sha256(text.encode()).hexdigest())
        self.assertEqual(entry.hash, chain_hash(entry, plain.hash))

    def test_verify_ledger_catches_a_rewritten_memo(self):
        entry = self.account.deposit(Decimal("2.00"), by=self.bob, memo="rent")
        call_command("verify_ledger", "--account", str(self.account.pk), stdout=StringIO())
        tamper("UPDATE accounts_ledgerentry SET memo = 'groceries' WHERE id = %s", [entry.pk])
        with self.assertRaisesRegex(CommandError, f"entry id {entry.pk}.*hash does not match"):
            call_command("verify_ledger", "--account", str(self.account.pk), stdout=StringIO())

    def test_removing_a_memo_is_caught_too(self):
        entry = self.account.withdraw(Decimal("2.00"), by=self.bob, memo="rent")
        tamper("UPDATE accounts_ledgerentry SET memo = '' WHERE id = %s", [entry.pk])
        with self.assertRaisesRegex(CommandError, "hash does not match"):
            call_command("verify_ledger", "--account", str(self.account.pk), stdout=StringIO())


class MemoSearchTests(JointAccountTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.groceries = cls.account.deposit(Decimal("54.20"), by=cls.alice, memo="Groceries")
        cls.percent = cls.account.withdraw(Decimal("1.00"), by=cls.bob, memo="50% off_sale")

    def test_it_is_case_insensitive_and_finds_text_anywhere_in_the_memo(self):
        for q in ("groc", "GROC", "ocer", "Groceries"):
            with self.subTest(q=q):
                response = self.client.get(self.url("detail", q=q))
                self.assertEqual(shown(response), [self.groceries.pk])

    def test_percent_and_underscore_are_plain_characters(self):
        self.assertEqual(shown(self.client.get(self.url("detail", q="50%25"))), [self.percent.pk])
        self.assertEqual(shown(self.client.get(self.url("detail", q="f_s"))), [self.percent.pk])
        self.assertEqual(shown(self.client.get(self.url("detail", q="%25"))), [self.percent.pk])
        self.assertEqual(shown(self.client.get(self.url("detail", q="_"))), [self.percent.pk])

    def test_no_match_says_so(self):
        response = self.client.get(self.url("detail", q="cinema"))
        self.assertEqual(shown(response), [])
        self.assertContains(response, "No transactions match these filters.")


class DoneWhenTests(JointAccountTestCase):
    """The issue's "done when": alice deposits "groceries", bob withdraws "rent"."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()  # alice deposited 1000.00 when the account was set up

    def test_memos_search_panel_and_names(self):
        self.client.post(self.url("deposit"), {"amount": "54.20", "memo": "groceries"}, **HX)
        self.client.force_login(self.bob)
        self.client.post(self.url("withdraw"), {"amount": "700.05", "memo": "rent"}, **HX)
        groceries, rent = self.account.entries.filter(seq__in=[2, 3]).order_by("seq")

        page = self.client.get(self.url("detail"))
        history = page.content.decode().split('id="history-rows"')[1].split("</tbody>")[0]
        self.assertIn('<span class="memo">groceries</span>', history)
        self.assertIn('<span class="memo">rent</span>', history)
        # Names, not addresses.
        self.assertIn("<td>Alice</td>", history)
        self.assertIn("<td>Bob</td>", history)
        self.assertNotIn("@example.com", history)

        rows = statement_rows(self.client.get(self.url("statement")))
        memos = {row["seq"]: row["memo"] for row in rows if row["seq"]}
        self.assertEqual(memos, {"1": "", "2": "groceries", "3": "rent"})

        self.assertEqual(shown(self.client.get(self.url("detail", q="groc"))), [groceries.pk])
        self.assertEqual(shown(self.client.get(self.url("detail", q="rent"))), [rent.pk])

        panel = page.content.decode().split('id="contributions"')[1].split("</section>")[0]
        nets = dict(re.findall(r'data-holder-id="(\d+)" data-net="([^"]+)"', panel))
        self.assertEqual(nets, {str(self.alice.pk): "1054.20", str(self.bob.pk): "-700.05"})
        self.assertIn("Alice", panel)
        self.assertIn("Bob", panel)
        self.assertNotIn("@", panel)
