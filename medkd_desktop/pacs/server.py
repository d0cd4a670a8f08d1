"""Who we talk to (`PacsServer`) and how we present ourselves (`PacsSettings`).

Why one address string: hospital IT hands out a PACS as "AE title, host, port" (DIMSE) or as a
DICOMweb base URL, and a person types either into one field or one ``--server`` option. The
parser checks what the DICOM standard limits (AE title: 1-16 characters of the default
repertoire without backslash; port 1-65535) before anything goes on the network, so a typo is
an input error rather than a time-out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from .errors import PacsInputError

DEFAULT_AE_TITLE = "MEDKD"
#: The IANA port for DICOM; servers on 104 need root on Unix, so many use 4242 or 11112.
DEFAULT_MOVE_PORT = 11112

_ADDRESS = re.compile(r"^(?P<aet>[^@]+)@(?P<host>\[[^\]]+\]|[^:\[\]]+):(?P<port>\d{1,5})$")


def check_ae_title(title: str, what: str = "AE title") -> str:
    """*title* as sent (no padding), or :class:`PacsInputError`: 1-16 printable ASCII, no backslash."""
    stripped = title.strip()
    if not stripped or len(stripped) > 16 or "\\" in stripped or not all(32 <= ord(c) < 127 for c in stripped):
        raise PacsInputError(f"The {what} {title!r} is not valid; it must be 1 to 16 letters, digits or spaces.")
    return stripped


def _check_port(port: int, what: str = "port") -> int:
    if not 1 <= int(port) <= 65535:
        raise PacsInputError(f"The {what} {port} is not valid; it must be between 1 and 65535.")
    return int(port)


@dataclass(frozen=True)
class PacsServer:
    """A PACS: DIMSE (``ae_title``, ``host``, ``port``) or DICOMweb (``url``). ``name`` is the label
    a person gave it. Build one with :meth:`parse` or directly; :meth:`checked` validates."""

    name: str = ""
    ae_title: str = ""
    host: str = ""
    port: int = 0
    url: str = ""

    @property
    def is_dicomweb(self) -> bool:
        return bool(self.url)

    @classmethod
    def parse(cls, text: str, name: str = "") -> PacsServer:
        """``AET@HOST:PORT`` (IPv6 in brackets) or ``http(s)://host[:port]/path`` (the DICOMweb root)."""
        text = (text or "").strip()
        if text.lower().startswith(("http://", "https://")):
            parts = urlsplit(text)
            if not parts.hostname:
                raise PacsInputError(f"The DICOMweb address {text!r} has no host name.")
            try:
                parts.port  # noqa: B018 (raises on a bad port)
            except ValueError:
                raise PacsInputError(f"The DICOMweb address {text!r} has an invalid port.") from None
            return cls(name=name or parts.hostname, url=text.rstrip("/"))
        match = _ADDRESS.match(text)
        if not match:
            raise PacsInputError(f"{text!r} is not a PACS address; write it as AET@HOST:PORT (for example "
                                 "PACS@10.0.0.5:104) or as the DICOMweb address (http://host/dicom-web).")
        host = match["host"].strip("[]")
        server = cls(name=name or match["aet"].strip(), ae_title=match["aet"], host=host, port=int(match["port"]))
        return server.checked()

    def checked(self) -> PacsServer:
        """This server with its AE title stripped, or :class:`PacsInputError` for a bad field."""
        if self.is_dicomweb:
            return self
        if not self.host.strip():
            raise PacsInputError("The PACS host is empty; enter its name or IP address.")
        return replace(self, ae_title=check_ae_title(self.ae_title, "PACS AE title"), host=self.host.strip(),
                       port=_check_port(self.port, "PACS port"))

    def __str__(self) -> str:
        if self.is_dicomweb:
            return self.url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


@dataclass(frozen=True)
class PacsSettings:
    """Our side of every exchange.

    ``ae_title``: how MedKD introduces itself (the PACS administrator registers it).
    ``idle_timeout``: seconds without any answer (connect, association, each DIMSE message, each
    HTTP read) before giving up. ``total_timeout``: seconds a whole call may take (None: no limit
    but the caller's cancel). ``move_port`` / ``move_bind``: where our short-lived storage SCP
    listens during a C-MOVE ("" = every interface; the PACS must be able to reach it).
    ``cache_dir``: retrieval root (None: the per-user cache, see :func:`cache.default_cache_dir`).
    """

    ae_title: str = DEFAULT_AE_TITLE
    idle_timeout: float = 30.0
    total_timeout: float | None = 3600.0
    move_port: int = DEFAULT_MOVE_PORT
    move_bind: str = ""
    cache_dir: Path | None = None

    def checked(self) -> PacsSettings:
        if not self.idle_timeout > 0 or (self.total_timeout is not None and not self.total_timeout > 0):
            raise PacsInputError("The PACS time-outs must be positive numbers of seconds.")
        return replace(self, ae_title=check_ae_title(self.ae_title, "MedKD AE title"),
                       move_port=_check_port(self.move_port, "receiving port"))
