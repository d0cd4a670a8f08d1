"""The audit trail: who opened, analysed, exported and transferred what, with which models.

Why these fields and no others: an auditor must be able to tell which models (card id and
weights' sha256) produced which result, when, by which OS user and app version, and whether
the same study came back, without the log itself becoming patient data. So a study appears only
as a keyed hash of its StudyInstanceUID (HMAC-SHA256 with a random per-installation salt kept
beside the log: stable on this machine, useless against a dictionary of UIDs elsewhere; null
when the study has no UID). Names, IDs, birth dates, file paths and any text from the study
never enter an entry; errors are recorded by class name only, since their text may hold a path.

Why recording never raises: the audit is a side record of work already done. A failed append
(full disk, locked folder) is logged as a warning and the app goes on; that entry simply does
not exist, and the chain stays intact without it (nothing half-written is left behind).

Callers stay one line each: ``record_open(study)``, ``record_analysis(analysis, pair, study)``,
``record_export(kind, pair, study)``, ``record_transfer("send", uid, count)``, or the general
``record(event, ...)``. The folder is ``$MEDKD_AUDIT_DIR`` or the per-user data folder's ``audit/``.
"""
from __future__ import annotations

import datetime as dt
import getpass
import hmac
import logging
import os
import secrets
from hashlib import sha256
from pathlib import Path
from typing import Any

from .audit_chain import AuditChain, VerifyResult

log = logging.getLogger(__name__)

EVENTS = ("open", "analysis", "export", "model-activation", "model-removal", "retrain", "pacs-retrieve", "pacs-send")
SALT_NAME = "salt"


