"""Jepsen's bank test, for jointbank: clients, faults on a schedule, and a full accounting.

Every money operation gets a unique id, an idempotency key and an amount whose cents encode
the id, so the checker can find it in the ledger: by idempotency key once the ledger stores
one, by (account, kind, amount) before that.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from . import checker, faults, stack
from .client import Browser

CLIENTS_PER_USER = 4
# Requests expire this soon in a chaos run (the servers and the job get it), so that expiry
# races the clients' approvals too; the job runs every EXPIRE_EVERY seconds, as the worker
# would run it every minute.
APPROVAL_TTL = "12s"
EXPIRE_EVERY = 3.0
# The fixture's approval threshold (loadtest/fixtures.py): "request" operations ask for more.
THRESHOLD = Decimal("500.00")
DECISION_URL = re.compile(r'action="(/accounts/[0-9]+/requests/([0-9]+)/(approve|reject|cancel)/)"')
REQUEST_TIMEOUT = 10.0  # a SIGSTOPped worker holds its requests this long before we give up
RETRIES = 6
DATA_BALANCE = re.compile(r'data-balance="([0-9.]+)"')


@dataclass
class Attempt:
    started: float
    ended: float
    outcome: str  # ok | rejected | unknown
    detail: str  # status code or error


@dataclass
class Operation:
    id: int
    kind: str  # deposit | withdraw | overdraw (a withdrawal the balance cannot cover) | transfer
    #            | request (a withdrawal above the threshold: it waits for approval) | read
    #            | decide (approve, reject or cancel a pending request seen on the page)
    account: int
    instance: int
    amount: Decimal | None = None
    target: int | None = None  # a transfer's receiving account; the request a decision answers
    action: str = ""  # a decision's: approve | reject | cancel
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return self.attempts[-1].outcome

    def expected_rows(self) -> list[tuple[int, str]]:
        """The (account, kind) ledger rows this operation writes when it is applied."""
        if self.kind == "transfer":
            return [(self.account, "transfer_out"), (self.target, "transfer_in")]
        if self.kind == "decide":
            return []
        return [(self.account, "deposit" if self.kind == "deposit" else "withdrawal")]


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.operations: list[Operation] = []
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.fault_log: list[dict] = []
        self.interest_log: list[str] = []
        self.expire_log: list[str] = []
        self.stop = threading.Event()
        self.client_errors: list[str] = []

    # --- setup ------------------------------------------------------------------------------
    def start(self):
        # Inherited by the servers and the jobs this run starts (stack.app_env).
        os.environ["JOINTBANK_APPROVAL_TTL"] = APPROVAL_TTL
        base_url, self.embedded = stack.base_database_url()
        self.database_url = stack.fresh_database(base_url)
        fixture = stack.manage(
            self.database_url,
            "shell",
            "-c",
            "from loadtest.fixtures import main; main()",
            capture_output=True,
            text=True,
        )
        self.fixture = json.loads(fixture.stdout.strip().splitlines()[-1])
        with stack.connect(self.database_url) as conn:
            self.baseline = conn.execute("SELECT max(id) FROM accounts_ledgerentry").fetchone()[0]
            self.keyed = checker.ledger_has_keys(conn)
            self.approvals = checker.has_approvals(conn)
        stack.collectstatic(self.database_url)

    # --- clients ----------------------------------------------------------------------------
    def client(self, number, email, accounts):
        try:
            self.drive(number, email, accounts)
        except Exception as error:  # reported as a violation: the run did not do what it says
            self.client_errors.append(f"client {number} ({email}): {error!r}")

    def drive(self, number, email, accounts):
        rng = random.Random(self.args.seed * 1000 + number)
        instance = number % len(self.servers)
        browser = Browser(self.servers[instance].url, timeout=REQUEST_TIMEOUT)
        browser.sign_in(email, self.fixture["password"])
        while not self.stop.is_set():
            account = rng.choice(accounts)
            # Transfers need the idempotency-key schema (the same issue brought both), requests
            # and decisions the approvals one.
            weights = [30, 30, 5, 15, 20] if self.keyed else [35, 35, 5, 0, 25]
            weights += [8, 12] if self.approvals else [0, 0]
            kinds = ["deposit", "withdraw", "overdraw", "transfer", "read", "request", "decide"]
            kind = rng.choices(kinds, weights)[0]
            with self.lock:
                op = Operation(next(self.ids), kind, account, instance)
                self.operations.append(op)
            if kind == "transfer":
                op.target = rng.choice([other for other in accounts if other != account])
            if kind == "read":
                self.read_balance(browser, op)
                continue
            if kind == "decide":
                self.decide(browser, op, rng)
                continue
            cents = Decimal(op.id) / 100
            op.amount = cents + (Decimal("900000.00") if kind == "overdraw" else 0)
            op.amount += THRESHOLD if kind == "request" else 0
            self.change_balance(browser, op)

    def change_balance(self, browser, op):
        verb = {"deposit": "deposit", "transfer": "transfer"}.get(op.kind, "withdraw")
        data = {"amount": f"{op.amount:.2f}", "idempotency_key": op.key}
        if op.target is not None:
            data["to_account"] = op.target
        for attempt in range(RETRIES + 1):
            self.attempt(
                op,
                lambda: browser.request("POST", f"/accounts/{op.account}/{verb}/", data, htmx=True),
            )
            # Without idempotency keys in the ledger a retry could apply the change twice:
            # then an unknown outcome stays unknown, and the checker finds out what happened.
            if op.outcome != "unknown" or not self.keyed or attempt == RETRIES:
                return
            time.sleep(min(0.2 * 2**attempt, 3.0))

    def decide(self, browser, op, rng):
        """Answer one of the pending requests the page offers this user (approve or reject
        another holder's, cancel their own); retried as it is, with nothing to find, when
        the outcome is unknown: a second answer to one request is refused (409)."""
        try:
            page = browser.request("GET", f"/accounts/{op.account}/balance/", htmx=True)
        except (OSError, http.client.HTTPException):
            page = None
        offered = DECISION_URL.findall(page.body) if page and page.status == 200 else []
        if not offered:
            return  # nothing to answer: without attempts, the checker leaves it out
        url, request_id, op.action = rng.choice(offered)
        op.target = int(request_id)
        for attempt in range(RETRIES + 1):
            self.attempt(op, lambda: browser.request("POST", url, {}, htmx=True))
            if op.outcome != "unknown" or attempt == RETRIES:
                return
            time.sleep(min(0.2 * 2**attempt, 3.0))

    def expire_requests(self):
        """The scheduled job: void expired requests every few seconds while clients answer
        them."""
        while not self.stop.wait(EXPIRE_EVERY):
            self.run_expire_job()

    def run_expire_job(self):
        result = subprocess.run(
            [stack.PYTHON, "manage.py", "expire_requests"],
            cwd=stack.ROOT,
            env=stack.app_env(self.database_url),
            capture_output=True,
            text=True,
        )
        last = (result.stdout or result.stderr).strip().splitlines()[-1:]
        self.expire_log.append(f"exit {result.returncode} {last}")

    def read_balance(self, browser, op):
        def read():
            response = browser.request("GET", f"/accounts/{op.account}/balance/", htmx=True)
            match = DATA_BALANCE.search(response.body)
            if response.status == 200 and (not match or Decimal(match.group(1)) < 0):
                raise AssertionError(f"bad balance fragment: {response.body[:200]}")
            return response

        self.attempt(op, read)

    def attempt(self, op, send):
        started = time.monotonic()
        try:
            response = send()
            outcome, detail = _classify(response), str(response.status)
        except (OSError, http.client.HTTPException) as error:
            outcome, detail = "unknown", type(error).__name__
        op.attempts.append(Attempt(started, time.monotonic(), outcome, detail))

    # --- faults and the cron job ------------------------------------------------------------
    def inject_faults(self):
        names = [name for name in self.args.faults if name]
        if not names:
            return
        deadline = self.began + self.args.seconds - self.args.fault_gap
        for name in itertools.cycle(names):
            if self.stop.wait(self.args.fault_gap) or time.monotonic() > deadline:
                return
            started = time.monotonic()
            try:
                note = faults.FAULTS[name](self, self.rng)
            except Exception as error:  # a fault that fails to inject is reported, not fatal
                note = f"could not inject: {error!r}"
            self.fault_log.append(
                {"name": name, "at": started, "until": time.monotonic(), "note": note}
            )

    def post_interest(self):
        """The cron job, twice at once, mid-run; re-run until it succeeds (as cron would). No
        --period: the default, the last month that has ended, as the crontab runs it."""
        if self.stop.wait(self.args.seconds * 0.4):
            return

        def cron(number):
            for _ in range(20):
                result = subprocess.run(
                    [stack.PYTHON, "manage.py", "post_interest"],
                    cwd=stack.ROOT,
                    env=stack.app_env(self.database_url),
                    capture_output=True,
                    text=True,
                )
                last = (result.stdout or result.stderr).strip().splitlines()[-1:]
                self.interest_log.append(f"run {number}: exit {result.returncode} {last}")
                if result.returncode == 0:
                    return
                time.sleep(1)

        runs = [threading.Thread(target=cron, args=(n,)) for n in (1, 2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join()

    # --- the run ----------------------------------------------------------------------------
    def execute(self) -> int:
        self.start()
        servers = stack.servers(
            self.database_url, self.args.instances, self.args.workers, app=self.args.app
        )
        with servers as servers:
            self.servers = servers
            threads = [
                threading.Thread(target=self.client, args=(number, email, accounts), daemon=True)
                for number, (email, accounts) in enumerate(
                    (email, accounts)
                    for email, accounts in self.fixture["users"].items()
                    for _ in range(CLIENTS_PER_USER)
                )
            ]
            self.client_count = len(threads)
            self.began = time.monotonic()
            side = [
                threading.Thread(target=self.inject_faults),
                threading.Thread(target=self.post_interest),
            ]
            if self.approvals:
                side.append(threading.Thread(target=self.expire_requests))
            for thread in threads + side:
                thread.start()
            time.sleep(self.args.seconds)
            self.stop.set()
            for thread in threads + side:
                thread.join(timeout=REQUEST_TIMEOUT * (RETRIES + 2))
            self.ended = time.monotonic()
        if self.approvals:
            # Once the clients stopped and the last requests are past their expiry: nothing
            # may stay pending, held or half-decided.
            time.sleep(stack_seconds(APPROVAL_TTL))
            self.run_expire_job()
        with stack.connect(self.database_url) as conn:
            report = checker.check(self, conn)
        print(report.text)
        return 1 if report.violations else 0


def _classify(response) -> str:
    if response.status >= 500:
        return "unknown"
    # 202: a request made, waiting for approval.
    if response.status in (200, 202) and "HX-Redirect" not in response.headers:
        return "ok"
    return "rejected"


def stack_seconds(duration: str) -> float:
    """ "12s" -> 12.0 (the TTL format, seconds only here)."""
    return float(duration.rstrip("s"))
