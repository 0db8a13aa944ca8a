"""The parse tree of a Go text/template, with Go's ``String()`` of each node (used in error context).

Every node has ``pos``, its character offset in the template text (error locations turn it into a line
and a byte column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "Node", "TextNode", "CommentNode", "ActionNode", "PipeNode", "CommandNode", "FieldNode", "VariableNode",
    "ChainNode", "IdentifierNode", "DotNode", "NilNode", "BoolNode", "NumberNode", "StringNode", "ListNode",
    "IfNode", "RangeNode", "WithNode", "TemplateNode", "BreakNode", "ContinueNode",
]


@dataclass(eq=False)
class TextNode:
    pos: int
    text: str

    def __str__(self) -> str:
        return repr(self.text)


@dataclass(eq=False)
class CommentNode:
    pos: int
    text: str

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


@dataclass(eq=False)
class DotNode:
    pos: int

    def __str__(self) -> str:
        return "."


@dataclass(eq=False)
class NilNode:
    pos: int

    def __str__(self) -> str:
        return "nil"


@dataclass(eq=False)
class BoolNode:
    pos: int
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(eq=False)
class NumberNode:
    """A number literal: ``text`` as written; ``is_int``/``is_float`` with the values Go derives."""

    pos: int
    text: str
    is_int: bool = False
    int_value: int = 0
    is_float: bool = False
    float_value: float = 0.0
    is_char: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class StringNode:
    pos: int
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(eq=False)
class FieldNode:
    pos: int
    ident: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass(eq=False)
class VariableNode:
    pos: int
    ident: list[str]  # ident[0] is "$" or "$name"

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(eq=False)
class IdentifierNode:
    pos: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class ChainNode:
    pos: int
    node: Any
    fields: list[str]

    def __str__(self) -> str:
        inner = str(self.node)
        if isinstance(self.node, PipeNode):
            inner = "(" + inner + ")"
        return inner + "".join("." + f for f in self.fields)


@dataclass(eq=False)
class CommandNode:
    pos: int
    args: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join("(" + str(a) + ")" if isinstance(a, PipeNode) else str(a) for a in self.args)


@dataclass(eq=False)
class PipeNode:
    pos: int
    decl: list[VariableNode] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[CommandNode] = field(default_factory=list)

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(d) for d in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


@dataclass(eq=False)
class ActionNode:
    pos: int
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(eq=False)
class ListNode:
    pos: int
    nodes: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclass(eq=False)
class _Branch:
    pos: int
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None
    keyword = ""

    def __str__(self) -> str:
        s = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


class IfNode(_Branch):
    keyword = "if"


class RangeNode(_Branch):
    keyword = "range"


class WithNode(_Branch):
    keyword = "with"


@dataclass(eq=False)
class TemplateNode:
    pos: int
    name: str
    pipe: PipeNode | None

    def __str__(self) -> str:
        if self.pipe is None:
            return "{{template " + _quote(self.name) + "}}"
        return "{{template " + _quote(self.name) + " " + str(self.pipe) + "}}"


@dataclass(eq=False)
class BreakNode:
    pos: int

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(eq=False)
class ContinueNode:
    pos: int

    def __str__(self) -> str:
        return "{{continue}}"


def _quote(s: str) -> str:
    from shardmon.model.gotemplate.gofmt import go_quote
    return go_quote(s)


Node = Union[TextNode, CommentNode, ActionNode, IfNode, RangeNode, WithNode, TemplateNode, ListNode,
             BreakNode, ContinueNode]
