"""Where in a query text a parse error is, for the ``line:column: parse error: ...`` prefix Prometheus's
parse errors carry (``1:5: parse error: unexpected identifier "bar"``), which the web UI marks with a caret.

promql-parser reports no position, so it is found from the text: an error about the end of the input
(``unexpected end of input ...``, ``unclosed left parenthesis``, ``unterminated quoted string``) is at the
end, as in Prometheus. Otherwise the error is at the first token no query can continue from: the prefix
ending with it does not parse whatever of a few fillers (an operand, a string, a duration, a range
selector) follows it with its brackets closed; in ``foo bar`` at ``bar``, in ``up{a=b}`` at ``b``, in
``rate(up)`` at ``up``; when every prefix can go on (``up +``), at the end. The search parses each prefix
a few times for each step of a bisection, so it runs only on texts up to :data:`MAX_SEARCH_CHARS` (beyond, only the end-of-input
errors get a position). It is a heuristic where Prometheus's parser knows: ``sum by job (up)`` is placed
at ``by``, where Prometheus points at ``job``.
"""

from __future__ import annotations

import re

import promql_parser

#: The longest text whose error position is searched for by parsing its prefixes.
MAX_SEARCH_CHARS = 2048

_AT_END = ("end of input", "unclosed", "unterminated")
#: One token: a quoted string, a comment, a number or duration, a name, or one operator/bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|\'(?:[^\'\\]|\\.)*\'?|`[^`]*`?|#[^\n]*'
                    r"|[0-9.][\w.+-]*|[A-Za-z_:][\w:]*|==|!=|>=|<=|=~|!~|\S")


def _parses(text: str) -> bool:
    try:
        promql_parser.parse(text)
    except BaseException as exc:  # pyo3's PanicException derives from BaseException.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        return False
    return True


_CLOSER = {"(": ")", "[": "]", "{": "}"}
#: What may follow a prefix (before or after its brackets are closed) to make it a whole query.
_FILL = ("", " 1", " x", " ()", '""', '=""', "1m", " x[1m]")


def _viable(prefix: str, closers: str) -> bool:
    """Whether some query starts with ``prefix``, tried with a few fillers and its brackets closed."""
    return any(_parses(prefix + fill + closers) or (closers and fill and _parses(prefix + closers + fill))
               for fill in _FILL)


def error_offset(text: str, message: str) -> int | None:
    """The character offset of the parse error ``message`` in ``text``, or None when it cannot be told."""
    if any(marker in message for marker in _AT_END):
        return len(text)
    if len(text) > MAX_SEARCH_CHARS:
        return None
    tokens: list[tuple[int, int, str]] = []  # (start, end, the closers of the brackets open after it)
    stack: list[str] = []
    for m in _TOKEN.finditer(text):
        token = m.group()
        if token.startswith("#"):
            continue
        if token in _CLOSER:
            stack.append(_CLOSER[token])
        elif token in (")", "]", "}") and (not stack or stack.pop() != token):
            return m.start()
        tokens.append((m.start(), m.end(), "".join(reversed(stack))))
    # A prefix of a viable prefix is viable: bisect for the last token a query can go on from.
    lo, hi = 0, len(tokens)  # tokens[:lo] viable; tokens[:hi + 1] not (hi == len: not known)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        _, end, closers = tokens[mid - 1]
        if _viable(text[:end], closers):
            lo = mid
        else:
            hi = mid - 1
    return tokens[lo][0] if lo < len(tokens) else len(text)


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def with_position(text: str, message: str) -> str:
    """``message`` as Prometheus words a parse error: ``"<line>:<column>: parse error: <message>"`` (the
    message alone when its position cannot be told)."""
    offset = error_offset(text, message)
    if offset is None:
        return message
    line, column = line_column(text, offset)
    return f"{line}:{column}: parse error: {message}"


__all__ = ["MAX_SEARCH_CHARS", "error_offset", "line_column", "with_position"]
