"""Debug locations (``!dbg``) in the generated LLVM IR, so IR and assembly lines point back to the program.

Off by default: a build through ``wb.build`` never attaches them. :func:`compile_with_locations`
lowers and generates code itself with a :class:`DebugLocations` installed on the
``ModuleCodegen`` (``cg.debug_locations``; the hook is in ``_FuncGen.stmt``). A *locator* says
where each statement of the lowered program comes from: ``locator.enter(stmt)`` returns a
``(line, column)`` pair (or None: keep the enclosing statement's location) and
``locator.leave(stmt)`` is called after the statement's code is generated. Every instruction
generated for the statement then carries ``!DILocation(line: L, column: C)``; after
optimisation the assembly printer turns them into ``.loc 1 L C`` directives.

:func:`ir_lines` and :func:`asm_lines` read the optimised IR and the assembly back as
``(text, (line, column) or None)`` pairs, one per instruction or label.

>>> ir_lines('define i32 @f() !dbg !3 {\\n  ret i32 0, !dbg !7\\n}\\n!7 = !DILocation(line: 4, column: 2, scope: !3)')
[('define i32 @f() {', None), ('  ret i32 0', (4, 2)), ('}', None)]
>>> asm_lines('f:\\n\\t.loc\\t1 4 2 prologue_end\\n\\txorl\\t%eax, %eax\\n\\tretq')
[('f:', None), ('\\txorl\\t%eax, %eax', (4, 2)), ('\\tretq', (4, 2))]
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Protocol

import llvmlite.ir as ir

from ...ir.stmt import Stmt

Location = tuple[int, int]

#: the file name the locations refer to (the printed script of the program)
SCRIPT_FILE = "program.py"


class Locator(Protocol):
    def enter(self, stmt: Stmt) -> Location | None: ...

    def leave(self, stmt: Stmt) -> None: ...


class DebugLocations:
    """Sets the builder's ``!dbg`` location while the code of each located statement is generated.

    Installs a compile unit (line tables only) and the ``Debug Info Version`` flag in ``module``;
    each generated function that gets a location gets its own ``DISubprogram``.
    """

    def __init__(self, module: ir.Module, locator: Locator, filename: str = SCRIPT_FILE):
        self.module, self.locator = module, locator
        self.file = module.add_debug_info("DIFile", {"filename": filename, "directory": "."})
        self.unit = module.add_debug_info("DICompileUnit", {
            "language": ir.DIToken("DW_LANG_Python"), "file": self.file, "producer": "workbench",
            "isOptimized": True, "emissionKind": ir.DIToken("LineTablesOnly"), "runtimeVersion": 0,
        }, is_distinct=True)
        module.add_named_metadata("llvm.dbg.cu", self.unit)
        module.add_named_metadata("llvm.module.flags", [ir.Constant(ir.IntType(32), 2), "Debug Info Version",
                                                        ir.Constant(ir.IntType(32), 3)])
        self._subprograms: dict[str, ir.DIValue] = {}

    def _subprogram(self, fn: ir.Function) -> ir.DIValue:
        sp = self._subprograms.get(fn.name)
        if sp is None:
            m = self.module
            sp = m.add_debug_info("DISubprogram", {
                "name": fn.name, "scope": self.file, "file": self.file, "line": 1, "scopeLine": 1,
                "type": m.add_debug_info("DISubroutineType", {"types": m.add_metadata([])}),
                "spFlags": ir.DIToken("DISPFlagDefinition | DISPFlagOptimized"), "unit": self.unit,
            }, is_distinct=True)
            fn.set_metadata("dbg", sp)
            self._subprograms[fn.name] = sp
        return sp

    @contextmanager
    def at(self, stmt: Stmt, fn: ir.Function, builder: ir.IRBuilder) -> Iterator[None]:
        """While generating ``stmt`` in ``fn`` with ``builder``: its location (if the locator has one)."""
        loc = self.locator.enter(stmt)
        before = builder.debug_metadata
        if loc is not None:
            line, column = loc
            builder.debug_metadata = self.module.add_debug_info(
                "DILocation", {"line": line, "column": column, "scope": self._subprogram(fn)})
        try:
            yield
        finally:
            builder.debug_metadata = before
            self.locator.leave(stmt)


def compile_with_locations(funcs: dict, target, locator: Locator, lowered: dict | None = None) -> tuple[str, str]:
    """Lower ``funcs`` (name -> PrimFunc) for the CPU ``target`` (or take ``lowered``, name -> lowered
    PrimFunc), generate LLVM IR with the locator's ``!dbg`` locations, optimise it as ``wb.build``
    does and print the assembly; returns ``(optimised IR text, assembly text)``. Nothing is
    JIT-compiled or cached."""
    import llvmlite.binding as llvm

    from ..lower import lower
    from ..target import Target
    from .codegen import ModuleCodegen
    from .module import optimize_ir, size_vars, target_machine

    tgt = Target(target)
    cg = ModuleCodegen("workbench")
    cg.debug_locations = DebugLocations(cg.module, locator)
    for name, func in funcs.items():
        low = lowered[name] if lowered and name in lowered else lower(func, tgt)
        buf_params = [low.buffer_map[p] for p in func.params if p in func.buffer_map]
        cg.add_function(low, name, size_vars(func), buf_params)
    tm = target_machine(tgt)
    mod = optimize_ir(cg.text(), tgt, tm)
    opt_text = str(mod)
    return opt_text, tm.emit_assembly(llvm.parse_assembly(opt_text))


_DBG_REF = re.compile(r",?\s*!dbg !(\d+)")
_ATTACHMENTS = re.compile(r"(,\s*![\w.]+ !\d+)+\s*$")
_DILOCATION = re.compile(r"^!(\d+) = (?:distinct )?!DILocation\(line: (\d+)(?:, column: (\d+))?")


def ir_lines(text: str) -> list[tuple[str, Location | None]]:
    """The lines of the functions defined in LLVM IR ``text`` with each instruction's ``!dbg`` location
    (None: none, or line 0); metadata attachments are dropped from the text."""
    locs: dict[str, Location] = {}
    for line in text.splitlines():
        m = _DILOCATION.match(line)
        if m:
            locs[m.group(1)] = (int(m.group(2)), int(m.group(3) or 0))
    out: list[tuple[str, Location | None]] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("define "):
            inside = True
            out.append((re.sub(r"\s*!dbg !\d+", "", line), None))
            continue
        if not inside:
            continue
        if line.startswith("}"):
            out.append(("}", None))
            inside = False
            continue
        m = _DBG_REF.search(line)
        loc = locs.get(m.group(1)) if m else None
        out.append((_ATTACHMENTS.sub("", line), loc if loc and loc[0] > 0 else None))
    return out


def _is_code_section(directive: str) -> bool:
    """``.text``, or a ``.section`` with the executable flag (``.ltext`` of the large code model)."""
    if directive == ".text":
        return True
    parts = directive.split(None, 1)[1].split(",") if " " in directive or "\t" in directive else []
    flags = parts[1].strip().strip('"') if len(parts) > 1 else ""
    return bool(parts) and (parts[0].strip().startswith((".text", ".ltext")) or "x" in flags)


_LOC = re.compile(r"^\s*\.loc\s+\d+\s+(\d+)(?:\s+(\d+))?")
_LABEL = re.compile(r"^[\w.$]+:")


def asm_lines(text: str) -> list[tuple[str, Location | None]]:
    """The labels and instructions of the code sections of assembly ``text``, each with the location
    of the last ``.loc`` directive before it (None for labels, line 0 and before any ``.loc``)."""
    out: list[tuple[str, Location | None]] = []
    loc: Location | None = None
    code = True
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(".section") or stripped == ".text":
            code = _is_code_section(stripped)
            continue
        if not code or not stripped or stripped.startswith("#"):
            continue
        m = _LOC.match(line)
        if m:
            line_no = int(m.group(1))
            loc = (line_no, int(m.group(2) or 0)) if line_no > 0 else None
            continue
        if line.startswith((".Ltmp", ".Lfunc_")):
            continue  # the assembler's own marks
        if _LABEL.match(line):
            if not line.startswith(".L"):  # a function starts: no location carries over
                loc = None
            out.append((line, None))
            continue
        if stripped.startswith("."):
            continue  # other directives
        out.append((line, loc))
    return out


__all__ = ["DebugLocations", "Locator", "compile_with_locations", "ir_lines", "asm_lines", "SCRIPT_FILE"]
