"""The self-test's checks: each does the real thing through the app's own functions.

Each check takes the shared :class:`SelfTestContext`, returns one line of detail, and raises
:class:`CheckFailed` with one sentence when the answer is no. Details never hold patient data:
the sample and codec files are public test files, and nothing here prints their headers.

Length: a little over 300 lines because every freezing trap of issue #16 has its check here,
next to the sentence saying which trap it is; splitting them would scatter that list.
"""
from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import BUNDLED_MODELS_DIR, REPO_DIR, RESOURCES_DIR, SAMPLES_DIR
from . import CheckFailed, SelfTestContext
from .runtime import bundle_dir, ensure_streams, install_dir, is_frozen, user_dirs

#: Small real compressed DICOM files from pydicom's test set (resources/selftest/SOURCES.md).
SELFTEST_DIR = RESOURCES_DIR / "selftest"


@dataclass(frozen=True)
class CodecSample:
    """One codec family: a compressed file and a reference of the same picture, and how close
    the two must decode (0: identical, lossless; else the mean absolute difference allowed on
    display values in [0, 1])."""

    family: str
    file: str
    reference: str
    tolerance: float = 0.0


#: One file per codec family the readers promise (README: "every transfer syntax ... via pylibjpeg").
#: The lossless ones must decode bit for bit like their uncompressed (or RLE) twin.
CODEC_SAMPLES = (
    CodecSample("JPEG baseline", "SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_rle.dcm", tolerance=0.02),
    CodecSample("JPEG lossless", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),
    CodecSample("JPEG 2000", "MR_small_jp2klossless.dcm", "MR_small.dcm"),
    CodecSample("JPEG-LS", "MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    CodecSample("RLE", "MR_small_RLE.dcm", "MR_small.dcm"),
)


# ------------------------------------------------------------------------------ environment


def check_user_folders(ctx: SelfTestContext) -> str:
    """Everything MedKD writes goes to per-user folders (the installed folder is read-only):
    each of them can be created and written here, and none lies inside the installed folder."""
    inst = install_dir()
    for purpose, folder in user_dirs().items():
        if inst is not None and (folder.resolve() == inst or inst in folder.resolve().parents):
            raise CheckFailed(f"the per-user {purpose} folder lies inside the installed folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".selftest-", delete=True) as fh:
                fh.write(b"ok")
        except OSError as exc:
            raise CheckFailed(f"the per-user {purpose} folder cannot be written ({exc.strerror})") from None
    return ", ".join(f"{k} {v}" for k, v in user_dirs().items())


def check_no_console(ctx: SelfTestContext) -> str:
    """A windowed app has no stdout/stderr: the runtime fix gives it a log file, after which
    print() and a tqdm progress bar (pytorch-grad-cam's Ablation-CAM draws one) work."""
    import tqdm

    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = None  # type: ignore[assignment]  # what a windowed Windows app starts with
    try:
        target = ensure_streams()
        if sys.stdout is None or sys.stderr is None:
            raise CheckFailed("the missing console streams were not replaced")
        print("medkd self-test: no-console probe")
        total = sum(tqdm.tqdm(range(3), desc="self-test"))
        if total != 3:
            raise CheckFailed("tqdm did not iterate")
    finally:
        stream = sys.stdout
        sys.stdout, sys.stderr = saved
        if stream is not None and stream not in saved:
            stream.close()
    return f"stdout/stderr replaced by {target.name if target else os.devnull}; print and tqdm work"


# ---------------------------------------------------------------------------------- studies


def _decode(path: Path) -> np.ndarray:
    """The frame as the viewers get it: open_study's pixels through its display window, [0, 1]."""
    from ..studies import open_study

    return np.asarray(open_study(path).frame(0, 0).display(), dtype=np.float32)


def check_codecs(ctx: SelfTestContext) -> str:
    """One compressed DICOM per codec family decodes through open_study exactly like its
    reference, and pylibjpeg's plugin for it is registered (pydicom finds the pylibjpeg plugins
    through their package metadata's entry points: without it a frozen app decodes nothing)."""
    import pydicom
    from pydicom.pixels import get_decoder, pixel_array

    done = []
    for sample in CODEC_SAMPLES:
        path, ref = SELFTEST_DIR / sample.file, SELFTEST_DIR / sample.reference
        if not path.is_file() or not ref.is_file():
            raise CheckFailed(f"{sample.family}: the test file is missing from the installation")
        uid = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        plugins = get_decoder(uid).available_plugins
        if "pylibjpeg" not in plugins:
            raise CheckFailed(f"{sample.family}: pydicom has no pylibjpeg decoder (plugin metadata missing?); "
                              f"available: {', '.join(plugins) or 'none'}")
        direct = pixel_array(str(path), decoding_plugin="pylibjpeg")
        got, want = _decode(path), _decode(ref)
        if got.shape != want.shape or direct.shape[:2] != got.shape[:2]:
            raise CheckFailed(f"{sample.family}: decoded shape {got.shape} differs from the reference's {want.shape}")
        diff = float(np.abs(got - want).mean())
        if diff > sample.tolerance:
            raise CheckFailed(f"{sample.family}: decoded pixels differ from the reference (mean |diff| {diff:.4f})")
        done.append(f"{sample.family} ({'identical' if diff == 0 else f'mean |diff| {diff:.3f}'})")
    return "; ".join(done)


def sample_paths() -> list[Path]:
    """Every bundled sample study (files and series folders; SOURCES.md is their licence list)."""
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() != ".md")


def check_samples(ctx: SelfTestContext) -> str:
    """Every bundled sample study opens, with finite pixels."""
    from ..studies import open_study

    paths = sample_paths()
    if not paths:
        raise CheckFailed(f"no sample studies in {SAMPLES_DIR}")
    studies = {}
    for path in paths:
        study = open_study(path)
        if study.n_frames < 1 or not np.isfinite(np.asarray(study.pixels, dtype=np.float64)).all():
            raise CheckFailed(f"{path.name}: opened without usable pixels")
        studies[path.name] = study
    ctx.facts["studies"] = studies
    return f"{len(paths)} open: " + ", ".join(f"{n} ({s.kind.value})" for n, s in studies.items())


def check_glass_brain(ctx: SelfTestContext) -> str:
    """nilearn draws a glass brain of the fMRI sample (needs its bundled brain outlines and
    matplotlib's Agg backend), and it is not blank."""
    from ..studies import open_study
    from ..studies.glass_brain import render_glass_brain

    nifti = [p for p in sample_paths() if p.name.endswith((".nii", ".nii.gz"))]
    if not nifti:
        raise CheckFailed("no NIfTI sample to draw")
    study = open_study(nifti[0])
    volume = study.maps.get("input") if study.maps else None
    if volume is None:
        raise CheckFailed(f"{nifti[0].name} has no map to draw")
    img = render_glass_brain(volume)
    coloured = float((img.max(axis=-1) - img.min(axis=-1) > 0.2).mean())
    outline = float((img.max(axis=-1) < 0.8).mean())
    if img.shape[-1] != 3 or coloured < 0.005 or outline < 0.01:
        raise CheckFailed(f"the glass brain is blank (coloured {coloured:.1%}, outline {outline:.1%})")
    return f"{img.shape[0]}x{img.shape[1]} px, {coloured:.1%} coloured, {outline:.1%} outline"


# ------------------------------------------------------------------------------------ models


def _synthetic_frame(rgb: bool) -> np.ndarray:
    """A smooth deterministic test image, for a task with no bundled sample."""
    y, x = np.mgrid[0:224, 0:224] / 223.0
    grey = (0.5 + 0.4 * np.sin(6 * x) * np.cos(4 * y)).astype(np.float32)
    return np.stack([grey, grey[::-1], grey[:, ::-1]], axis=-1) if rgb else grey


def check_models(ctx: SelfTestContext) -> str:
    """Every bundled task's teacher and student load with verified sha256, run a forward pass
    and a Grad-CAM (a backward pass) through the engine, on that task's sample study."""
    from ..inference.engine import Engine
    from ..inference.pairing import propose
    from ..models.registry import ModelRegistry
    from ..models.weights import sha256_file
    from ..studies import open_study

    registry = ModelRegistry([BUNDLED_MODELS_DIR])
    tasks = registry.paired_tasks()
    if not tasks:
        raise CheckFailed(f"no teacher/student pair installed in {BUNDLED_MODELS_DIR}")
    studies = ctx.facts.get("studies") or {p.name: open_study(p) for p in sample_paths()}
    by_task = {}
    for study in studies.values():
        task = propose(study, registry).task
        if task is not None:
            by_task.setdefault(task, study)
    engine = Engine(registry, "cpu")
    done = []
    for task in tasks:
        pair = registry.pair(task)
        for card in (pair.teacher, pair.student):
            if sha256_file(card.weights_path) != card.sha256:
                raise CheckFailed(f"{card.id}: the weights do not match the card's sha256 (damaged installation)")
        study = by_task.get(task)
        if study is not None:
            analysis = engine.analyze(study, pair, ["gradcam"], strip=False)
        else:
            analysis = engine.analyze_frame(_synthetic_frame(pair.teacher.input.channels == 3), pair, ["gradcam"],
                                            strip=False)
        for res in (analysis.teacher, analysis.student):
            p = np.asarray(res.probabilities, dtype=np.float64)
            heat = res.heatmaps.get("gradcam")
            if not np.isfinite(p).all() or abs(p.sum() - 1.0) > 1e-3:
                raise CheckFailed(f"{res.card_id}: the forward pass gave no probabilities")
            if heat is None or heat.map.size == 0 or not np.isfinite(heat.map).all():
                raise CheckFailed(f"{res.card_id}: Grad-CAM gave no heatmap")
        ctx.analyses[task] = (analysis, study, pair)
        done.append(f"{task} ({'sample' if study is not None else 'synthetic frame'})")
    return f"{len(tasks)} pairs verified and explained: " + ", ".join(done)


def check_report(ctx: SelfTestContext) -> str:
    """A PDF report and a DICOM Secondary Capture are written to a temporary folder by the
    report exporters (matplotlib's PDF backend, highdicom and its ICC profile data file)."""
    import pydicom

    from ..report import export_analysis
    from ..studies.study import StudyKind

    dicom = [v for v in ctx.analyses.values() if v[1] is not None and v[1].kind in (StudyKind.DICOM, StudyKind.DICOM_SERIES)]
    if not dicom:
        raise CheckFailed("no DICOM study was analysed (the models check must pass first)")
    analysis, study, pair = dicom[0]
    with tempfile.TemporaryDirectory(prefix="medkd-selftest-") as tmp:
        written = export_analysis(analysis, study, pair, tmp, "gradcam")
        if written.errors:
            raise CheckFailed("export failed: " + "; ".join(f"{k}: {v}" for k, v in written.errors.items()))
        for kind in ("pdf", "dicom", "png", "json"):
            if kind not in written.files or not Path(written.files[kind]).is_file():
                raise CheckFailed(f"no {kind} file was written")
        pdf = Path(written.files["pdf"])
        if not pdf.read_bytes().startswith(b"%PDF"):
            raise CheckFailed("the PDF report is not a PDF")
        ds = pydicom.dcmread(written.files["dicom"])
        pixels = ds.pixel_array
        sizes = {k: Path(v).stat().st_size for k, v in written.files.items()}
    return (f"PDF {sizes['pdf'] // 1024} kB, DICOM SC {ds.SOPClassUID.name} {pixels.shape[1]}x{pixels.shape[0]} "
            f"({sizes['dicom'] // 1024} kB), PNG and JSON")


# ---------------------------------------------------------------------------------- runtime

#: Shared libraries that CUDA torch opens by name at run time (dlopen), so PyInstaller's
#: dependency analysis cannot see them: cuDNN's sub-libraries, NVRTC, nvJitLink, cuSPARSELt.
CUDA_RUNTIME_LIBS = ("libcudart.so", "libcublas.so", "libcublasLt.so", "libcudnn.so", "libcudnn_ops.so",
                     "libcudnn_cnn.so", "libcudnn_graph.so", "libcudnn_engines_precompiled.so",
                     "libcudnn_engines_runtime_compiled.so", "libnvrtc.so", "libnvJitLink.so", "libcusparseLt.so")


def _cuda_lib_roots() -> list[Path]:
    root = bundle_dir()
    if root is not None:
        return [root]
    return [Path(p) / "nvidia" for p in sys.path if (Path(p) / "nvidia").is_dir()]


def check_cuda(ctx: SelfTestContext) -> str:
    """A CUDA build of torch can use a GPU: on a GPU, a convolution and a matrix product run there
    (cuDNN, cuBLAS); without one, every CUDA library torch opens at run time is present and loads."""
    import ctypes

    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build (no CUDA libraries to carry)"
    if torch.cuda.is_available():
        x = torch.randn(1, 3, 64, 64, device="cuda")
        y = torch.nn.functional.conv2d(x, torch.randn(8, 3, 3, 3, device="cuda")).sum() + (x[0, 0] @ x[0, 0]).sum()
        torch.cuda.synchronize()
        if not torch.isfinite(y):
            raise CheckFailed("a GPU computation gave no finite result")
        return f"GPU {torch.cuda.get_device_name(0)}: convolution and matmul ran (CUDA {torch.version.cuda})"
    if sys.platform != "linux":
        return f"CUDA {torch.version.cuda} build, no GPU here"
    found: dict[str, Path] = {}
    for root in _cuda_lib_roots():
        for path in root.rglob("lib*.so*"):
            for name in CUDA_RUNTIME_LIBS:
                if path.name.startswith(name + ".") and name not in found:
                    found[name] = path
    missing = [n for n in CUDA_RUNTIME_LIBS if n not in found]
    if missing:
        raise CheckFailed(f"CUDA {torch.version.cuda} build without {', '.join(missing)}: a GPU would not work")
    for path in found.values():
        ctypes.CDLL(str(path))
    return f"no GPU here; CUDA {torch.version.cuda} build, its {len(found)} run-time libraries load"


def _child_probe(queue: Any) -> None:
    """Runs in the spawned child: the heavy imports work there too (spawn re-runs the executable)."""
    import torch

    from ..models.registry import ModelRegistry

    queue.put({"pid": os.getpid(), "frozen": is_frozen(), "sum": float(torch.arange(5).sum()),
               "tasks": len(ModelRegistry([BUNDLED_MODELS_DIR]).paired_tasks())})


def check_multiprocessing(ctx: SelfTestContext) -> str:
    """One "spawn" child (what the training data workers use) starts, reports back and joins.
    A frozen executable needs ``multiprocessing.freeze_support()`` first thing, or the child
    starts a second copy of the app instead of the worker."""
    mp = multiprocessing.get_context("spawn")
    queue = mp.Queue()
    proc = mp.Process(target=_child_probe, args=(queue,), daemon=True)
    proc.start()
    reply = None
    deadline = time.monotonic() + 300
    while reply is None and time.monotonic() < deadline:
        try:
            reply = queue.get(timeout=1)
        except queue_module.Empty:
            if not proc.is_alive():  # died before reporting (e.g. the frozen child re-ran the app)
                break
    if reply is None:
        proc.terminate()
        proc.join(10)
        raise CheckFailed(f"the child process did not report back (exit code {proc.exitcode})")
    proc.join(60)
    if proc.exitcode != 0 or reply.get("sum") != 10.0 or reply.get("frozen") != is_frozen():
        raise CheckFailed(f"the child process failed (exit code {proc.exitcode}, reply {reply})")
    return f"spawned child {reply['pid']} imported torch and the registry ({reply['tasks']} tasks) and exited 0"


def allowed_module_roots() -> list[Path]:
    """Where modules may come from: the bundle when frozen; from source, the interpreter's own
    folders and this checkout or site-packages."""
    root = bundle_dir()
    if root is not None:
        return [root]
    return sorted({Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, REPO_DIR)})


