"""What ``/api/v1/status/buildinfo`` reports about this build, in Prometheus's fields: the installed
package's version, the git revision and branch of the checkout it runs from (empty for an installed wheel
or an image, which carry no repository), and the Python that runs it in ``goVersion``'s place."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    if not (_CHECKOUT / ".git").exists():
        return ""
    try:
        out = subprocess.run(["git", "-C", str(_CHECKOUT), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.cache
def build_info() -> dict[str, str]:
    """Prometheus's buildinfo document (read once per process)."""
    try:
        version = importlib.metadata.version("shardmon")
    except importlib.metadata.PackageNotFoundError:
        version = "0.0.0"
    return {"version": version, "revision": _git("rev-parse", "HEAD"),
            "branch": _git("rev-parse", "--abbrev-ref", "HEAD"), "buildUser": "", "buildDate": "",
            "goVersion": f"python{platform.python_version()}"}


__all__ = ["build_info"]
