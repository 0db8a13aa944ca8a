"""The executor of Go's text/template (option ``missingkey=zero``, as Prometheus sets it).

``Template(name, text, funcs, delims)`` parses (raising :class:`TemplateParseError`); ``execute(data)`` walks the
tree and returns the output, raising :class:`TemplateExecError` in Go's shape:
``template: NAME:LINE:COL: executing "NAME" at <CONTEXT>: MESSAGE`` (COL a 0-based byte column, CONTEXT
the node's text, as Go's ``ErrorContext``).
"""

from __future__ import annotations

import functools
from typing import Any

from shardmon.model.errors import TemplateExecError, TemplateFunctionError
from shardmon.model.gotemplate.functions import ANY, BUILTINS, IFACE, GoFunc, printable
from shardmon.model.gotemplate.gofmt import sprint
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
from shardmon.model.gotemplate.parser import parse
from shardmon.model.gotemplate.values import (
    GO_TIME_METHODS,
    HTML,
    NO_VALUE,
    GoPointer,
    GoStruct,
    GoTime,
    StrMap,
    go_type,
    is_true,
)

__all__ = ["Template", "MAX_DEPTH"]

MAX_DEPTH = 1000  # nested {{template}} calls (Go allows 100000; Python's stack does not)
_MISSING = object()  # no final value from a previous pipeline stage


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@functools.lru_cache(maxsize=4096)
def _parsed(name: str, text: str, funcs: frozenset[str], delims: tuple[str, str]) -> dict:
    """The parse of a template, kept: a rule expands the same few templates for every alert at every
    evaluation, and execution only reads the tree. (A failed parse is not kept: it raises each time.)"""
    return parse(name, text, funcs, delims)


class Template:
    """A parsed template and the functions it may call (Go's builtins plus ``funcs``); ``delims`` the
    action delimiters (Go's ``Template.Delims``: prometheus-adapter parses its templates with ``<<``, ``>>``)."""

    def __init__(self, name: str, text: str, funcs: dict[str, GoFunc] | None = None,
                 delims: tuple[str, str] = ("{{", "}}")):
        self.name = name
        self.text = text
        self.funcs = {**BUILTINS, **(funcs or {})}
        self.defs = _parsed(name, text, frozenset(self.funcs), delims)

    def execute(self, data: Any) -> str:
        """The template's output for ``data`` (see :mod:`.values` for the Go types of Python values)."""
        state = _State(self, [("$", data)])
        state.walk(data, self.defs[self.name])
        return "".join(state.out)