#: Where the operating system's own shared libraries live: the bundle leaves the C library,
#: OpenGL, X11/xcb, fontconfig and the like to the system on purpose (they match its drivers).
SYSTEM_LIB_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")


def loaded_native_libraries() -> list[Path]:
    """Shared libraries mapped into this process (Linux: /proc/self/maps; elsewhere none)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return []
    libs = set()
    for line in maps.read_text(errors="replace").splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/") and ".so" in fields[5]:
            libs.add(fields[5].removesuffix(" (deleted)"))
    return sorted(Path(p) for p in libs)


def check_modules(ctx: SelfTestContext) -> str:
    """Every imported module, and every shared library loaded, comes from inside the bundle (not
    a site-packages or a CUDA toolkit that happens to be on the machine) or, for libraries, from
    the operating system: checked last, after the other checks imported and loaded what they need."""
    roots = allowed_module_roots()
    outside = []
    count = 0
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or not os.path.isabs(file):  # built-in, or a virtual module (torch.ops, shiboken's
            continue  # signature support) whose __file__ is a bare name, not a place on disk
        count += 1
        path = Path(file).resolve()
        if not any(path == r or r in path.parents for r in roots):
            outside.append(f"{name} ({path})")
    if outside:
        raise CheckFailed(f"{len(outside)} of {count} modules come from outside {roots[0]}: " + ", ".join(outside[:5]))
    libs = loaded_native_libraries()
    foreign = [str(p) for p in libs if not str(p).startswith(SYSTEM_LIB_DIRS)
               and not any(p == r or r in p.parents for r in roots)]
    if foreign:
        raise CheckFailed(f"{len(foreign)} shared libraries come from outside {roots[0]} and the system: "
                          + ", ".join(foreign[:5]))
    where = "the bundle " + str(roots[0]) if is_frozen() else ", ".join(map(str, roots))
    return f"{count} modules and {len(libs)} shared libraries, all from {where} (libraries also from the system)"
