"""The lexer of Go's text/template: text and actions (``{{ }}``, trim markers, comments) into tokens.

Each token has its kind, text, character offset ``pos`` in the template and its ``line``.
Errors are :class:`TemplateParseError` with Go's words (``unclosed action``, ``unterminated quoted
string``...), raised by the parser as it meets them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Token", "lex", "KEYWORDS"]

KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with"}
_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # text, left, right, space, pipe, string, raw, char, number, bool, field, var, ident,
    #            keyword, lparen, rparen, declare, assign, comma, dot, comment, eof, error
    text: str
    pos: int
    line: int


class _Lexer:
    def __init__(self, text: str, left: str = "{{", right: str = "}}"):
        self.text = text
        self.left, self.right = left, right
        self.pos = 0
        self.start = 0
        self.line = 1
        self.start_line = 1
        self.tokens: list[Token] = []
        self.paren = 0

    def emit(self, kind: str) -> None:
        self.tokens.append(Token(kind, self.text[self.start:self.pos], self.start, self.start_line))
        self._advance_start()

    def _advance_start(self) -> None:
        self.line += self.text.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def error(self, message: str) -> None:
        self.tokens.append(Token("error", message, self.start, self.start_line))

    def run(self) -> list[Token]:
        t = self.text
        while True:
            i = t.find(self.left, self.pos)
            if i < 0:
                self.pos = len(t)
                if self.pos > self.start:
                    self.emit("text")
                self.tokens.append(Token("eof", "", self.pos, self.line))
                return self.tokens
            n = len(self.left)
            trim = t.startswith("-", i + n) and i + n + 1 < len(t) and t[i + n + 1] in _SPACE
            end = i
            if trim:
                end = len(t[:i].rstrip(_SPACE))
            if end > self.start:
                self.pos = end
                self.emit("text")
            self.pos = i
            self._advance_start()
            if not self._action(trim):
                return self.tokens

    def _action(self, trim_left: bool) -> bool:
        t = self.text
        self.pos += len(self.left)
        if trim_left:
            self.pos += 2  # "- " (the space is trimmed, not a token)
        if t.startswith("/*", self.pos):
            return self._comment()
        self.emit("left")
        if trim_left:
            self.start = self.pos  # skip nothing more: the "- " is consumed
        self.paren = 0
        while True:
            if self.pos >= len(t):
                self.error("unclosed action")
                return False
            if self._at_right():
                return True
            c = t[self.pos]
            if c in _SPACE:
                while self.pos < len(t) and t[self.pos] in _SPACE and not self._trim_right_here():
                    self.pos += 1
                self.emit("space")
            elif c == "|":
                self.pos += 1
                self.emit("pipe")
            elif c == '"':
                if not self._quote('"', "unterminated quoted string", "string"):
                    return False
            elif c == "`":
                j = t.find("`", self.pos + 1)
                if j < 0:
                    self.error("unterminated raw quoted string")
                    return False
                self.pos = j + 1
                self.emit("raw")
            elif c == "'":
                if not self._quote("'", "unterminated character constant", "char"):
                    return False
            elif c == "$":
                self.pos += 1
                self._word()
                self.emit("var")
            elif c == ":":
                if t.startswith(":=", self.pos):
                    self.pos += 2
                    self.emit("declare")
                else:
                    self.error("expected :=")
                    return False
            elif c == "=":
                self.pos += 1
                self.emit("assign")
            elif c == ",":
                self.pos += 1
                self.emit("comma")
            elif c == "(":
                self.pos += 1
                self.paren += 1
                self.emit("lparen")
            elif c == ")":
                self.pos += 1
                self.paren -= 1
                if self.paren < 0:
                    self.error("unexpected right paren")
                    return False
                self.emit("rparen")
            elif c == ".":
                if self.pos + 1 < len(t) and t[self.pos + 1].isdigit():
                    if not self._number():
                        return False
                else:
                    self.pos += 1
                    if self.pos < len(t) and _is_alnum(t[self.pos]):
                        self._word()
                        self.emit("field")
                    else:
                        self.emit("dot")
            elif c in "+-" or c.isdigit():
                if not self._number():
                    return False
            elif _is_alnum(c):
                self._word()
                w = self.text[self.start:self.pos]
                if w in ("true", "false"):
                    self.emit("bool")
                elif w in KEYWORDS:
                    self.emit("keyword")
                else:
                    self.emit("ident")
                # A field right after an identifier or a closing paren is a chain: handled by the parser.
            else:
                self.error(f"bad character {_go_char(c)}")
                return False

    def _trim_right_here(self) -> bool:
        t, trim = self.text, "-" + self.right
        return t[self.pos] in _SPACE and t.startswith(trim, self.pos + 1)

    def _at_right(self) -> bool:
        t, right = self.text, self.right
        if self.pos < len(t) and t[self.pos] in _SPACE and t.startswith("-" + right, self.pos + 1):
            if self.paren > 0:
                self.error("unclosed left paren")
                return True
            self.pos += 2 + len(right)
            self.emit("right")
            self.pos = len(t) - len(t[self.pos:].lstrip(_SPACE))
            self._advance_start()
            return True
        if t.startswith(right, self.pos):
            if self.paren > 0:
                self.error("unclosed left paren")
                return True
            self.pos += len(right)
            self.emit("right")
            return True
        return False

    def _comment(self) -> bool:
        t = self.text
        j = t.find("*/", self.pos + 2)
        if j < 0:
            self.error("unclosed comment")
            return False
        self.pos = j + 2
        if t.startswith(self.right, self.pos):
            self.pos += len(self.right)
        elif self.pos < len(t) and t[self.pos] in _SPACE and t.startswith("-" + self.right, self.pos + 1):
            self.pos += 2 + len(self.right)
            self.pos = len(t) - len(t[self.pos:].lstrip(_SPACE))
        else:
            self.error("comment ends before closing delimiter")
            return False
        self.emit("comment")
        return True

    def _quote(self, q: str, message: str, kind: str) -> bool:
        t = self.text
        i = self.pos + 1
        while True:
            if i >= len(t) or t[i] == "\n":
                self.error(message)
                return False
            if t[i] == "\\":
                i += 2
                continue
            if t[i] == q:
                break
            i += 1
        self.pos = i + 1
        self.emit(kind)
        return True

    def _word(self) -> None:
        while self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1

    def _number(self) -> bool:
        t = self.text
        i = self.pos
        if t[i] in "+-":
            i += 1
        while i < len(t) and (t[i].isalnum() or t[i] in "._" or (t[i] in "+-" and t[i - 1] in "eEpP")):
            i += 1
        self.pos = i
        if i < len(t) and _is_alnum(t[i]):
            self.error(f"bad number syntax: {t[self.start:i + 1]!r}")
            return False
        self.emit("number")
        return True


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def _go_char(c: str) -> str:
    """Go's ``%#U`` of a rune: ``U+0021 '!'``."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


def lex(text: str, delims: tuple[str, str] = ("{{", "}}")) -> list[Token]:
    """The template's tokens, ending with an ``eof`` or an ``error`` token. ``delims``: the action
    delimiters (Go's ``Template.Delims``; prometheus-adapter's templates use ``<<`` and ``>>``)."""
    return _Lexer(text, delims[0] or "{{", delims[1] or "}}").run()