class _State:
    def __init__(self, tmpl: Template, variables: list[tuple[str, Any]], depth: int = 0):
        self.tmpl = tmpl
        self.vars = variables
        self.out: list[str] = []
        self.node: Any = None
        self.depth = depth

    # --- errors ---
    def errorf(self, message: str) -> None:
        name = self.tmpl.name
        if self.node is None:
            raise TemplateExecError(f"template: {name}: {message}")
        pos = self.node.pos
        before = self.tmpl.text[:pos]
        nl = before.rfind("\n")
        col = len(before[nl + 1:].encode("utf-8", "surrogatepass"))
        line = 1 + before.count("\n")
        context = str(self.node)  # (Go 1.19, which promtool 2.42 is built with, does not shorten it)
        raise TemplateExecError(
            f'template: {name}:{line}:{col}: executing "{name}" at <{context}>: {message}')

    def at(self, node: Any) -> None:
        self.node = node

    # --- variables ---
    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def var_value(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        self.errorf(f"undefined variable: {name}")

    # --- walking ---
    def walk(self, dot: Any, node: Any) -> None:
        self.at(node)
        if isinstance(node, ActionNode):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, (IfNode, WithNode)):
            mark = self.mark()
            val = self.eval_pipeline(dot, node.pipe)
            if is_true(val):
                self.walk(val if isinstance(node, WithNode) else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
            self.pop(mark)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif isinstance(node, CommentNode):
            pass
        else:
            self.errorf(f"unknown node: {node}")

    def walk_range(self, dot: Any, r: RangeNode) -> None:
        self.at(r)
        outer = self.mark()
        val = self.eval_pipeline(dot, r.pipe)
        if isinstance(val, GoPointer):
            val = val.target
        mark = self.mark()
        if isinstance(val, dict):
            items = [(k, val[k]) for k in sorted(val, key=lambda s: s.encode("utf-8", "surrogatepass"))]
        elif isinstance(val, list):
            items = list(enumerate(val))
        elif val is NO_VALUE or val is None:
            items = []
        else:
            self.errorf(f"range can't iterate over {sprint(printable(val))}")
        for index, elem in items:
            if r.pipe.decl:
                self.vars[mark - 1] = (self.vars[mark - 1][0], elem)
            if len(r.pipe.decl) > 1:
                self.vars[mark - 2] = (self.vars[mark - 2][0], index)
            try:
                self.walk(elem, r.list)
            except _Continue:
                pass
            except _Break:
                self.pop(mark)
                break
            self.pop(mark)
        if not items and r.else_list is not None:
            self.walk(dot, r.else_list)
        self.pop(outer)

    def walk_template(self, dot: Any, t: TemplateNode) -> None:
        self.at(t)
        body = self.tmpl.defs.get(t.name)
        if body is None:
            self.errorf(f'template "{t.name}" not defined')
        if self.depth >= MAX_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_DEPTH})")
        dot = self.eval_pipeline(dot, t.pipe)
        sub = _State(self.tmpl, [("$", dot)], self.depth + 1)
        sub.out = self.out
        sub.walk(dot, body)

    def print_value(self, node: Any, v: Any) -> None:
        self.at(node)
        if callable(v) and not isinstance(v, (GoPointer, GoTime, GoStruct, StrMap, dict, list, str)):
            self.errorf(f"can't print {node} of type {go_type(v)}")
        self.out.append(sprint(printable(v)))

    # --- evaluation ---
    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any:
        if pipe is None:
            return NO_VALUE
        self.at(pipe)
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface{} digs down to no value
                value = NO_VALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append((var.ident[0], value))
        return value

    def not_a_function(self, args: list[Any], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            self.at(first)
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {first}")

    def ideal_constant(self, n: NumberNode) -> Any:
        self.at(n)
        t = n.text.lower()
        hex_int = t.lstrip("+-").startswith("0x") and "p" not in t
        if n.is_float and not hex_int and not n.is_char and any(c in t for c in ".ep"):
            return n.float_value
        if n.is_int:
            return n.int_value
        return n.float_value

    def eval_chain(self, dot: Any, chain: ChainNode, args: list[Any], final: Any) -> Any:
        self.at(chain)
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable(self, dot: Any, var: VariableNode, args: list[Any] | None, final: Any) -> Any:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: Any, ident: list[str], args: list[Any] | None,
                         final: Any) -> Any:
        for name in ident[:-1]:
            receiver = self.eval_field(dot, name, node, None, _MISSING, receiver)
        return self.eval_field(dot, ident[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: Any, args: list[Any] | None, final: Any,
                   receiver: Any) -> Any:
        if receiver is NO_VALUE:
            return NO_VALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, GoTime) and name in GO_TIME_METHODS:
            method = GoFunc(getattr(receiver, name))
            return self.eval_call(dot, method, node, name, args, final)
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        target = receiver.target if isinstance(receiver, GoPointer) else receiver
        if isinstance(target, GoStruct) and name in target.values:
            if has_args:
                self.errorf(f"{name} has arguments but cannot be invoked as function")
            return target.values[name]
        if isinstance(target, dict):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in target:
                v = target[name]
                return NO_VALUE if v is None else v
            return "" if isinstance(target, StrMap) else NO_VALUE
        self.errorf(f"can't evaluate field {name} in type {go_type(receiver)}")

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Any, args: list[Any] | None,
                      final: Any) -> Any:
        self.at(node)
        fn = self.tmpl.funcs.get(node.name)
        if fn is None:
            self.errorf(f'"{node.name}" is not a defined function')
        return self.eval_call(dot, fn, cmd, node.name, args, final)

    def eval_call(self, dot: Any, fn: GoFunc, node: Any, name: str, args: list[Any] | None,
                  final: Any) -> Any:
        args = args[1:] if args is not None else []
        num_in = len(args) + (final is not _MISSING)
        nfixed = len(fn.params)
        if fn.variadic is not None:
            if num_in < nfixed:
                self.errorf(f"wrong number of args for {name}: want at least {nfixed} got {len(args)}")
        elif num_in != nfixed:
            self.errorf(f"wrong number of args for {name}: want {nfixed} got {num_in}")
        if fn.lazy:  # and / or: stop at the first falsy (and) or truthy (or) argument
            v: Any = NO_VALUE
            for arg in args:
                v = self.eval_arg(dot, ANY, arg)
                if is_true(v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = final
            return v
        argv = []
        for i, arg in enumerate(args):
            typ = fn.params[i] if i < nfixed else fn.variadic
            argv.append(self.eval_arg(dot, typ, arg))
        if final is not _MISSING:
            typ = fn.params[num_in - 1] if num_in - 1 < nfixed else fn.variadic
            argv.append(self.validate_type(final, typ))
        try:
            return fn.fn(*argv)
        except TemplateExecError:
            raise
        except TemplateFunctionError as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")
        except RecursionError:
            raise
        except Exception as e:  # a Go function's error, or a recovered panic
            self.at(node)
            self.errorf(f"error calling {name}: {e}")

    def validate_type(self, value: Any, typ: str | None) -> Any:
        if typ is None or typ == ANY:
            return value
        if typ == IFACE:
            return None if value is NO_VALUE else value
        if value is NO_VALUE or value is None:
            if typ.startswith(("*", "[]", "map[")) or typ.endswith("queryResult"):
                return _ZEROS.get(typ, lambda: None)()
            self.errorf(f"invalid value; expected {typ}")
        ok = {
            "string": lambda v: isinstance(v, str) and not isinstance(v, HTML),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float64": lambda v: isinstance(v, float),
            "bool": lambda v: isinstance(v, bool),
        }.get(typ, lambda v: go_type(v) == typ)(value)
        if not ok:
            self.errorf(f"wrong type for value; expected {typ}; got {go_type(value)}")
        return value

    def eval_arg(self, dot: Any, typ: str | None, n: Any) -> Any:
        self.at(n)
        if isinstance(n, DotNode):
            return self.validate_type(dot, typ)
        if isinstance(n, NilNode):
            if typ in (None, ANY, IFACE) or typ.startswith(("*", "[]", "map[")) or typ.endswith("queryResult"):
                return None if typ != ANY else NO_VALUE
            self.errorf(f"cannot assign nil to {typ}")
        if isinstance(n, FieldNode):
            return self.validate_type(self.eval_field_chain(dot, dot, n, n.ident, [n], _MISSING), typ)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable(dot, n, None, _MISSING), typ)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), typ)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, None, _MISSING), typ)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain(dot, n, None, _MISSING), typ)
        if typ in (None, ANY, IFACE):
            if isinstance(n, BoolNode):
                return n.value
            if isinstance(n, NumberNode):
                return self.ideal_constant(n)
            if isinstance(n, StringNode):
                return n.text
        elif typ == "string":
            if isinstance(n, StringNode):
                return n.text
            self.errorf(f"expected string; found {n}")
        elif typ == "bool":
            if isinstance(n, BoolNode):
                return n.value
            self.errorf(f"expected bool; found {n}")
        elif typ == "int":
            if isinstance(n, NumberNode) and n.is_int:
                return n.int_value
            self.errorf(f"expected integer; found {n}")
        elif typ == "float64":
            if isinstance(n, NumberNode) and n.is_float:
                return n.float_value
            self.errorf(f"expected float; found {n}")
        self.errorf(f"can't handle {n} for arg of type {typ}")


_ZEROS: dict[str, Any] = {}
