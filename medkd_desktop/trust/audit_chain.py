"""The audit log's storage: an append-only, hash-chained JSON-lines file with a head kept beside it.

Why a hash chain and a head file: an audit trail is worth something only if a changed, removed,
reordered or inserted entry shows. Each line carries ``seq`` and ``prev`` (sha256 of the previous
line's bytes, without its newline; the first line: ``GENESIS``), so any change inside the log
breaks the chain at a definite seq. Removing the *last* lines breaks no chain, so the count and
the last line's hash are also kept outside the log (``head.json``, replaced atomically).

Why the head is the source of truth on append: if the log was truncated, the next entry still
continues from the head, so the gap stays visible to ``verify`` instead of being papered over.
The one legitimate lag (a crash after the line was written, before the head was) is recognised
and caught up. A missing head with a non-empty log cannot be told apart from tampering: the
chain continues from the log's last line and that entry is marked ``"recovered": "head-missing"``,
which ``verify`` reports. A broken chain stays broken: archive the folder and a new chain starts.

Rotation keeps the chain: a full ``audit.jsonl`` is renamed ``audit-<first>-<last>.jsonl`` and
the next line's ``prev`` is the hash of that file's last line. Appends are serialised by an
exclusive lock on ``audit.lock`` (fcntl on POSIX, msvcrt on Windows), so the window and a CLI
never interleave lines or fork the chain; each line is one ``write`` followed by fsync.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MedKDError

GENESIS = "0" * 64
LOG_NAME = "audit.jsonl"
HEAD_NAME = "head.json"
LOCK_NAME = "audit.lock"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_ROTATED = re.compile(r"^audit-(\d+)-(\d+)\.jsonl$")
_LOCK_TIMEOUT_S = 10.0


class AuditError(MedKDError):
    message = "The audit log could not be written."


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\r\n")).hexdigest()


def encode(entry: dict[str, Any]) -> bytes:
    """One entry as its line: compact JSON, ASCII only (so the bytes hashed are the bytes on disk)."""
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on *path* across processes, given up after a while rather than hanging."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        if os.name == "nt":  # pragma: no cover - Windows
            import msvcrt

            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AuditError(detail="audit lock timed out") from None
                    time.sleep(0.02)
            try:
                yield
            finally:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise AuditError(detail="audit lock timed out") from None
                    time.sleep(0.005)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _last_line(path: Path) -> bytes | None:
    """The file's last non-empty line, read from the end (a rotated-size file is not read whole)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            buf = b""
            pos = end
            while pos > 0:
                step = min(4096, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
                stripped = buf.rstrip(b"\r\n")
                if b"\n" in stripped:
                    return stripped.rsplit(b"\n", 1)[1]
            stripped = buf.rstrip(b"\r\n")
            return stripped or None
    except FileNotFoundError:
        return None


def _first_line(path: Path) -> bytes | None:
    with open(path, "rb") as f:
        line = f.readline()
    return line.rstrip(b"\r\n") or None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass
class VerifyResult:
    """``ok`` only if every file chains and the head matches; else ``seq`` and ``problem`` say where."""

    ok: bool
    entries: int
    problem: str = ""
    seq: int | None = None
    files: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.ok:
            return f"audit log intact: {self.entries} entries in {len(self.files)} file(s)"
        where = f"seq {self.seq}" if self.seq is not None else "the log"
        return f"audit log broken at {where}: {self.problem}"


class AuditChain:
    """The log folder: append entries, read them back, verify the chain."""

    def __init__(self, folder: Path, max_bytes: int | None = None) -> None:
        self.folder = Path(folder)
        env = os.environ.get("MEDKD_AUDIT_MAX_BYTES")
        self.max_bytes = max_bytes or (int(env) if env else DEFAULT_MAX_BYTES)

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_NAME

    @property
    def head_path(self) -> Path:
        return self.folder / HEAD_NAME

    def files(self) -> list[Path]:
        """Rotated files in seq order, then the current one."""
        rotated = []
        for p in self.folder.glob("audit-*.jsonl"):
            m = _ROTATED.match(p.name)
            if m:
                rotated.append((int(m.group(1)), p))
        out = [p for _, p in sorted(rotated)]
        if self.log_path.exists():
            out.append(self.log_path)
        return out

    def read_head(self) -> dict[str, Any] | None:
        try:
            head = json.loads(self.head_path.read_text())
            return head if isinstance(head, dict) and {"seq", "hash"} <= head.keys() else {"seq": None, "hash": None}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"seq": None, "hash": None}

    # ------------------------------------------------------------------------------- append
    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Add one entry (``seq`` and ``prev`` are set here) and return it as written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder / LOCK_NAME):
            seq, prev, recovered = self._continue_from()
            if self.log_path.exists() and self.log_path.stat().st_size >= self.max_bytes:
                self._rotate()
            entry = {"seq": seq, "prev": prev, **fields}
            if recovered:
                entry["recovered"] = recovered
            line = encode(entry)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            _write_atomic(self.head_path, json.dumps({"seq": seq, "hash": line_hash(line)}).encode() + b"\n")
        return entry

    def _continue_from(self) -> tuple[int, str, str]:
        """(next seq, prev hash, recovery marker) from the head, reconciled with the log's last line."""
        files = self.files()
        tail = _last_line(files[-1]) if files else None
        tail_entry = _parse(tail) if tail else None
        head = self.read_head()
        if head is None or head.get("seq") is None:
            if tail is None:
                return 1, GENESIS, "" if head is None else "head-unreadable"
            seq = tail_entry.get("seq") if isinstance(tail_entry, dict) else None
            return (seq + 1 if isinstance(seq, int) else 0), line_hash(tail), "head-missing"
        h_seq, h_hash = int(head["seq"]), str(head["hash"])
        if isinstance(tail_entry, dict) and tail_entry.get("seq") == h_seq + 1 and tail_entry.get("prev") == h_hash:
            return h_seq + 2, line_hash(tail), ""  # a crash left the head one line behind
        return h_seq + 1, h_hash, ""  # normal; after tampering the break stays visible

    def _rotate(self) -> None:
        first = _parse(_first_line(self.log_path) or b"")
        last = _parse(_last_line(self.log_path) or b"")
        a = first.get("seq") if isinstance(first, dict) else None
        b = last.get("seq") if isinstance(last, dict) else None
        name = f"audit-{a if isinstance(a, int) else 0}-{b if isinstance(b, int) else 0}.jsonl"
        target = self.folder / name
        n = 1
        while target.exists():  # never overwrite a rotated file (a broken log may repeat names)
            target = self.folder / f"{name[:-6]}.{n}.jsonl"
            n += 1
        os.replace(self.log_path, target)

    # ------------------------------------------------------------------------------- read
    def read(self) -> list[dict[str, Any]]:
        """Every parseable entry, oldest first (``verify`` is what says whether they are genuine)."""
        out = []
        for path in self.files():
            for raw in path.read_bytes().splitlines():
                entry = _parse(raw)
                if isinstance(entry, dict):
                    out.append(entry)
        return out

    # ------------------------------------------------------------------------------- verify
    def verify(self) -> VerifyResult:
        files = self.files()
        names = [p.name for p in files]
        lines: list[tuple[str, int, bytes, Any]] = []
        for path in files:
            for i, raw in enumerate(path.read_bytes().splitlines(), 1):
                if raw.strip():
                    lines.append((path.name, i, raw, _parse(raw)))
        head = self.read_head()

        def fail(seq: int | None, problem: str) -> VerifyResult:
            return VerifyResult(False, len(lines), problem, seq, names)

        seqs = [e.get("seq") for *_, e in lines if isinstance(e, dict)]
        prev_hash, expected = GENESIS, 1
        for name, i, raw, entry in lines:
            where = f"({name} line {i})"
            if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                return fail(expected, f"the entry is not valid JSON {where}: edited or cut short")
            seq = entry["seq"]
            if seq != expected:
                if seq > expected and expected not in seqs:
                    return fail(expected, f"missing: seq {seq} follows seq {expected - 1} {where}")
                if seq > expected:
                    return fail(expected, f"out of order: seq {seq} comes before it {where}")
                return fail(seq, f"out of order or inserted: seq {seq} appears after seq {expected - 1} {where}")
            if entry.get("prev") != prev_hash:
                if expected == 1:
                    return fail(1, f"the first entry does not start the chain {where}")
                return fail(seq - 1, f"altered: its hash no longer matches the prev of seq {seq} {where}")
            if entry.get("recovered"):
                return fail(seq, f"written after the head file was {entry['recovered'].split('-', 1)[-1]}: "
                                 f"the log's end before it cannot be confirmed {where}")
            prev_hash, expected = line_hash(raw), expected + 1
        last = expected - 1
        if head is None:
            if not lines:
                return VerifyResult(True, 0, files=names)
            return fail(last, f"the head file {HEAD_NAME} is missing: cannot confirm that seq {last} is the last entry")
        if head.get("seq") is None:
            return fail(last, f"the head file {HEAD_NAME} is unreadable")
        h_seq = int(head["seq"])
        if h_seq > last:
            return fail(last + 1, f"missing: the head records {h_seq} entries but the log ends at seq {last} "
                                  "(truncated)")
        if h_seq < last:
            return fail(h_seq + 1, f"the head records {h_seq} entries but the log has {last} (added without the lock)")
        if head.get("hash") != prev_hash:
            return fail(last, "altered: its hash no longer matches the head file")
        return VerifyResult(True, len(lines), files=names)


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
