"""Known vulnerabilities in the installed, pinned packages (`make audit`): pip-audit over the
project's virtualenv, which requirements.txt and requirements-dev.txt built, transitive
dependencies included. Exits 1 on any known vulnerability, naming it and its fix.

pip-audit asks PyPI's vulnerability API about each package version. Where that API cannot be
reached, pip-audit itself only skips the packages and still says "No known vulnerabilities
found"; here that is a failure ("not audited"), unless --unreachable-ok (CI on a machine that
reaches only the package index), which says so loudly and goes on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PIP_AUDIT = Path(sys.executable).with_name("pip-audit")


def main(unreachable_ok: bool) -> int:
    result = subprocess.run(
        [str(PIP_AUDIT), "--format", "json", "--progress-spinner", "off"],
        capture_output=True,
        text=True,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit failed (exit {result.returncode}):\n{result.stderr}", file=sys.stderr)
        return 2
    packages = report["dependencies"]
    vulnerable = [package for package in packages if package.get("vulns")]
    skipped = [package for package in packages if "skip_reason" in package]
    for package in vulnerable:
        for vuln in package["vulns"]:
            fixed = ", ".join(vuln["fix_versions"]) or "no fixed release yet"
            name = f"{package['name']} {package['version']}"
            print(f"VULNERABLE {name}: {vuln['id']} (fixed in {fixed})")
    if vulnerable:
        return 1
    if skipped:
        print(
            f"NOT AUDITED: {len(skipped)} of {len(packages)} packages, e.g. "
            f"{skipped[0]['name']}: {skipped[0]['skip_reason']}. pip-audit could not reach "
            "PyPI's vulnerability API from this machine."
        )
        return 0 if unreachable_ok else 1
    print(f"pip-audit: no known vulnerability in {len(packages)} installed packages.")
    return 0


if __name__ == "__main__":
    sys.exit(main(unreachable_ok="--unreachable-ok" in sys.argv[1:]))
