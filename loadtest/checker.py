"""Accounts for every operation of a chaos run against what the database holds."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal

CREDITS = {"deposit", "interest", "transfer_in"}


@dataclass
class Report:
    text: str
    violations: list[str]


def ledger_has_keys(conn) -> bool:
    """Whether ledger rows carry the idempotency key of the request that wrote them."""
    return bool(
        conn.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'accounts_ledgerentry' AND column_name = 'idempotency_key'"
        ).fetchone()
    )


def has_approvals(conn) -> bool:
    """Whether the schema has approval requests (and accounts their holds)."""
    return bool(
        conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'accounts_approvalrequest'"
        ).fetchone()
    )


def _signed(kind, amount):
    return amount if kind in CREDITS else -amount


def check(run, conn, keyed: bool | None = None) -> Report:
    """`keyed`: match operations by idempotency key (the default when the ledger stores keys)
    or by account, kind and amount."""
    has_keys = ledger_has_keys(conn)
    keyed = has_keys if keyed is None else keyed
    key_column = "idempotency_key::text" if has_keys else "NULL"
    rows = conn.execute(
        f"SELECT id, account_id, kind, amount, balance_after, {key_column} "
        "FROM accounts_ledgerentry ORDER BY id"
    ).fetchall()
    balances = dict(conn.execute("SELECT id, balance FROM accounts_account").fetchall())
    postings = conn.execute(
        "SELECT account_id, period, entry_id FROM accounts_interestposting"
    ).fetchall()
    approvals = has_approvals(conn)
    requests, held = [], {}
    if approvals:
        requests = conn.execute(
            "SELECT id, account_id, idempotency_key::text, state, amount, entry_id, "
            "expires_at < now() FROM accounts_approvalrequest"
        ).fetchall()
        held = dict(conn.execute("SELECT id, held FROM accounts_account").fetchall())
    # An approved request's entry carries no key of its own: it is the request's operation's.
    key_of_entry = {entry: key for _, _, key, _, _, entry, _ in requests if entry is not None}

    # --- find every operation in the ledger ---------------------------------------------------
    money_ops = [op for op in run.operations if op.kind not in ("read", "decide") and op.attempts]
    decisions = [op for op in run.operations if op.kind == "decide" and op.attempts]
    reads = [op for op in run.operations if op.kind == "read" and op.attempts]
    found = defaultdict(list)  # op id -> ledger rows
    by_key = {op.key: op for op in money_ops}
    by_amount = {
        (account, kind, op.amount): op for op in money_ops for account, kind in op.expected_rows()
    }
    interest_rows = {}
    phantoms = []
    for row in rows:
        entry_id, account, kind, amount, _, key = row
        if entry_id <= run.baseline:
            continue  # the fixtures' opening deposits
        if kind == "interest":
            interest_rows[entry_id] = row
            continue
        key = key or key_of_entry.get(entry_id)
        op = by_key.get(key) if keyed else by_amount.get((account, kind, amount))
        if op is None or (account, kind) not in op.expected_rows() or op.amount != amount:
            phantoms.append(entry_id)
        else:
            found[op.id].append((account, kind))

    outcomes = Counter(op.outcome for op in money_ops)
    # A request that was made (202) moves money only once approved: see the request checks.
    lost = [
        op for op in money_ops if op.outcome == "ok" and not found[op.id] and op.kind != "request"
    ]
    duplicated = [op for op in money_ops if len(found[op.id]) > len(op.expected_rows())]
    # A transfer whose two sides did not both commit: money created or destroyed.
    half_applied = [
        op
        for op in money_ops
        if found[op.id] and sorted(set(found[op.id])) != sorted(op.expected_rows())
    ]
    transfer_out = sum(
        (r[3] for r in rows if r[0] > run.baseline and r[2] == "transfer_out"), Decimal("0.00")
    )
    transfer_in = sum(
        (r[3] for r in rows if r[0] > run.baseline and r[2] == "transfer_in"), Decimal("0.00")
    )
    failed_but_applied = [op for op in money_ops if op.outcome == "rejected" and found[op.id]]
    ever_unknown = [op for op in money_ops if any(a.outcome == "unknown" for a in op.attempts)]
    recovered = [op for op in ever_unknown if len(found[op.id]) == len(op.expected_rows())]
    unknown_not_applied = [op for op in ever_unknown if not found[op.id]]
    overdraw_ok = [op for op in money_ops if op.kind == "overdraw" and op.outcome == "ok"]

    # --- approval requests ----------------------------------------------------------------
    request_of_key = {key: row for row in requests for key in [row[2]] if key}
    request_ops = [op for op in money_ops if op.kind == "request"]
    requests_lost = [
        op for op in request_ops if op.outcome == "ok" and op.key not in request_of_key
    ]
    requests_unasked = [
        op for op in request_ops if op.outcome == "rejected" and op.key in request_of_key
    ]
    approved_without_entry = [r[0] for r in requests if (r[3] == "approved") != (r[5] is not None)]
    stuck = [r[0] for r in requests if r[3] == "pending" and r[6]]
    pending_holds = defaultdict(lambda: Decimal("0.00"))
    for _, account, _, state, amount, _, _ in requests:
        if state == "pending" and amount is not None:
            pending_holds[account] += amount
    holds_off = [
        f"account {account}: held {amount} ≠ Σ pending {pending_holds[account]}"
        for account, amount in held.items()
        if amount != pending_holds[account]
    ]
    state_of = {r[0]: r[3] for r in requests}
    done_state = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}
    decided_ok = [op for op in decisions if op.outcome == "ok"]
    decided_twice = [
        request for request, count in Counter(op.target for op in decided_ok).items() if count > 1
    ]
    decision_not_in_effect = [
        op for op in decided_ok if state_of.get(op.target) != done_state[op.action]
    ]

    # --- invariants -------------------------------------------------------------------------
    per_account = defaultdict(list)
    for row in rows:
        per_account[row[1]].append(row)
    balance_mismatch, chain_breaks, negatives = [], [], []
    for account, balance in balances.items():
        entries = per_account[account]
        total = sum((_signed(r[2], r[3]) for r in entries), Decimal("0.00"))
        if total != balance:
            balance_mismatch.append(f"account {account}: balance {balance} ≠ Σ ledger {total}")
        running = Decimal("0.00")
        for entry_id, _, kind, amount, balance_after, _ in entries:
            running += _signed(kind, amount)
            if balance_after != running:
                chain_breaks.append(f"entry {entry_id}: balance_after {balance_after} ≠ {running}")
                running = balance_after
        if balance < 0 or any(r[4] < 0 for r in entries):
            negatives.append(account)

    interest_per_period = Counter((account, period) for account, period, _ in postings)
    interest_twice = [key for key, count in interest_per_period.items() if count > 1]
    posted_entries = {entry for _, _, entry in postings if entry is not None}
    interest_unexplained = sorted(set(interest_rows) - posted_entries)

    # Conservation: the money in the bank is what came in, less what went out, plus interest.
    seed = sum((_signed(r[2], r[3]) for r in rows if r[0] <= run.baseline), Decimal("0.00"))
    applied = sum(
        (
            _signed(kind, op.amount)
            for op in money_ops
            for _, kind in (op.expected_rows() if found[op.id] else [])
        ),
        Decimal("0.00"),
    )
    interest = sum((r[3] for r in interest_rows.values()), Decimal("0.00"))
    expected_total = seed + applied + interest
    actual_total = sum(balances.values(), Decimal("0.00"))

    # --- figures ----------------------------------------------------------------------------
    seconds = run.ended - run.began
    ok_latency = sorted(
        (a.ended - a.started) * 1000 for op in money_ops for a in op.attempts if a.outcome == "ok"
    )
    read_latency = sorted(
        (a.ended - a.started) * 1000 for op in reads for a in op.attempts if a.outcome == "ok"
    )
    details = Counter(a.detail for op in run.operations for a in op.attempts if a.outcome != "ok")

    violations = []
    for label, items in [
        ("lost (ok but absent from the ledger)", lost),
        ("duplicated (in the ledger more than once)", duplicated),
        ("failed-but-applied (rejected yet in the ledger)", failed_but_applied),
        ("ledger rows no operation explains", phantoms),
        ("transfers with only one side applied", half_applied),
        ("overdrafts that succeeded", overdraw_ok),
        ("accounts whose balance ≠ Σ ledger", balance_mismatch),
        ("ledger rows whose balance_after breaks the chain", chain_breaks),
        ("accounts with a negative balance", negatives),
        ("interest posted twice for one period", interest_twice),
        ("interest entries without a posting", interest_unexplained),
        ("requests answered 202 but not stored (lost)", requests_lost),
        ("requests refused yet stored", requests_unasked),
        (
            "requests whose entry does not match their state (approved ⇔ one entry)",
            approved_without_entry,
        ),
        ("requests still pending past their expiry after the job ran (stuck)", stuck),
        ("accounts whose held ≠ Σ pending holds", holds_off),
        ("requests answered ok more than once", decided_twice),
        ("answers that were ok but are not the request's state", decision_not_in_effect),
        ("client threads that failed", run.client_errors),
    ]:
        if items:
            examples = [_short(item) for item in items[:3]]
            violations.append(f"{label}: {len(items)}, e.g. {', '.join(examples)}")
    if transfer_out != transfer_in:
        violations.append(f"transfers out {transfer_out} ≠ transfers in {transfer_in}")
    if actual_total != expected_total:
        violations.append(f"money not conserved: Σ balances {actual_total} ≠ {expected_total}")
    if not outcomes["ok"]:
        violations.append("no operation succeeded: the run did not really run")

    matched_by = "idempotency key" if keyed else "account, kind and amount (cents = op id)"
    retried = "retried with the same key" if keyed else "not retried (no idempotency keys yet)"
    conserved = "ok" if actual_total == expected_total else "VIOLATED"
    figures = [
        ("attempted", len(money_ops), f"money operations (+ {len(reads)} balance reads)"),
        ("ok", outcomes["ok"], ""),
        ("rejected", outcomes["rejected"], "4xx: insufficient funds, 409 busy (lock timeout)"),
        ("unknown at least once", len(ever_unknown), "timeout, reset, 5xx"),
        ("  recovered", len(recovered), "unknown, then found once in the ledger"),
        ("  not applied", len(unknown_not_applied), "unknown and absent: safe to retry"),
        ("  still unknown", outcomes["unknown"], "after retries"),
        ("lost", len(lost), ""),
        ("duplicated", len(duplicated), ""),
        ("failed-but-applied", len(failed_but_applied), ""),
        ("phantom ledger rows", len(phantoms), ""),
        ("half-applied transfers", len(half_applied), ""),
        ("balance ≠ Σ ledger", len(balance_mismatch), "accounts"),
        ("broken balance_after", len(chain_breaks), "ledger rows"),
        ("negative balances", len(negatives), "accounts"),
        ("interest entries", len(interest_rows), f"for {len(postings)} account-months"),
        ("interest posted twice", len(interest_twice), ""),
    ]
    if approvals:
        states = Counter(r[3] for r in requests)
        answers = Counter(f"{op.action} {op.outcome}" for op in decisions)
        figures += [
            ("requests made", len(requests), ", ".join(f"{n} {s}" for s, n in states.items())),
            ("answers", len(decisions), ", ".join(f"{n} {a}" for a, n in sorted(answers.items()))),
            ("requests lost", len(requests_lost), ""),
            ("approved ≠ one entry", len(approved_without_entry), "requests"),
            ("stuck past expiry", len(stuck), "requests"),
            ("held ≠ Σ pending holds", len(holds_off), "accounts"),
            ("answered twice", len(decided_twice), "requests"),
        ]
    lines = [
        f"chaos run: {seconds:.1f} s, {run.args.instances} gunicorn instances × "
        f"{run.args.workers} workers, {run.client_count} clients, faults: "
        f"{', '.join(run.args.faults) or 'none'}"
        + (f", app {run.args.app}" if run.args.app != "jointbank.wsgi" else ""),
        f"operations matched to ledger rows by {matched_by}; unknown outcomes {retried}",
        "",
        *(f"  {name:<22}{value:>7}  {note}".rstrip() for name, value, note in figures),
        f"  conservation          {conserved}: Σ balances {actual_total} = opening {seed}"
        f" + applied {applied} + interest {interest}; transfers out {transfer_out}"
        f" = in {transfer_in}",
        f"  throughput            {outcomes['ok'] / seconds:>7.1f}  ok money operations/s "
        f"({(outcomes['ok'] + len(read_latency)) / seconds:.1f}/s with reads)",
        f"  latency               changes p50 {_pct(ok_latency, 50):.0f} ms, "
        f"p99 {_pct(ok_latency, 99):.0f} ms; reads p50 {_pct(read_latency, 50):.0f} ms, "
        f"p99 {_pct(read_latency, 99):.0f} ms",
        f"  failed attempts by cause: {dict(details.most_common()) or 'none'}",
    ]
    if getattr(run, "expire_log", None):
        lines += ["", f"expire_requests (every few seconds): {len(run.expire_log)} runs, last:"]
        lines += [f"  {run.expire_log[-1]}"]
    if run.interest_log:
        lines += ["", "post_interest (two overlapping runs):"] + [
            f"  {x}" for x in run.interest_log
        ]
    if run.fault_log:
        lines += [
            "",
            "faults (error window: from the fault until the last request it made fail: 5xx, no "
            "answer or 409 busy):",
        ]
        lines += _fault_windows(run)
    lines += ["", "VIOLATIONS:" if violations else "no violations"] + [f"  {v}" for v in violations]
    return Report("\n".join(lines), violations)


def _short(item) -> str:
    if hasattr(item, "attempts"):  # an Operation
        tried = "/".join(attempt.detail for attempt in item.attempts)
        return f"op {item.id} {item.kind} {item.amount} on account {item.account} ({tried})"
    return str(item)


def _fault_windows(run):
    # Failed: no answer or a 5xx, or 409 "busy" (a lock timeout: safe, nothing written, but
    # the request did not go through either).
    attempts = sorted(
        (
            a
            for op in run.operations
            for a in op.attempts
            if a.outcome == "unknown" or a.detail == "409"
        ),
        key=lambda a: a.started,
    )
    lines = []
    for index, fault in enumerate(run.fault_log):
        # A request in flight when the fault struck started a little before it.
        start = fault["at"]
        end = run.fault_log[index + 1]["at"] if index + 1 < len(run.fault_log) else run.ended
        failed = [a for a in attempts if start - 0.5 <= a.started < end - 0.5]
        window = max((a.ended for a in failed), default=start) - start
        lines.append(
            f"  t={start - run.began:5.1f} s  {fault['name']:<13} {len(failed):>4} failed "
            f"requests, error window {window:5.2f} s  ({fault['note']})"
        )
    return lines


def _pct(values, percent):
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return (
        statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
        if percent < 100
        else values[-1]
    )
