"""The parser of Go's text/template: tokens into a tree (:mod:`.nodes`), with Go's parse errors.

``parse(name, text, funcs)`` returns the templates the text defines: the main one under ``name`` and each
``{{define}}``/``{{block}}``. A function name that ``funcs`` does not know, an undefined variable, a
stray ``{{end}}``... raise :class:`TemplateParseError` as Go words it:
``template: NAME:LINE: function "foo" not defined``.
"""

from __future__ import annotations

import math

from shardmon.model.errors import TemplateParseError
from shardmon.model.gotemplate.gofmt import go_quote
from shardmon.model.gotemplate.lexer import Token, lex
from shardmon.model.gotemplate.nodes import (
    ActionNode,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    CommentNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
)

__all__ = ["parse", "unquote"]


def _item(tok: Token) -> str:
    """Go's ``item.String()`` for error messages."""
    if tok.kind == "eof":
        return "EOF"
    if tok.kind == "error":
        return tok.text
    if tok.kind == "keyword":
        return f"<{tok.text}>"
    if len(tok.text) > 10:
        return go_quote(tok.text[:10]) + "..."
    return go_quote(tok.text)


class _End:
    def __init__(self, pos: int, kind: str):
        self.pos = pos
        self.kind = kind  # "end" or "else"


class _Parser:
    def __init__(self, name: str, text: str, funcs: frozenset[str] | set[str],
                 delims: tuple[str, str] = ("{{", "}}")):
        self.name = name
        self.text = text
        self.funcs = funcs
        self.tokens = lex(text, delims)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.defs: dict[str, ListNode] = {}

    # --- tokens ---
    def next(self) -> Token:
        tok = self.tokens[min(self.i, len(self.tokens) - 1)]
        if tok.kind == "error":
            self.errorf(tok.text, tok)
        self.i += 1
        return tok

    def backup(self, n: int = 1) -> None:
        self.i -= n

    def peek(self) -> Token:
        tok = self.tokens[min(self.i, len(self.tokens) - 1)]
        if tok.kind == "error":
            self.errorf(tok.text, tok)
        return tok

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.kind == "space":
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.backup()
        return tok

    def errorf(self, message: str, tok: Token | None = None) -> None:
        line = (tok or self.tokens[min(max(self.i - 1, 0), len(self.tokens) - 1)]).line
        raise TemplateParseError(f"template: {self.name}:{line}: {message}")

    def expect(self, kind: str, context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind != kind:
            self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> None:
        if tok.kind == "error":
            self.errorf(tok.text, tok)
        self.errorf(f"unexpected {_item(tok)} in {context}", tok)

    # --- structure ---
    def parse(self) -> dict[str, ListNode]:
        root = ListNode(0)
        while self.peek().kind != "eof":
            if self.peek().kind == "left":
                save = self.i
                left = self.next()
                nxt = self.next_non_space()
                if nxt.kind == "keyword" and nxt.text == "define":
                    self.parse_definition(left)
                    continue
                self.i = save
            node = self.text_or_action()
            if isinstance(node, _End):
                self.errorf(f"unexpected {{{{{node.kind}}}}}")
            if node is not None:
                root.nodes.append(node)
        if self.name not in self.defs or _non_empty(root):
            self.defs[self.name] = root
        return self.defs

    def parse_definition(self, left: Token) -> None:
        tok = self.next_non_space()
        if tok.kind not in ("string", "raw"):
            self.unexpected(tok, "define clause")
        name = unquote(tok.text)
        self.expect("right", "define clause")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        if end.kind != "end":
            self.errorf(f"unexpected {{{{{end.kind}}}}} in define clause")
        self.vars = saved
        self.add_definition(name, body)

    def add_definition(self, name: str, body: ListNode) -> None:
        if name in self.defs and _non_empty(self.defs[name]) and _non_empty(body):
            self.errorf(f"template: multiple definition of template {go_quote(name)}")
        if name not in self.defs or _non_empty(body):
            self.defs[name] = body

    def item_list(self) -> tuple[ListNode, _End]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, _End):
                return lst, node
            if node is not None:
                lst.nodes.append(node)
        self.errorf("unexpected EOF")
        raise AssertionError

    def text_or_action(self):
        tok = self.next_non_space()
        if tok.kind == "text":
            return TextNode(tok.pos, tok.text)
        if tok.kind == "left":
            return self.action()
        if tok.kind == "comment":
            return CommentNode(tok.pos, tok.text)
        self.unexpected(tok, "input")

    def action(self):
        save = self.i
        tok = self.next_non_space()
        if tok.kind == "keyword":
            k = tok.text
            if k == "block":
                return self.block_control(tok)
            if k in ("break", "continue"):
                if self.range_depth == 0:
                    self.errorf(f"{{{{{k}}}}} outside {{{{range}}}}", tok)
                self.expect("right", f"{{{{{k}}}}}")
                return BreakNode(tok.pos) if k == "break" else ContinueNode(tok.pos)
            if k == "else":
                return self.else_control(tok)
            if k == "end":
                self.expect("right", "end")
                return _End(tok.pos, "end")
            if k in ("if", "range", "with"):
                return self.control(tok, k)
            if k == "template":
                return self.template_control(tok)
        self.i = save
        start = self.peek()
        return ActionNode(start.pos, self.pipeline("command", "right"))

    def else_control(self, tok: Token) -> _End:
        nxt = self.peek_non_space()
        if nxt.kind == "keyword" and nxt.text == "if":
            return _End(tok.pos, "else if")
        self.expect("right", "else")
        return _End(tok.pos, "else")

    def control(self, tok: Token, context: str):
        mark = len(self.vars)
        pipe = self.pipeline(context, "right")
        if context == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_list = None
        if end.kind == "else if":
            if context != "if":
                self.errorf(f"unexpected {{{{else if}}}} in {context}")
            # {{else if x}} is {{else}}{{if x}}...{{end}}{{end}}, sharing the one {{end}}.
            self.next_non_space()  # the "if" keyword
            inner = self.control(tok, "if")
            else_list = ListNode(inner.pos, [inner])
        elif end.kind == "else":
            else_list, end2 = self.item_list()
            if end2.kind != "end":
                self.errorf(f"expected end; found {{{{{end2.kind}}}}}")
        cls = {"if": IfNode, "range": RangeNode, "with": WithNode}[context]
        del self.vars[mark:]
        return cls(tok.pos, pipe, body, else_list)

    def template_control(self, tok: Token) -> TemplateNode:
        name_tok = self.next_non_space()
        if name_tok.kind not in ("string", "raw"):
            self.unexpected(name_tok, "template clause")
        name = unquote(name_tok.text)
        pipe = None
        if self.next_non_space().kind != "right":
            self.backup()
            pipe = self.pipeline("template clause", "right")
        return TemplateNode(name_tok.pos, name, pipe)

    def block_control(self, tok: Token) -> TemplateNode:
        name_tok = self.next_non_space()
        if name_tok.kind not in ("string", "raw"):
            self.unexpected(name_tok, "block clause")
        name = unquote(name_tok.text)
        pipe = self.pipeline("block clause", "right")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end.kind != "end":
            self.errorf(f"unexpected {{{{{end.kind}}}}} in block clause")
        self.add_definition(name, body)
        return TemplateNode(name_tok.pos, name, pipe)

    # --- pipelines ---
    def pipeline(self, context: str, end: str) -> PipeNode:
        start = self.peek_non_space()
        pipe = PipeNode(start.pos)
        # Declarations: $x := / $x = / $i, $v := (range only).
        save = self.i
        tok = self.next_non_space()
        if tok.kind == "var":
            nxt = self.next_non_space()
            if nxt.kind in ("declare", "assign"):
                pipe.is_assign = nxt.kind == "assign"
                pipe.decl.append(VariableNode(tok.pos, [tok.text]))
                if nxt.kind == "declare":
                    self.vars.append(tok.text)
                elif tok.text not in self.vars:
                    self.errorf(f"undefined variable {go_quote(tok.text)}", tok)
            elif nxt.kind == "comma" and context == "range":
                v2 = self.next_non_space()
                op = self.next_non_space()
                if v2.kind != "var" or op.kind not in ("declare", "assign"):
                    self.errorf("range can only initialize variables")
                pipe.is_assign = op.kind == "assign"
                pipe.decl += [VariableNode(tok.pos, [tok.text]), VariableNode(v2.pos, [v2.text])]
                if op.kind == "declare":
                    self.vars += [tok.text, v2.text]
            elif nxt.kind == "comma":
                self.errorf(f"too many declarations in {context}", nxt)
            else:
                self.i = save
        else:
            self.i = save
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.kind in ("bool", "char", "dot", "field", "ident", "number", "keyword", "var", "string",
                            "raw", "lparen"):
                if tok.kind == "keyword" and tok.text != "nil":
                    self.unexpected(tok, context)
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, cmd in enumerate(pipe.cmds[1:], start=1):
            first = cmd.args[0]
            if isinstance(first, (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 1}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind in ("right", "rparen"):
                self.backup()
            elif tok.kind == "pipe":
                pass
            else:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            pos = self.peek().pos  # Go's chained node sits at its first field
            fields = []
            while self.peek().kind == "field":
                fields.append(self.next().text[1:])
            if isinstance(node, FieldNode):
                return FieldNode(pos, node.ident + fields)
            if isinstance(node, VariableNode):
                return VariableNode(pos, node.ident + fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {go_quote(str(node))}")
            return ChainNode(pos, node, fields)
        return node

    def term(self):
        tok = self.next_non_space()
        k = tok.kind
        if k == "ident":
            if tok.text not in self.funcs:
                self.errorf(f"function {go_quote(tok.text)} not defined", tok)
            return IdentifierNode(tok.pos, tok.text)
        if k == "dot":
            return DotNode(tok.pos)
        if k == "keyword" and tok.text == "nil":
            return NilNode(tok.pos)
        if k == "var":
            if tok.text not in self.vars:
                self.errorf(f"undefined variable {go_quote(tok.text)}", tok)
            return VariableNode(tok.pos, [tok.text])
        if k == "field":
            return FieldNode(tok.pos, [tok.text[1:]])
        if k == "bool":
            return BoolNode(tok.pos, tok.text == "true")
        if k in ("char", "number"):
            return self.number(tok)
        if k == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if k in ("string", "raw"):
            try:
                return StringNode(tok.pos, tok.text, unquote(tok.text))
            except ValueError as e:
                self.errorf(str(e), tok)
        self.backup()
        return None

    def number(self, tok: Token) -> NumberNode:
        text = tok.text
        node = NumberNode(tok.pos, text)
        if tok.kind == "char":
            try:
                c = unquote(text)
            except ValueError:
                self.errorf(f"malformed character constant: {text}", tok)
            if len(c) != 1:
                self.errorf(f"malformed character constant: {text}", tok)
            node.is_char = node.is_int = node.is_float = True
            node.int_value = ord(c)
            node.float_value = float(ord(c))
            return node
        body = text.lstrip("+-")
        neg = text.startswith("-")
        try:
            if len(body) > 1 and body[0] == "0" and body[1].isdigit():
                v = int(body.replace("_", ""), 8)
            else:
                v = int(body, 0)
            v = -v if neg else v
            if -(2**63) <= v < 2**63:
                node.is_int, node.int_value = True, v
                node.is_float, node.float_value = True, float(v)
                return node
        except ValueError:
            pass
        try:
            lb = body.lower()
            if lb.startswith("0x"):
                f = float.fromhex(body.replace("_", ""))
            elif any(c.isalpha() and c not in "eE" for c in body):
                raise ValueError
            else:
                f = float(body.replace("_", ""))
            f = -f if neg else f
        except (ValueError, OverflowError):
            self.errorf(f"illegal number syntax: {go_quote(text)}", tok)
        if math.isinf(f):
            self.errorf(f"illegal number syntax: {go_quote(text)}", tok)
        node.is_float, node.float_value = True, f
        if f == int(f) and -(2**63) <= f < 2**63:
            node.is_int, node.int_value = True, int(f)
        return node


def _non_empty(body: ListNode) -> bool:
    return any(not (isinstance(n, TextNode) and not n.text.strip()) for n in body.nodes)


_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
           "'": "'", '"': '"'}


def unquote(s: str) -> str:
    """Go's ``strconv.Unquote`` of a quoted string, raw string or character literal."""
    if len(s) < 2:
        raise ValueError("invalid syntax")
    q = s[0]
    if q == "`":
        return s[1:-1].replace("\r", "")
    body = s[1:-1]
    out: list[str] = []
    raw = bytearray()
    i = 0

    def flush() -> None:
        if raw:
            out.append(raw.decode("utf-8", "surrogateescape"))
            raw.clear()

    while i < len(body):
        c = body[i]
        if c != "\\":
            flush()
            if c == q:
                raise ValueError("invalid syntax")
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ValueError("invalid syntax")
        c = body[i]
        if c in _SIMPLE:
            if (c == "'" and q == '"') or (c == '"' and q == "'"):
                raise ValueError("invalid syntax")
            flush()
            out.append(_SIMPLE[c])
            i += 1
        elif c in "01234567":
            raw.append(int(body[i:i + 3], 8))
            i += 3
        elif c == "x":
            raw.append(int(body[i + 1:i + 3], 16))
            i += 3
        elif c in "uU":
            n = 4 if c == "u" else 8
            flush()
            out.append(chr(int(body[i + 1:i + 1 + n], 16)))
            i += 1 + n
        else:
            raise ValueError("invalid syntax")
    flush()
    return "".join(out)


def parse(name: str, text: str, funcs: frozenset[str] | set[str],
          delims: tuple[str, str] = ("{{", "}}")) -> dict[str, ListNode]:
    """The templates ``text`` defines, by name (``name`` for the main one); TemplateParseError if bad.
    ``delims``: the action delimiters (Go's ``Template.Delims``)."""
    return _Parser(name, text, funcs, delims).parse()
