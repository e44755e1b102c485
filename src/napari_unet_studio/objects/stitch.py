"""Stitching instance ids across block borders of a big image.

Every block labels its objects on its region (the block plus a halo) and keeps the ids
of the objects that reach into the block (``block * cap + 1 ...``). For two blocks that
share a face, the first block's ids on the one-pixel strip just beyond the face (its
halo) and the second block's ids on its own first row of pixels label the *same*
pixels; an id pair (same class) that covers at least half of the smaller one's pixels
there is merged, so an object cut by the border becomes one object again, while two
objects split on purpose stay two even when the split line lies on the border (both
blocks see the same split). Where no halo exists (faces between slabs of a volume),
the pixels that touch across the face are paired with the same rule. The merged ids
are then renumbered 1..N.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["face_pairs", "build_relabel", "Relabel"]


def face_pairs(a: np.ndarray, b: np.ndarray, class_of: dict[int, int] | None = None,
               min_share: float = 0.5) -> list[tuple[int, int]]:
    """Id pairs to merge from two labellings ``a`` and ``b`` of a strip of pixels."""
    a = np.asarray(a, np.int64).ravel()
    b = np.asarray(b, np.int64).ravel()
    both = (a > 0) & (b > 0)
    if not both.any():
        return []
    pairs, counts = np.unique(np.stack([a[both], b[both]], 1), axis=0, return_counts=True)
    ua, na = np.unique(a[a > 0], return_counts=True)
    ub, nb = np.unique(b[b > 0], return_counts=True)
    face_a = dict(zip(ua.tolist(), na.tolist()))
    face_b = dict(zip(ub.tolist(), nb.tolist()))
    out = []
    for (i, j), n in zip(pairs.tolist(), counts.tolist()):
        if class_of is not None and class_of.get(i) != class_of.get(j):
            continue
        if n >= min_share * min(face_a[i], face_b[j]):
            out.append((i, j))
    return out


class Relabel:
    """Map from temporary block ids to final ids 1..N (0 stays 0); call it on arrays."""

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        order = np.argsort(keys)
        self.keys = np.asarray(keys, np.int64)[order]
        self.values = np.asarray(values, np.uint32)[order]

    @property
    def count(self) -> int:
        """Number of final objects."""
        return int(self.values.max()) if len(self.values) else 0

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        flat = ids.ravel().astype(np.int64)
        out = np.zeros(flat.shape, np.uint32)
        nz = flat > 0
        if len(self.keys) and nz.any():
            pos = np.searchsorted(self.keys, flat[nz])
            pos = np.clip(pos, 0, len(self.keys) - 1)
            hit = self.keys[pos] == flat[nz]
            vals = np.where(hit, self.values[pos], 0)
            out[nz] = vals
        return out.reshape(ids.shape)


def build_relabel(all_ids: Iterable[np.ndarray], pairs: Iterable[tuple[int, int]]) -> Relabel:
    """Union the merged pairs and number the resulting objects 1..N in order of first id."""
    ids = np.unique(np.concatenate([np.asarray(i, np.int64) for i in all_ids] or
                                   [np.zeros(0, np.int64)]))
    ids = ids[ids > 0]
    parent = {int(i): int(i) for i in ids}

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for i, j in pairs:
        if i in parent and j in parent:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(int(i)) for i in ids], np.int64)
    uniq_roots, final = np.unique(roots, return_inverse=True)
    return Relabel(ids, final.astype(np.uint32) + 1)
