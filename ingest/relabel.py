"""Relabeling, as Prometheus 2.x's ``model/relabel`` applies ``relabel_configs`` and ``metric_relabel_configs``.

:func:`process` runs the configs in order on a label set and returns the new :class:`Labels`, or None
when a ``keep``/``drop``/``keepequal``/``dropequal`` step dropped it. Each step sees the labels the
previous one left; a label that is missing reads as ``""`` and setting a label to ``""`` deletes it.

- ``replace``: when the regex matches the source value, ``target_label`` (expanded) is set to the
  expanded ``replacement``; if the expanded target is not a valid label name nothing happens.
  Expansion is Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$`` for ``$``; a
  group that does not exist or did not match gives ``""``, and ``$1x`` names the group ``1x``.
- ``hashmod``: the last 8 bytes of the MD5 of the source value, big-endian, modulo ``modulus``.
- ``labelmap``/``labeldrop``/``labelkeep``: the regex is matched against label *names*.
- ``lowercase``/``uppercase``: Go's ``strings.ToLower``/``ToUpper`` (simple, per-character case mapping).

:class:`Relabeler` precompiles the configs and memoises results: the same series recur every scrape.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping

from shardmon.model.labels import Labels, is_valid_label_name
from shardmon.model.regex import RegexMatch, compile_regex
from shardmon.model.relabel_config import DEFAULT_REGEX, RelabelConfig

__all__ = ["Relabeler", "expand", "process"]


def expand(template: str, m: RegexMatch) -> str:
    """Go's ``Regexp.ExpandString(nil, template, src, match)`` for a match of a relabel regex."""
    return m.expand(template)


# --- Go's strings.ToLower / strings.ToUpper --------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _lower_char(c: str) -> str:
    low = c.lower()
    # Python applies the full (SpecialCasing) mapping, Go the simple one: only U+0130 differs.
    return low if len(low) == 1 else ("i" if c == "\u0130" else c)


@functools.lru_cache(maxsize=4096)
def _upper_char(c: str) -> str:
    up = c.upper()
    if len(up) == 1:
        return up
    title = c.title()  # The Greek letters with ypogegrammeni: their simple uppercase is the titlecase.
    return title if len(title) == 1 else c  # ß, ŉ, ligatures...: no simple uppercase, unchanged in Go.


def go_lower(s: str) -> str:
    """Go's ``strings.ToLower``: per character, simple case mapping (no context, one char to one)."""
    return s.lower() if s.isascii() else "".join(map(_lower_char, s))


def go_upper(s: str) -> str:
    """Go's ``strings.ToUpper``."""
    return s.upper() if s.isascii() else "".join(map(_upper_char, s))


# --- the steps --------------------------------------------------------------------------------------

def hashmod(value: str, modulus: int) -> int:
    """Prometheus's hashmod: ``binary.BigEndian.Uint64(md5(value)[8:]) % modulus``."""
    digest = hashlib.md5(value.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def _set(labels: dict[str, str], name: str, value: str) -> None:
    if value:
        labels[name] = value
    else:
        labels.pop(name, None)  # As labels.Builder.Set: an empty value deletes the label.


class _Step:
    """One :class:`RelabelConfig`, compiled."""

    __slots__ = ("action", "sources", "separator", "regex", "target", "target_has_refs", "replacement",
                 "modulus", "default_regex")

    def __init__(self, cfg: RelabelConfig):
        self.action = cfg.action
        self.sources = tuple(cfg.source_labels)
        self.separator = cfg.separator
        self.regex = compile_regex(cfg.regex)
        self.default_regex = cfg.regex == DEFAULT_REGEX
        self.target = cfg.target_label
        self.target_has_refs = "$" in cfg.target_label
        self.replacement = cfg.replacement
        self.modulus = cfg.modulus

    def apply(self, labels: dict[str, str]) -> bool:
        """Relabel ``labels`` in place; False when the label set is dropped."""
        action = self.action
        if len(self.sources) == 1:
            value = labels.get(self.sources[0], "")
        else:
            value = self.separator.join([labels.get(name, "") for name in self.sources])
        if action == "replace":
            m = self.regex.match(value)
            if m is None:
                return True  # No match, no replacement.
            target = m.expand(self.target) if self.target_has_refs else self.target
            if is_valid_label_name(target):
                _set(labels, target, m.expand(self.replacement))
        elif action == "keep":
            return self.regex.fullmatch(value)
        elif action == "drop":
            return not self.regex.fullmatch(value)
        elif action == "keepequal":
            return labels.get(self.target, "") == value
        elif action == "dropequal":
            return labels.get(self.target, "") != value
        elif action == "hashmod":
            labels[self.target] = str(hashmod(value, self.modulus))
        elif action == "lowercase":
            _set(labels, self.target, go_lower(value))
        elif action == "uppercase":
            _set(labels, self.target, go_upper(value))
        elif action == "labelmap":
            # Over the labels as they were before this step, in name order (Prometheus 2.x iterates the
            # sorted label set; with colliding new names the last one wins).
            for name, v in sorted(labels.items()):
                m = self.regex.match(name)
                if m is not None:
                    # Go's ReplaceAllString; the anchored regex matches the whole name exactly once.
                    _set(labels, m.expand(self.replacement), v)
        elif action == "labeldrop":
            for name in self.regex.select(list(labels)):
                del labels[name]
        elif action == "labelkeep":
            for name in self.regex.partition(list(labels))[1]:
                del labels[name]
        else:  # The config model admits no other action.
            raise ValueError(f"relabel: unknown relabel action type {action!r}")
        return True


def _labels(labels: Mapping[str, str] | Labels) -> Labels:
    return labels if isinstance(labels, Labels) else Labels.from_dict(labels)


def _run(steps: tuple[_Step, ...], labels: Labels) -> Labels | None:
    d = dict(labels)
    for step in steps:
        if not step.apply(d):
            return None
    return Labels.from_dict(d)


def process(labels: Mapping[str, str] | Labels, configs: Iterable[RelabelConfig]) -> Labels | None:
    """Apply ``configs`` in order, as Prometheus's ``relabel.Process``; None when the set is dropped.

    The result has no empty values. With no configs the labels come back unchanged (as :class:`Labels`).
    """
    return _run(tuple(_Step(c) for c in configs), _labels(labels))


class Relabeler:
    """``process`` with the configs compiled once and results memoised (LRU keyed by the input labels).

    ``Relabeler(configs)(labels)`` equals ``process(labels, configs)``; a scrape sees the same series
    again and again, so the result of a label set is looked up instead of recomputed.
    """

    def __init__(self, configs: Iterable[RelabelConfig], maxsize: int = 1 << 16):
        self.configs = tuple(configs)
        self._steps = tuple(_Step(c) for c in self.configs)
        self._cached = functools.lru_cache(maxsize=maxsize)(self._uncached)

    def _uncached(self, labels: Labels) -> Labels | None:
        return _run(self._steps, labels)

    def __call__(self, labels: Mapping[str, str] | Labels) -> Labels | None:
        lset = _labels(labels)
        if not self._steps:
            return lset
        return self._cached(lset)

    def cache_info(self):
        return self._cached.cache_info()

    def cache_clear(self) -> None:
        self._cached.cache_clear()
