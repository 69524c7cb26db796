"""Quick proof that domain B is a real shift from A: ``python -m axis_synth.shift``.

Trains a cheap classifier (logistic regression on downsampled grey pixels plus edge and
brightness statistics) on domain A and on domain B, and reports crystal recall, precision and
balanced accuracy on held-out A and B images. Expected: A→A high, A→B clearly lower recall,
B→B clearly better than A→B (the shift is learnable).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from axis_synth.domain import DOMAIN_A, DOMAIN_B, Domain
from axis_synth.render import render_array
from axis_synth.spec import CRYSTAL_OUTCOMES, DEFAULT_CLASS_MIX, OUTCOMES, SUBTYPES, DropSpec, Mode


@dataclass(frozen=True)
class Scores:
    """Binary crystal-vs-other metrics on one test set."""

    recall: float
    precision: float
    balanced_accuracy: float
    n: int


def sample_specs(n: int, seed: int) -> list[DropSpec]:
    """``n`` drops with the default class mix; crystalline drops at growth 0.3..1 (crystals visible)."""
    rng = np.random.default_rng([seed, 23])
    p = np.array([DEFAULT_CLASS_MIX[o] for o in OUTCOMES])
    outcomes = rng.choice(len(OUTCOMES), size=n, p=p / p.sum())
    specs = []
    for i, o in enumerate(outcomes):
        name = OUTCOMES[int(o)]
        growth = float(rng.uniform(0.3, 1.0)) if name in CRYSTAL_OUTCOMES else 1.0
        sub = str(rng.choice(SUBTYPES[name]))
        specs.append(DropSpec(outcome=name, subtype=sub, growth=growth, drop_seed=seed * 1_000_003 + i))  # type: ignore[arg-type]
    return specs


def features(img: np.ndarray) -> np.ndarray:
    """Grey 24x24 thumbnail plus edge-strength and brightness percentiles (scale-free)."""
    grey = img.astype(np.float32).mean(axis=2)
    grey = grey / max(float(np.median(grey)), 1.0)
    thumb = np.asarray(Image.fromarray(grey).resize((24, 24), Image.Resampling.BILINEAR)).ravel()
    gy, gx = np.gradient(grey)
    mag = np.sqrt(gx * gx + gy * gy)
    lap = np.abs(grey[1:-1, 1:-1] * 4 - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:])
    stats = np.concatenate(
        [
            np.percentile(mag, [50, 90, 99, 99.9]),
            np.percentile(lap, [50, 90, 99, 99.9]),
            np.percentile(grey, [0.1, 1, 50, 99, 99.9]),
        ]
    )
    return np.concatenate([thumb, stats]).astype(np.float32)


def _job(args: tuple[DropSpec, Domain, Mode, int]) -> np.ndarray:
    spec, domain, mode, seed = args
    return features(render_array(spec, domain, mode, seed))


def build_set(domain: Domain, mode: Mode, n: int, seed: int, workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix and crystal labels (1 = crystal) of ``n`` rendered drops."""
    specs = sample_specs(n, seed)
    jobs = [(s, domain, mode, seed * 7919 + i) for i, s in enumerate(specs)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            feats = list(pool.map(_job, jobs, chunksize=16))
    else:
        feats = [_job(j) for j in jobs]
    return np.stack(feats), np.array([s.label == "crystal" for s in specs], dtype=int)


def _score(y: np.ndarray, pred: np.ndarray) -> Scores:
    tp = int(((pred == 1) & (y == 1)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    recall = tp / max(tp + fn, 1)
    spec = tn / max(tn + fp, 1)
    return Scores(recall, tp / max(tp + fp, 1), (recall + spec) / 2, len(y))


def domain_shift_check(
    n_train: int = 600,
    n_test: int = 400,
    mode: Mode = "visible",
    domains: tuple[Domain, Domain] = (DOMAIN_A, DOMAIN_B),
    seed: int = 0,
    workers: int = 2,
) -> dict[str, Scores]:
    """Train on A, test on A and B; train on B, test on B. Keys: 'A->A', 'A->B', 'B->B'."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = domains
    xa, ya = build_set(a, mode, n_train, seed * 10 + 1, workers)
    xat, yat = build_set(a, mode, n_test, seed * 10 + 2, workers)
    xb, yb = build_set(b, mode, n_train, seed * 10 + 3, workers)
    xbt, ybt = build_set(b, mode, n_test, seed * 10 + 4, workers)
    out: dict[str, Scores] = {}
    for name, (x, y) in {"A": (xa, ya), "B": (xb, yb)}.items():
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000, class_weight="balanced"))
        clf.fit(x, y)
        tests = {"A": (xat, yat), "B": (xbt, ybt)} if name == "A" else {"B": (xbt, ybt)}
        for tname, (xt, yt) in tests.items():
            out[f"{name}->{tname}"] = _score(yt, clf.predict(xt))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Print the A/B shift table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--mode", choices=["visible", "uv"], default="visible")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    t = time.perf_counter()
    res = domain_shift_check(a.n_train, a.n_test, a.mode, seed=a.seed, workers=a.workers)
    print(f"mode={a.mode} n_train={a.n_train} n_test={a.n_test} seed={a.seed}")
    print(f"{'train->test':<12}{'recall':>8}{'precision':>11}{'bal.acc':>9}")
    for k, s in res.items():
        print(f"{k:<12}{s.recall:>8.3f}{s.precision:>11.3f}{s.balanced_accuracy:>9.3f}")
    print(f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
