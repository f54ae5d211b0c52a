"""Finding and replacing statements in an immutable program (used by every primitive).

An :class:`Index` of a ``PrimFunc`` maps each loop variable and block name to its
node and the chain of ancestors from the function body down; :func:`rebuild` makes
the new program with one statement replaced, sharing every untouched subtree.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from ..ir.expr import Var
from ..ir.stmt import (AssertStmt, Allocate, Block, BlockRealize, For, IfThenElse, LetStmt, SeqStmt, Stmt,
                       seq)


def stmt_children(s: Stmt) -> list[Stmt]:
    """The statements directly below ``s`` (a block realize's child is its block)."""
    if isinstance(s, SeqStmt):
        return list(s.seq)
    if isinstance(s, (For, LetStmt, Allocate, AssertStmt)):
        return [s.body]
    if isinstance(s, BlockRealize):
        return [s.block]
    if isinstance(s, Block):
        out = [] if s.init is None else [s.init]
        out.append(s.body)
        return out
    if isinstance(s, IfThenElse):
        return [s.then_case] + ([] if s.else_case is None else [s.else_case])
    return []


class Index:
    """Where every loop and block of a program is.

    ``loops[var]`` and ``blocks[name]`` give ``(node, ancestors)`` where ancestors run
    from ``func.body`` to the direct parent.
    """

    def __init__(self, func):
        self.func = func
        self.loops: dict[Var, tuple[For, tuple]] = {}
        self.blocks: dict[str, tuple[BlockRealize, tuple]] = {}
        self.order: list[str] = []  # block names in program order
        self._walk(func.body, ())

    def _walk(self, s: Stmt, anc: tuple) -> None:
        if isinstance(s, For):
            self.loops[s.loop_var] = (s, anc)
        elif isinstance(s, BlockRealize):
            self.blocks[s.block.name] = (s, anc)
            self.order.append(s.block.name)
        sub = anc + (s,)
        for c in stmt_children(s):
            self._walk(c, sub)

    def realize(self, name: str) -> BlockRealize:
        return self.blocks[name][0]

    def block(self, name: str) -> Block:
        return self.blocks[name][0].block

    def loop(self, var: Var) -> For:
        return self.loops[var][0]

    def loops_of(self, name: str) -> list[For]:
        """Loops above block ``name``, outermost first, up to the enclosing block."""
        _, anc = self.blocks[name]
        out: list[For] = []
        for a in reversed(anc):
            if isinstance(a, (Block, BlockRealize)):
                break
            if isinstance(a, For):
                out.append(a)
        return out[::-1]

    def scope_of(self, node_anc: tuple) -> BlockRealize | None:
        """The nearest enclosing block realize of a node given its ancestors."""
        for a in reversed(node_anc):
            if isinstance(a, BlockRealize):
                return a
        return None

    def scope_block_of_block(self, name: str) -> BlockRealize | None:
        return self.scope_of(self.blocks[name][1])

    def blocks_in_scope(self, scope: BlockRealize) -> list[str]:
        """Names of the blocks directly in ``scope`` (not nested in other blocks), in order."""
        return [n for n in self.order if self.scope_of(self.blocks[n][1]) is scope]


def child_blocks(s: Stmt) -> list[BlockRealize]:
    """Block realizes below ``s`` that are not nested inside another block."""
    out: list[BlockRealize] = []

    def walk(x):
        if isinstance(x, BlockRealize):
            out.append(x)
            return
        for c in stmt_children(x):
            walk(c)

    for c in stmt_children(s.block if isinstance(s, BlockRealize) else s):
        walk(c)
    return out


def all_realizes(s: Stmt) -> list[BlockRealize]:
    """Every block realize below (and including) ``s``."""
    out: list[BlockRealize] = []

    def walk(x):
        if isinstance(x, BlockRealize):
            out.append(x)
        for c in stmt_children(x):
            walk(c)

    walk(s)
    return out


def _replace_child(parent: Stmt, old: Stmt, new: Stmt | list | None) -> Stmt | None:
    """``parent`` with child ``old`` replaced by ``new`` (a statement, a list spliced in, or removed)."""
    if isinstance(new, list):
        new = seq(*new) if new else None
    if isinstance(parent, SeqStmt):
        items: list[Stmt] = []
        for c in parent.seq:
            if c is old:
                if new is None:
                    continue
                items.extend(new.seq if isinstance(new, SeqStmt) else [new])
            else:
                items.append(c)
        if not items:
            return None
        return seq(*items)
    if isinstance(parent, (For, LetStmt, Allocate, AssertStmt)):
        if new is None:
            return None
        return parent.replace(body=new)
    if isinstance(parent, BlockRealize):
        if new is None:
            return None
        return parent.replace(block=new)
    if isinstance(parent, Block):
        if parent.init is old:
            return parent.replace(init=new)
        if new is None:
            raise ValueError(f"block {parent.name} would become empty")
        return parent.replace(body=new)
    if isinstance(parent, IfThenElse):
        if parent.then_case is old:
            if new is None:
                return None if parent.else_case is None else parent.replace(then_case=SeqStmt(()))
            return parent.replace(then_case=new)
        return parent.replace(else_case=new)
    raise TypeError(f"cannot replace a child of {type(parent).__name__}")


def rebuild(func, anc: Sequence[Stmt], old: Stmt, new: Stmt | list | None):
    """The function with ``old`` (whose ancestors are ``anc``) replaced by ``new``.

    ``new=None`` removes ``old``; loops left empty by the removal are removed too.
    """
    cur_old, cur_new = old, new
    for parent in reversed(anc):
        replaced = _replace_child(parent, cur_old, cur_new)
        cur_old, cur_new = parent, replaced
    if cur_new is None:
        raise ValueError("the program would become empty")
    if isinstance(cur_new, list):
        cur_new = seq(*cur_new)
    return func.replace(body=cur_new)


def replace_many(func, mapping: dict[int, Stmt | None]):
    """Replace several statements at once; ``mapping`` goes from ``id(old)`` to the new node
    (a statement, a list of statements spliced in, or None to remove it; loops left empty go too)."""

    def walk(s: Stmt):
        if id(s) in mapping:
            return mapping[id(s)]
        kids = stmt_children(s)
        if not kids:
            return s
        new_kids = [walk(c) for c in kids]
        if all(n is c for n, c in zip(new_kids, kids)):
            return s
        return _with_children(s, kids, new_kids)

    body = walk(func.body)
    if isinstance(body, list):
        body = seq(*body)
    if body is None:
        raise ValueError("the program would become empty")
    return func.replace(body=body)


def _as_stmt(x):
    if isinstance(x, list):
        return seq(*x) if x else None
    return x


def _with_children(s: Stmt, kids: list, new_kids: list):
    if isinstance(s, SeqStmt):
        items: list[Stmt] = []
        for n in new_kids:
            n = _as_stmt(n)
            if n is None:
                continue
            items.extend(n.seq if isinstance(n, SeqStmt) else [n])
        return seq(*items) if items else None
    cur = s
    for old, new in zip(kids, new_kids):
        if new is not old:
            cur = _replace_child(cur, old, _as_stmt(new))
            if cur is None:
                return None
    return cur


def fresh_name(base: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


class _Holder:
    """A function-like wrapper so ``replace_many`` works on a bare statement."""

    def __init__(self, body):
        self.body = body

    def replace(self, body):
        return _Holder(body)


def replace_in_stmt(stmt: Stmt, mapping: dict[int, Stmt | None]) -> Stmt | None:
    """``replace_many`` for a statement instead of a function."""
    return replace_many(_Holder(stmt), mapping).body
