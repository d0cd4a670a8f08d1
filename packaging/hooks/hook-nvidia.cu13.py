"""CUDA 13 wheels (torch 2.14's ``cuda-toolkit`` extras) put cuBLAS, cuFFT, cuSPARSE, cuRAND,
cuSOLVER, NVRTC, nvJitLink and the CUDA runtime into one folder, ``nvidia/cu13/lib``. The
contrib hooks know the per-library CUDA 12 folders only, so this one collects that folder the
same way: every ``lib*.so*`` kept at its own relative path (torch's RPATH,
``$ORIGIN/../../nvidia/cu13/lib``, points there), and no top-level symlinks to them, which
would make the libraries that ``dlopen`` their siblings by name look in the wrong folder.
"""
from _pyinstaller_hooks_contrib.utils.nvidia_cuda import (
    collect_nvidia_cuda_binaries,
    create_symlink_suppression_patterns,
)

binaries = collect_nvidia_cuda_binaries(__file__)
bindepend_symlink_suppression = create_symlink_suppression_patterns(__file__)