def audit_dir() -> Path:
    env = os.environ.get("MEDKD_AUDIT_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("medkd-desktop", appauthor=False)) / "audit"


def chain() -> AuditChain:
    return AuditChain(audit_dir())


def app_version() -> str:
    try:
        from medkd_desktop import __version__  # type: ignore[attr-defined]

        return str(__version__)
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        return version("medkd-desktop")
    except Exception:  # noqa: BLE001 - an unpackaged checkout still audits
        return "unknown"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers and services
        return "unknown"


def _salt(folder: Path) -> bytes:
    """The installation's salt, made once. Written whole to a temporary file, then linked into
    place (which fails if another process got there first): two first appends agree on one salt,
    and nobody ever reads a half-written one."""
    path = folder / SALT_NAME
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{SALT_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        with open(tmp, "w") as f:
            f.write(secrets.token_bytes(32).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process's salt is in place: use that one
        finally:
            tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def study_hash(study_uid: str | None, folder: Path | None = None) -> str | None:
    """The keyed hash that stands for a study in the log (None for a study without a UID)."""
    return identifier_hash(study_uid, folder)


def identifier_hash(value: str | None, folder: Path | None = None) -> str | None:
    """HMAC-SHA256 of an identifier (a StudyInstanceUID, a PatientID) under this installation's
    salt: the same value gives the same hash on this computer only (``medkd retrain`` groups its
    splits by it without ever writing the PatientID). None for an empty value."""
    text = (value or "").strip()
    if not text:
        return None
    return hmac.new(_salt(folder or audit_dir()), text.encode("utf-8"), sha256).hexdigest()


def card_ref(card: Any) -> dict[str, str | None]:
    return {"id": getattr(card, "id", None), "sha256": getattr(card, "sha256", None)}


def pair_models(pair: Any) -> dict[str, Any] | None:
    if pair is None:
        return None
    return {"teacher": card_ref(pair.teacher), "student": card_ref(pair.student)}


def _study_uid(study: Any) -> str | None:
    meta = getattr(study, "metadata", None)
    return getattr(meta, "study_uid", None) or None


def record(event: str, *, models: dict[str, Any] | None = None, study_uid: str | None = None,
           error: BaseException | str | None = None, result: str | None = None,
           outcome: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Append one entry; returns it, or None when it could not be written (a warning is logged).

    *study_uid* is the raw StudyInstanceUID (hashed here); *error* an exception or its class
    name (only the name is kept); *outcome* a small dict of non-identifying facts (class names,
    counts, formats)."""
    try:
        folder = audit_dir()
        err = error if isinstance(error, str) or error is None else type(error).__name__
        fields: dict[str, Any] = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "user": _os_user(),
            "version": app_version(),
            "event": event,
            "study": study_hash(study_uid, folder),
            "models": models,
            "result": result or ("error" if err else "ok"),
        }
        if err:
            fields["error"] = err
        if outcome:
            fields["outcome"] = outcome
        return AuditChain(folder).append(fields)
    except Exception as exc:  # noqa: BLE001 - the audit must never stop the work it records
        log.warning("audit: the %s entry could not be written (%s)", event, type(exc).__name__)
        return None


# ---------------------------------------------------------------------------- one per event
def record_open(study: Any = None, error: BaseException | str | None = None) -> dict[str, Any] | None:
    outcome = None
    if study is not None:
        outcome = {"kind": getattr(getattr(study, "kind", None), "value", None),
                   "modality": getattr(getattr(study, "metadata", None), "modality", None) or None}
    return record("open", study_uid=_study_uid(study), error=error, outcome=outcome)


def record_analysis(analysis: Any, pair: Any, study: Any = None,
                    error: BaseException | str | None = None) -> dict[str, Any] | None:
    outcome = None
    if analysis is not None:
        outcome = {"task": analysis.task, "teacher": analysis.teacher.predicted,
                   "student": analysis.student.predicted,
                   "agree": analysis.teacher.predicted == analysis.student.predicted}
        flagged = [r.role for r in (analysis.teacher, analysis.student) if getattr(r, "out_of_distribution", False)]
        if flagged:  # the record says a prediction was withheld as out of distribution (who flagged it)
            outcome["ood"] = flagged
        if pair is not None and (pair.teacher.id, pair.student.id) != (analysis.teacher.card_id, analysis.student.card_id):
            pair = None  # the shown pair changed while it ran: the ids alone are what is known
        models = pair_models(pair) or {"teacher": {"id": analysis.teacher.card_id, "sha256": None},
                                       "student": {"id": analysis.student.card_id, "sha256": None}}
    else:
        models = pair_models(pair)
    return record("analysis", models=models, study_uid=_study_uid(study), error=error, outcome=outcome)


def record_export(fmt: str, pair: Any, study: Any = None,
                  error: BaseException | str | None = None) -> dict[str, Any] | None:
    return record("export", models=pair_models(pair), study_uid=_study_uid(study), error=error,
                  outcome={"format": fmt})


def record_transfer(direction: str, study_uid: str | None, count: int | None = None, *,
                    error: BaseException | str | None = None, result: str | None = None,
                    models: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``direction``: "retrieve" or "send"; *count*: instances received or stored."""
    return record(f"pacs-{direction}", models=models, study_uid=study_uid, error=error, result=result,
                  outcome=None if count is None else {"instances": count})


def dicom_study_uid(path: str | Path) -> str | None:
    """The StudyInstanceUID of a DICOM file, or of the first one in a folder (header only)."""
    try:
        import pydicom

        p = Path(path)
        if p.is_dir():
            p = next((f for f in sorted(p.rglob("*")) if f.is_file() and not f.name.startswith(".")), p)
        ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["StudyInstanceUID"], force=True)
        return str(ds.get("StudyInstanceUID", "")) or None
    except Exception:  # noqa: BLE001 - an unreadable file is audited without a study
        return None


def record_retrain(task: str, models: dict[str, Any] | None, *, result: str | None = None,
                   error: BaseException | str | None = None, outcome: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A `medkd retrain` run that ended (done, stopped or failed): the task, the teacher and the
    new student's card ids and sha256, counts and accuracies. Never a file path or PatientID."""
    return record("retrain", models=models, error=error, result=result, outcome={"task": task, **(outcome or {})})


def record_model_change(event: str, task: str, role: str, card: Any, previous: Any = None) -> dict[str, Any] | None:
    """``model-activation`` (a student version, or the bundled one again: a rollback) or
    ``model-removal``: which card the task now uses, and which it used before."""
    models = {"now": card_ref(card)} if card is not None else {}
    if previous is not None:
        models["before"] = card_ref(previous)
    return record(event, models=models or None, outcome={"task": task, "role": role})


# ---------------------------------------------------------------------------- reading
def verify() -> VerifyResult:
    return chain().verify()


def read(since: dt.datetime | dt.date | None = None) -> list[dict[str, Any]]:
    """Entries, oldest first; *since* keeps those at or after that UTC time (a date: its midnight)."""
    entries = chain().read()
    if since is None:
        return entries
    if not isinstance(since, dt.datetime):
        since = dt.datetime(since.year, since.month, since.day, tzinfo=dt.timezone.utc)
    elif since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)

    def when(e: dict[str, Any]) -> dt.datetime | None:
        try:
            return dt.datetime.fromisoformat(str(e.get("time", "")).replace("Z", "+00:00"))
        except ValueError:
            return None

    return [e for e in entries if (t := when(e)) is not None and t >= since]


def describe(entry: dict[str, Any]) -> str:
    """One readable line per entry (``medkd audit`` and the window's dialog)."""
    models = entry.get("models") or {}
    model_ids = ", ".join(f"{m.get('id')}" for m in models.values() if isinstance(m, dict))
    outcome = entry.get("outcome") or {}
    facts = " ".join(f"{k}={v}" for k, v in outcome.items() if v is not None)
    result = entry.get("result", "?") + (f" ({entry['error']})" if entry.get("error") else "")
    study = (entry.get("study") or "-")[:12]
    return "  ".join(x for x in (f"#{entry.get('seq')}", str(entry.get("time")), str(entry.get("user")),
                                 str(entry.get("event")), f"study {study}", result, model_ids, facts) if x)
