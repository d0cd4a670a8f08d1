"""Perceptual hashes for near-duplicate images across splits (a leak that inflates test scores).

The DCT hash of Zauner (2010), as ``imagehash.phash`` computes it: the image in grey, resized to
32 x 32, its 2-D DCT-II, the 8 x 8 lowest frequencies compared with their median -> 64 bits. Two
images whose hashes differ in at most ``NEAR`` bits look the same to a reader (a re-export, a
resize, a slightly different window). Written here because it is a dozen lines over scipy and
the hashes are taken of the very arrays the model sees (after the card's preprocessing).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import dctn

NEAR = 6  # of 64 bits
_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def phash(image: torch.Tensor) -> int:
    """64-bit DCT hash of a (C, H, W) image in [0, 1]."""
    g = image.float().mean(0, keepdim=True)[None]
    small = F.interpolate(g, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()
    low = dctn(small.astype(np.float64), type=2, norm="ortho")[:8, :8]
    bits = (low > np.median(low)).reshape(-1)
    return int(np.packbits(bits).view(">u8")[0])


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances (len(a), len(b)) between two arrays of uint64 hashes."""
    x = np.bitwise_xor(a.astype(np.uint64)[:, None], b.astype(np.uint64)[None, :])
    return _POP[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1)


def near_pairs(a: np.ndarray, b: np.ndarray, limit: int = NEAR) -> list[tuple[int, int, int]]:
    """(index in a, index in b, distance) of every pair at most *limit* bits apart."""
    out: list[tuple[int, int, int]] = []
    for start in range(0, len(a), 512):  # bounded memory on large sets
        d = distances(a[start:start + 512], b)
        for i, j in zip(*np.nonzero(d <= limit)):
            out.append((start + int(i), int(j), int(d[i, j])))
    return out
