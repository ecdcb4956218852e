"""`make bench-levers`: each lever of the hot path against the same baseline, in one run.

The hot-account row of `make bench` (the real app, 16 wrk clients on one account) served once
per variant: this checkout as it is (the baseline), with one setting or gunicorn option changed,
or an earlier commit of the code (`--refs`, exported with `git archive` and served from a
temporary directory against the same database). Variants run in turn, `--rounds` times over,
so that slow drifts of a shared machine spread over all of them; the table gives each one's
throughput as a ratio to the baseline's in the same run, with its latency, CPU time and round
trips per change, and the row-lock window (loadtest/probe.py).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from . import stack
from .bench import Bench, _num, _pct, _span

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# name -> what changes against the baseline: the WSGI app, its environment, gunicorn options.
VARIANTS = {
    "baseline": {},
    "sessions-in-redis": {"env": {"REDIS_URL": REDIS_URL}},
    "no-health-check": {"env": {"DJANGO_SETTINGS_MODULE": "loadtest.settings_no_health_check"}},
    # Upper bounds: the real app with a piece of work left out (loadtest/variant_wsgi.py).
    "no-chart": {"app": "loadtest.variant_wsgi", "env": {"BENCH_VARIANT": "no-chart"}},
    "no-timeouts-statement": {
        "app": "loadtest.variant_wsgi",
        "env": {"BENCH_VARIANT": "no-timeouts-statement"},
    },
    "sync-2": {"workers": 2},
    "sync-3": {"workers": 3},
    "sync-6": {"workers": 6},
    "gthread-2x4": {"worker_class": "gthread", "workers": 2, "threads": 4},
    "gthread-4x2": {"worker_class": "gthread", "workers": 4, "threads": 2},
}


class Levers(Bench):
    def execute(self) -> int:
        began = time.monotonic()
        self.prepare(full=False)
        account = self.fixture["hot"]["locked"]
        variants = {name: VARIANTS[name] for name in self.args.variants}
        trees = {}
        try:
            for ref in self.args.refs:
                trees[ref] = self.export(ref)
                variants[f"code at {ref}"] = {"tree": trees[ref]}
            with self.serve("sign-in") as server:
                self.cookies = self.sign_in(server.url, self.fixture["email"])
            runs = {name: [] for name in variants}
            for round_ in range(1, self.args.rounds + 1):
                for name, variant in variants.items():
                    runs[name].append(self.run(name, variant, account))
                    data = runs[name][-1]
                    print(f"  round {round_}, {name}: {data['rate']:.0f} req/s", flush=True)
        finally:
            for tree in trees.values():
                shutil.rmtree(tree, ignore_errors=True)
        self.print_levers(runs, time.monotonic() - began)
        return 0

    def export(self, ref: str) -> Path:
        """The code at `ref`, with its static files collected, in a temporary directory."""
        tree = Path(tempfile.mkdtemp(prefix="bench-tree-"))
        archive = subprocess.run(
            ["git", "archive", ref], cwd=stack.ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        subprocess.run(
            [stack.PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=tree,
            env=stack.app_env(self.database_url),
            check=True,
        )
        return tree

    def run(self, name, variant, account) -> dict:
        gunicorn = {k: v for k, v in variant.items() if k in ("workers", "worker_class", "threads")}
        tree = variant.get("tree", stack.ROOT)
        app = variant.get("app", "jointbank.wsgi")
        with self.serve(name, app, env=variant.get("env"), tree=tree, **gunicorn) as server:
            data = self.changes(server, account)
        data["probe"] = self.probes.pop(name)
        return data

    def print_levers(self, runs, seconds) -> None:
        baseline = statistics.mean(run["rate"] for run in runs["baseline"])
        lines = [
            f"{self.args.clients} clients, {self.args.seconds:g} s per run, "
            f"{self.args.rounds} rounds, default gunicorn {self.args.worker_class} × "
            f"{self.args.workers} workers · run took {seconds:.0f} s",
            "",
            "| variant | req/s per round | ÷ baseline | p50 ms | p99 ms | p99 / p50 "
            "| CPU ms per change | round trips | lock held p50 / p99 ms | not 200 |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, results in runs.items():
            rates = [run["rate"] for run in results]
            p50 = statistics.median(run["p50_ms"] for run in results)
            p99 = statistics.median(run["p99_ms"] for run in results)
            cpu, trips, held = [], [], []
            for run in results:
                for route in ("deposit", "withdraw"):
                    sample = run["probe"]["requests"].get((route, 200))
                    if sample:
                        cpu += sample["cpu_ms"]
                        trips += sample["round_trips"]
                    held += [window for _, window in run["probe"]["windows"].get(route, [])]
            held.sort()
            bad = sum(run["not_200"] + run["socket_errors"] for run in results)
            lines.append(
                f"| {name} | {' / '.join(f'{rate:.0f}' for rate in rates)} | "
                f"{statistics.mean(rates) / baseline:.2f} | {p50:.1f} | {p99:.1f} | "
                f"{p99 / p50:.2f} | {_num(statistics.median(cpu) if cpu else None, 2)} | "
                f"{_span(trips) if trips else '–'} | {_num(_pct(held, 50), 2)} / "
                f"{_num(_pct(held, 99), 2)} | {bad} |"
            )
        print("\n" + "\n".join(lines))
