"""Persistent user preferences (QSettings): device, default method, colour map, opacity, recent files,
the PACS servers and how MedKD introduces itself to them.

Why QSettings: it stores in the platform's own place (registry on Windows, plist on macOS,
INI under ~/.config on Linux) without us choosing paths, which matters on locked-down hospital
PCs. Tests pass an INI file in a temporary folder so they never touch the user's settings.

Recent files hold *paths* only. A path can contain a patient's name (folders exported by a
PACS often are), so recent entries are shown in the File menu, which the user controls, and
never logged.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from ..explain.overlay import DEFAULT_COLORMAP, DEFAULT_OPACITY, canonical_colormap
from ..inference.view_state import DEFAULT_METHOD

ORGANIZATION = "MedKD"
APPLICATION = "MedKD Desktop"
MAX_RECENT = 10
DEVICES = ("auto", "cpu", "cuda")


class Settings:
    """Typed access to the few preferences that survive a restart."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            self._q = QSettings(ORGANIZATION, APPLICATION)
        else:
            self._q = QSettings(str(path), QSettings.Format.IniFormat)

    def sync(self) -> None:
        self._q.sync()

    # -- device ---------------------------------------------------------------------------
    @property
    def device(self) -> str:
        value = str(self._q.value("device", "auto"))
        return value if value in DEVICES else "auto"

    @device.setter
    def device(self, value: str) -> None:
        if value not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}")
        self._q.setValue("device", value)

    # -- overlay defaults -----------------------------------------------------------------
    @property
    def method(self) -> str:
        # checked against the engine's methods once it has started (MainWindow._on_models_loaded)
        return str(self._q.value("overlay/method", DEFAULT_METHOD)) or DEFAULT_METHOD

    @method.setter
    def method(self, value: str) -> None:
        self._q.setValue("overlay/method", value)

    @property
    def colormap(self) -> str:
        try:  # an older version saved "CET-L3" for the heat map: its alias still reads
            return canonical_colormap(str(self._q.value("overlay/colormap", DEFAULT_COLORMAP)))
        except ValueError:
            return DEFAULT_COLORMAP

    @colormap.setter
    def colormap(self, value: str) -> None:
        self._q.setValue("overlay/colormap", value)

    @property
    def opacity(self) -> float:
        try:
            value = float(self._q.value("overlay/opacity", DEFAULT_OPACITY))
        except (TypeError, ValueError):
            return DEFAULT_OPACITY
        return min(max(value, 0.0), 1.0)

    @opacity.setter
    def opacity(self, value: float) -> None:
        self._q.setValue("overlay/opacity", float(value))

    # -- recent files ---------------------------------------------------------------------
    @property
    def recent(self) -> list[str]:
        value = self._q.value("recent", [])
        if isinstance(value, str):  # QSettings returns a bare string for a one-item list (INI)
            value = [value]
        return [str(v) for v in (value or []) if v][:MAX_RECENT]

    def add_recent(self, path: str | Path) -> list[str]:
        """Put *path* first (moving it if already there) and drop the oldest beyond the limit."""
        p = str(Path(path).resolve())
        items = [p] + [r for r in self.recent if r != p]
        items = items[:MAX_RECENT]
        self._q.setValue("recent", items)
        return items

    def clear_recent(self) -> None:
        self._q.setValue("recent", [])

    # -- PACS -----------------------------------------------------------------------------
    @property
    def pacs_servers(self) -> list[tuple[str, str]]:
        """(name, address) pairs: ``AET@HOST:PORT`` or a DICOMweb URL, as a person typed them."""
        value = self._q.value("pacs/servers", [])
        if isinstance(value, str):  # QSettings returns a bare string for a one-item list (INI)
            value = [value]
        out = []
        for item in value or []:
            name, sep, address = str(item).partition("|")
            if sep and address.strip():
                out.append((name.strip() or address.strip(), address.strip()))
        return out

    @pacs_servers.setter
    def pacs_servers(self, servers: list[tuple[str, str]]) -> None:
        self._q.setValue("pacs/servers", [f"{name}|{address}" for name, address in servers])

    @property
    def pacs_ae_title(self) -> str:
        return str(self._q.value("pacs/ae_title", "MEDKD")) or "MEDKD"

    @pacs_ae_title.setter
    def pacs_ae_title(self, value: str) -> None:
        self._q.setValue("pacs/ae_title", value)

    @property
    def pacs_move_port(self) -> int:
        try:
            value = int(self._q.value("pacs/move_port", 11112))
        except (TypeError, ValueError):
            return 11112
        return value if 1 <= value <= 65535 else 11112

    @pacs_move_port.setter
    def pacs_move_port(self, value: int) -> None:
        self._q.setValue("pacs/move_port", int(value))

