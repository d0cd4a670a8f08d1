"""The Debian packages behind the system libraries the bundle loads but does not carry.

    python3 packaging/deb/system_deps.py [dist/medkd-desktop]

Why: PyInstaller leaves the C library, OpenGL/EGL, X11/xcb, fontconfig and a few others out of
the bundle on purpose (they must match the machine's drivers and display server), so the .deb
must depend on them. This runs ldd on every ELF file of the bundle, keeps the libraries resolved
outside it, and asks dpkg which package owns each; depends.txt is kept in step with its output.
Libraries ldd cannot find here are listed too (optional RDMA/GTK plugins, or a missing package).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: Files that load only when their platform is there (GTK theme under GNOME, Wayland sessions, RDMA
#: storage): their libraries are not dependencies of the package.
OPTIONAL = ("platformthemes/libqgtk3", "platforms/libqwayland", "wayland-", "libQt6Wayland", "libQt6WlShell",
            "libcufile_rdma")

bundle = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/medkd-desktop").resolve()
outside: dict[str, str] = {}
users: dict[str, set[str]] = {}
missing: dict[str, set[str]] = {}
for path in bundle.rglob("*"):
    if not path.is_file() or path.is_symlink():
        continue
    with open(path, "rb") as fh:
        if fh.read(4) != b"\x7fELF":
            continue
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "=>" not in line:
            continue
        name, _, rest = line.strip().partition(" => ")
        target = rest.split(" (")[0].strip()
        if target == "not found":
            missing.setdefault(name, set()).add(path.relative_to(bundle).as_posix())
        elif target and not target.startswith(str(bundle)):
            outside[name] = target
            users.setdefault(name, set()).add(path.relative_to(bundle).as_posix())
required = {n: t for n, t in outside.items() if not all(any(o in u for o in OPTIONAL) for u in users[n])}
queries = set()
for target in required.values():  # merged /usr: dpkg may know a file under /lib or under /usr/lib
    real = str(Path(target).resolve())
    queries |= {target, real, "/usr" + target if target.startswith("/lib") else target}
owners = subprocess.run(["dpkg", "-S", *sorted(queries)], capture_output=True, text=True).stdout
packages = sorted({line.split(":")[0] for line in owners.splitlines() if ":" in line})
unowned = sorted(n for n, t in required.items() if not any(q in owners for q in (t, str(Path(t).resolve()))))
print("system libraries:", ", ".join(sorted(required)))
print("only for optional plugins:", ", ".join(sorted(set(outside) - set(required))))
print("packages:", ", ".join(packages))
print("owned by no package (e.g. a local CUDA install; torch's own copy is loaded first):",
      ", ".join(f"{n} ({outside[n]})" for n in unowned) or "none")
for name, users in sorted(missing.items()):
    print(f"not found here: {name} (needed by {', '.join(sorted(users)[:3])})")
