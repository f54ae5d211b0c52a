"""The tuning database: one JSON object per line, one line per measured candidate.

Each record names its workload (the structural hash of the untuned program) and target,
the candidate's trace (``Trace.to_data()``), the structural hash of the scheduled
program, and the measurement. ``wb.tune(..., database="tuning.jsonl")`` reads the
records of its workload and target first and measures none of their programs again.
Lines of other workloads share the file untouched; a line that is not a record is
skipped with a warning that names the file and line.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "db.jsonl")
>>> db = Database(path)
>>> db.add(Record("w1", "llvm", {"format": "workbench-trace", "version": 1, "insts": []}, "p1", True, 1e-3))
>>> [r.program for r in Database(path).records("w1", "llvm")]
['p1']
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field


@dataclass
class Record:
    """One measured candidate."""

    workload: str          # structural hash of the untuned program (hex)
    target: str            # the target string
    trace: dict            # Trace.to_data()
    program: str           # structural hash of the scheduled program (hex)
    ok: bool
    seconds: float | None
    error: str | None = None
    build_seconds: float = 0.0
    sketch: dict = field(default_factory=dict)


class Database:
    """Records in a JSON-lines file (``path``), or in memory when ``path`` is None."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self._records: list[Record] = []
        if self.path is not None and os.path.exists(self.path):
            self._records = list(_read(self.path))

    def records(self, workload: str, target: str) -> list[Record]:
        """The records of ``workload`` on ``target``, oldest first."""
        return [r for r in self._records if r.workload == workload and r.target == target]

    def add(self, record: Record) -> None:
        """Append a record (to the file at once, so an interrupted search keeps what it measured)."""
        self._records.append(record)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(record)) + "\n")

    def fingerprint(self) -> str:
        """A hash of every record (what a model compiled with this database depends on)."""
        h = hashlib.sha256()
        for r in self._records:
            h.update(json.dumps(asdict(r), sort_keys=True).encode())
        return h.hexdigest()[:32]

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"Database({self.path!r}, {len(self)} records)"


def _read(path: str):
    fields = set(Record.__dataclass_fields__)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict) or not {"workload", "target", "trace", "program", "ok"} <= set(data):
                    raise ValueError("it lacks the fields workload, target, trace, program, ok")
                yield Record(**{k: v for k, v in data.items() if k in fields})
            except (ValueError, TypeError) as err:
                warnings.warn(f"tuning database {path}, line {lineno}: not a record, skipped ({err})", stacklevel=3)


def workload_key(func, target) -> tuple[str, str]:
    """``(workload hash, target string)``: what a record is keyed by."""
    from ..backend.target import Target
    from .space import program_key

    return program_key(func), str(Target(target))


__all__ = ["Database", "Record", "workload_key"]
