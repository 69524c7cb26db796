"""Inference benchmark results: fidelity of a path against the naive reference, per-variant rows, the table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from axis_model.classifier import CrystalClassifier
from axis_model.spec import CRYSTAL_INDEX

MAX_DLOGIT = 0.08  # = 4 x the 0.02 probability bar: what moves an image at p = 0.5 by 0.02


def logit_margin(logits: np.ndarray) -> np.ndarray:
    """logit(crystal) - logit(other): the probability's log-odds, free of the saturation that hides errors."""
    return logits[:, CRYSTAL_INDEX].astype(np.float64) - logits[:, 1 - CRYSTAL_INDEX].astype(np.float64)


def crystal_probability(logits: np.ndarray) -> np.ndarray:
    """softmax(logits)[:, crystal] in float64 (the sigmoid of the log-odds)."""
    return 1.0 / (1.0 + np.exp(-logit_margin(logits)))


@dataclass
class Fidelity:
    """How far one path's outputs are from the naive fp32 reference on the same images."""

    label_agreement: float
    max_abs_dp: float
    max_abs_dlogit: float

    @classmethod
    def of(cls, logits: np.ndarray, reference: np.ndarray) -> Fidelity:
        """Compare N x 2 logits with the reference's."""
        p, ref = crystal_probability(logits), crystal_probability(reference)
        return cls(
            label_agreement=float(np.mean((p >= 0.5) == (ref >= 0.5))),
            max_abs_dp=float(np.max(np.abs(p - ref))),
            max_abs_dlogit=float(np.max(np.abs(logit_margin(logits) - logit_margin(reference)))),
        )

    @property
    def faithful(self) -> bool:
        """Label agreement >= 99 %, max |dp| <= 0.02 and max |dl| <= 0.08 vs the fp32 naive path.

        The log-odds bar is the probability bar at p = 0.5 (dp ~ dl / 4 there): a trained model's
        probabilities are mostly near 0 or 1, where softmax saturation hides any error from |dp| alone.
        """
        return self.label_agreement >= 0.99 and self.max_abs_dp <= 0.02 and self.max_abs_dlogit <= MAX_DLOGIT


@dataclass
class VariantResult:
    """One fast-path variant measured on the benchmark images."""

    variant: str
    ms_per_image: float
    fidelity: Fidelity
    cpu_ms_per_image: float = 0.0
    note: str = ""

    @property
    def label_agreement(self) -> float:
        """Share of images with the same label as the naive path at threshold 0.5."""
        return self.fidelity.label_agreement

    @property
    def max_abs_dp(self) -> float:
        """Largest probability difference from the naive path."""
        return self.fidelity.max_abs_dp

    @property
    def faithful(self) -> bool:
        """Meets the fidelity bar."""
        return self.fidelity.faithful


@dataclass
class BenchResult:
    """Result of run_model_benchmark (the service end-to-end part is added by the service benchmark)."""

    size: int
    n_images: int
    base: str
    threads: int
    naive_ms_per_image: float
    fast_ms_per_image: float
    variant: str
    label_agreement: float
    max_abs_dp: float
    naive_accuracy: float
    confident_share: float
    naive_cpu_ms_per_image: float = 0.0
    variants: list[VariantResult] = field(default_factory=list)
    extra: list[VariantResult] = field(default_factory=list)  # calibration rows, not candidates
    classifier: CrystalClassifier | None = field(default=None, repr=False)  # the confident weights measured
    naive_probs: list[float] = field(default_factory=list)
    fast_probs: list[float] = field(default_factory=list)

    @property
    def borderline_share(self) -> float:
        """Share of the naive probabilities in 0.1-0.9, where |dp| shows a numeric error."""
        return 1.0 - self.confident_share

    @property
    def speedup(self) -> float:
        """Naive time per image / fast time per image."""
        return self.naive_ms_per_image / self.fast_ms_per_image

    @property
    def naive_img_s(self) -> float:
        """Naive throughput, images per second."""
        return 1000.0 / self.naive_ms_per_image

    @property
    def fast_img_s(self) -> float:
        """Fast throughput, images per second."""
        return 1000.0 / self.fast_ms_per_image

    def _row(self, name: str, v: VariantResult) -> str:
        speed = cpu_speed = ""
        if v.ms_per_image:
            speed = f"{self.naive_ms_per_image / v.ms_per_image:.2f}x"
        if v.cpu_ms_per_image:
            cpu_speed = f"{self.naive_cpu_ms_per_image / v.cpu_ms_per_image:.2f}x"
        timing = (
            f"{v.ms_per_image:>9.1f}{1000 / v.ms_per_image:>8.2f}{v.cpu_ms_per_image:>9.1f}"
            if v.ms_per_image
            else " " * 26
        )
        mark = v.note or ("" if v.faithful else "(not faithful)")
        return (
            f"{name:<30}{timing}{100 * v.label_agreement:>7.1f}%{v.max_abs_dp:>9.4f}{v.fidelity.max_abs_dlogit:>9.4f}"
            f"{speed:>9}{cpu_speed:>9}  {mark}"
        ).rstrip()

    def table(self) -> str:
        """Human-readable table of every path measured (speedups are naive time / path time)."""
        rows = [
            f"{'path':<30}{'ms/img':>9}{'img/s':>8}{'cpu ms':>9}{'agree':>8}{'max|dp|':>9}{'max|dl|':>9}"
            f"{'speedup':>9}{'cpu sp.':>9}",
            f"{'naive fp32 (unmerged)':<30}{self.naive_ms_per_image:>9.1f}{self.naive_img_s:>8.2f}"
            f"{self.naive_cpu_ms_per_image:>9.1f}",
        ]
        rows += [self._row("fast " + v.variant, v) for v in self.variants]
        rows += [self._row(v.variant, v) for v in self.extra]
        rows.append(
            f"faithful = agreement >= 99 %, max|dp| <= 0.02 and max|dl| (largest log-odds change) <= {MAX_DLOGIT}, "
            f"the same bar for an image at p = 0.5; {self.borderline_share:.0%} of the naive probabilities lie in "
            f"0.1-0.9, naive accuracy {self.naive_accuracy:.1%}"
        )
        return "\n".join(rows)
