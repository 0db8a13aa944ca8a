"""Where this process spends its time while it runs some work: py-spy (the ``bench`` extra) samples it,
and its collapsed stacks are summed per function, self time and inclusive time (optionally only the
stacks under one function, from it down). Time blocked waiting (on a lock, a future, a socket) shows
as the function that waits.

    with SelfProfile(seconds=20) as prof:
        work()
    print(prof.markdown())
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _where(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``file.py:func`` (lines folded, so a function is one entry)."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{short}:{m.group('func')}"


def summarise(collapsed: str, top: int = 15, focus: str = "") -> dict:
    """Per function, the share of samples it was running in (``self``) and under (``inclusive``). With
    ``focus`` (a function, ``file.py:name``), only the stacks through it count, from it down."""
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_where(f) for f in stack.split(";")]
        if focus:
            if focus not in frames:
                continue
            frames = frames[frames.index(focus) + 1:] or [focus]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            under[f] += n
    share = (lambda c: [(f, n / total) for f, n in c.most_common(top)]) if total else (lambda c: [])
    return {"samples": total, "self": share(own), "inclusive": share(under)}


class SelfProfile:
    """py-spy recording this process for ``seconds`` (at ``rate`` samples a second) while the block runs."""

    def __init__(self, seconds: float, rate: int = 100, focus: str = "") -> None:
        self.seconds, self.rate, self.focus = seconds, rate, focus
        self.result: dict | None = None
        self.error = ""

    def __enter__(self) -> SelfProfile:
        exe = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
        self._out = Path(tempfile.mkdtemp(prefix="shardmon-pyspy-")) / "stacks.txt"
        self._proc = None
        if exe is None:
            self.error = "py-spy is not installed (pip install -e '.[bench]')"
            return self
        self._proc = subprocess.Popen(
            [exe, "record", "--pid", str(os.getpid()), "--duration", str(int(self.seconds)), "--rate", str(self.rate),
             "--format", "raw", "--output", str(self._out), "--nonblocking"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is None:
            return
        try:
            log = self._proc.communicate(timeout=self.seconds + 30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            self._proc.kill()
            log = "timed out"
        if self._proc.returncode != 0 or not self._out.exists():
            self.error = f"py-spy failed: {log[-500:]}"
            return
        self.result = summarise(self._out.read_text(), focus=self.focus)
        shutil.rmtree(self._out.parent, ignore_errors=True)

    def markdown(self) -> str:
        if self.result is None:
            return self.error or "no profile"
        lines = [f"{self.result['samples']} samples{' under `' + self.focus + '`' if self.focus else ''}.", "", "| function (inclusive) | share |", "| --- | ---: |"]
        lines += [f"| `{f}` | {s:.0%} |" for f, s in self.result["inclusive"]]
        lines += ["", "| function (self) | share |", "| --- | ---: |"]
        lines += [f"| `{f}` | {s:.0%} |" for f, s in self.result["self"]]
        return "\n".join(lines)
