"""Perceptual hashes (pHash, dHash) in numpy, and a Hamming-distance index for near-duplicate search."""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image

HASH_BITS = 64


@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> NDArray[np.float64]:
    """Orthonormal DCT-II matrix, so that ``D @ x`` is the DCT of a column vector ``x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0, :] = np.sqrt(1.0 / n)
    return d


def _bits_to_int(bits: NDArray[np.bool_]) -> int:
    value = 0
    for b in bits.ravel():
        value = (value << 1) | int(b)
    return value


def phash(gray: Image.Image) -> int:
    """64-bit DCT perceptual hash: low 8x8 frequencies of a 32x32 reduction, compared with their median."""
    small = np.asarray(gray.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    d = _dct_matrix(32)
    low = (d @ small @ d.T)[:8, :8]
    return _bits_to_int(low > np.median(low))


def dhash(gray: Image.Image) -> int:
    """64-bit difference hash: is each pixel of a 9x8 reduction brighter than its right neighbour."""
    small = np.asarray(gray.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return _bits_to_int(small[:, 1:] > small[:, :-1])


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


class HammingIndex:
    """Exact search for a stored 64-bit hash within ``max_distance`` bits.

    Pigeonhole: two hashes within d bits agree exactly on at least one of d+1 disjoint bands, so only
    hashes sharing a band are compared. That keeps the search near linear on large datasets.
    """

    def __init__(self, max_distance: int) -> None:
        self.max_distance = max_distance
        n_bands = min(max_distance + 1, 16)
        edges = np.linspace(0, HASH_BITS, n_bands + 1).round().astype(int)
        self._bands = [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        self._exhaustive = max_distance + 1 > 16
        self._hashes: list[tuple[int, str]] = []
        self._buckets: dict[tuple[int, int], list[int]] = defaultdict(list)

    def _keys(self, h: int) -> list[tuple[int, int]]:
        return [(i, (h >> lo) & ((1 << (hi - lo)) - 1)) for i, (lo, hi) in enumerate(self._bands)]

    def nearest(self, h: int) -> tuple[str, int] | None:
        """The first stored (key, distance) within ``max_distance`` of ``h`` (smallest distance), or None."""
        if self._exhaustive:
            idx: set[int] = set(range(len(self._hashes)))
        else:
            idx = set()
            for k in self._keys(h):
                idx.update(self._buckets.get(k, ()))
        best: tuple[str, int] | None = None
        for i in sorted(idx):
            stored, key = self._hashes[i]
            dist = hamming(stored, h)
            if dist <= self.max_distance and (best is None or dist < best[1]):
                best = (key, dist)
        return best

    def add(self, h: int, key: str) -> None:
        """Store a hash under a key (e.g. the image URI)."""
        self._hashes.append((h, key))
        for k in self._keys(h):
            self._buckets[k].append(len(self._hashes) - 1)
