"""Durations and sizes as Prometheus writes them: the one parser and printer of each.

A duration is written ``1h30m``, ``15s``, ``500ms`` or ``0`` (units ``y w d h m s ms``, each at most
once, largest first; Prometheus's ``model.ParseDuration``) and held as int milliseconds. A size is
written as Prometheus's ``--storage.tsdb.retention.size`` takes it (``512MB``, base 2) and held as
int bytes. :data:`Duration` and :data:`Size` are the pydantic field types of the configuration;
:func:`parse_duration_ms` also serves the HTTP API's ``step``, the PromQL test scripts and the targets'
``__scrape_interval__`` labels.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_MAX_DURATION_MS = (2**63 - 1) // 1_000_000
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_UNIT_SUFFIX = ("y", "w", "d", "h", "m", "s", "ms")


def parse_duration_ms(text: str) -> int:
    """Parse a Prometheus duration (``1h30m``, ``15s``, ``500ms``, ``0``) into milliseconds; a
    ``ValueError`` (``not a valid duration string: ...``) when it is not one."""
    if text == "0":
        return 0
    m = _DURATION_RE.match(text) if text else None
    if m is None or not any(m.groups()):
        raise ValueError(f"not a valid duration string: {text!r}")
    ms = sum(int(g) * unit for g, unit in zip(m.groups(), _UNIT_MS) if g)
    if ms > _MAX_DURATION_MS:  # As Prometheus: a Go time.Duration (int64 nanoseconds) must hold it.
        raise ValueError(f"not a valid duration string: {text!r}: duration out of range")
    return ms


def format_duration_ms(ms: int) -> str:
    """The inverse of :func:`parse_duration_ms`, as Prometheus's ``model.Duration.String`` prints durations
    (``1h30m``; years and weeks only when they divide the whole: ``9d``, not ``1w2d``)."""
    if ms == 0:
        return "0s"
    out = []
    for suffix, unit in zip(_UNIT_SUFFIX, _UNIT_MS):
        if suffix in ("y", "w") and ms % unit:
            continue
        if ms >= unit:
            out.append(f"{ms // unit}{suffix}")
            ms %= unit
    return "".join(out)


def format_go_duration_ms(ms: int) -> str:
    """A duration as Go's ``time.Duration.String`` writes it (``5m0s``, ``1h0m0s``, ``1.5s``, ``250ms``),
    as Go programs (the Pushgateway) print their flags."""
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}" if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{seconds}s"


def duration_from_yaml(value: Any, *, example: str = "15s") -> int:
    """A duration field's YAML value in milliseconds: a string only, as Prometheus (``15`` is refused;
    the message shows ``example``)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"not a valid duration string: {value!r} (write it as a string like \"{example}\")")
    return parse_duration_ms(value)


#: A duration in the YAML, milliseconds in Python.
Duration = Annotated[int, BeforeValidator(duration_from_yaml)]

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]i?)?B$")
_SIZE_POWER = {None: 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_size_bytes(text: str) -> int:
    """Parse a size as Prometheus's ``--storage.tsdb.retention.size`` does (base 2: ``512MB`` is
    512 MiB; ``B``, ``KB``..``EB`` and ``KiB``..``EiB``; ``0`` alone means zero) into bytes."""
    if text == "0":
        return 0
    m = _SIZE_RE.match(text) if text else None
    if m is None:
        raise ValueError(f"not a valid size: {text!r} (write it like \"512MB\", \"10GB\" or \"1TiB\")")
    return int(float(m.group(1)) * 1024 ** _SIZE_POWER[m.group(2)[0] if m.group(2) else None])


def format_size_bytes(n: int) -> str:
    """A size as Go's ``units.Base2Bytes`` writes a whole number of a unit (``512MiB``, ``1GiB``, ``0B``), in
    the largest unit that divides it (``1536MiB`` where Go would write ``1GiB512MiB``, which
    :func:`parse_size_bytes` does not read)."""
    for power, unit in ((6, "Ei"), (5, "Pi"), (4, "Ti"), (3, "Gi"), (2, "Mi"), (1, "Ki")):
        if n and n % 1024**power == 0:
            return f"{n // 1024**power}{unit}B"
    return f"{n}B"


def size_from_yaml(value: Any) -> int:
    """A size field's YAML value in bytes: a size string, or a plain non-negative number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"not a valid size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"not a valid size: {value!r} (negative)")
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a valid size: {value!r} (write it as a string like \"512MB\")")
    return parse_size_bytes(value)


#: A size in bytes: ``"512MB"`` (base 2, as Prometheus) or a plain integer number of bytes in the YAML.
Size = Annotated[int, BeforeValidator(size_from_yaml)]
