"""GPU benchmark results: one row per variant and batch size, the tables, and the summary line."""

from __future__ import annotations

from dataclasses import dataclass, field

from axis_model.bench_report import Fidelity
from axis_model.classifier import CrystalClassifier
from axis_model.flops import FlopCount

PAPER_PAIRS_S = 6.7  # AXIS (IUCrJ 2026): about 150 ms per visible + UV pair on one GPU


@dataclass
class Row:
    """One variant at one batch size."""

    variant: str
    batch: int
    img_s: float
    p50_ms: float
    p99_ms: float
    first_s: float
    mem_gib: float | None
    tflops: float
    pct_peak: float | None

    @property
    def pairs_s(self) -> float:
        """Visible + UV pairs per second (two images a pair)."""
        return self.img_s / 2


@dataclass
class GpuBenchResult:
    """What run_gpu_benchmark measured."""

    device: str
    device_type: str
    size: int
    base: str
    flops: FlopCount
    peak_tflops: float | None
    rows: list[Row] = field(default_factory=list)
    fidelity: dict[str, Fidelity] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    best: Row | None = None
    decode_img_s: float = 0.0
    stream_img_s: float = 0.0
    stream_note: str = ""
    reference_note: str = ""
    classifier: CrystalClassifier | None = field(default=None, repr=False)

    def table(self) -> str:
        """The per-variant, per-batch table, the fidelity table and the streamed rows."""
        gflop = self.flops.total / 1e9
        peak = f"{self.peak_tflops:g} TFLOP/s" if self.peak_tflops else "n/a (none known for this device)"
        lines = [
            f"device {self.device}, {self.size} px ({self.flops.tokens} tokens), model {self.base}: "
            f"{gflop:.4g} GFLOP an image, bf16 peak {peak}",
            f"{'variant':<28}{'batch':>6}{'img/s':>10}{'pairs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'mem GiB':>9}"
            f"{'TFLOP/s':>9}{'%peak':>7}{'first s':>9}",
        ]
        for r in self.rows:
            mem = f"{r.mem_gib:.2f}" if r.mem_gib is not None else "n/a"
            pct = f"{r.pct_peak:.1f}" if r.pct_peak is not None else "n/a"
            lines.append(
                f"{r.variant:<28}{r.batch:>6}{r.img_s:>10.1f}{r.pairs_s:>10.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
                f"{mem:>9}{r.tflops:>9.2f}{pct:>7}{r.first_s:>9.2f}"
            )
        lines.append(
            f"{'fidelity vs fp32 (transformers)':<32}{'agree':>8}{'max|dp|':>9}{'max|dl|':>9}  {self.reference_note}"
        )
        for name, f in self.fidelity.items():
            mark = "" if f.faithful else "  (not faithful)"
            lines.append(
                f"{name:<32}{100 * f.label_agreement:>7.1f}%{f.max_abs_dp:>9.4f}{f.max_abs_dlogit:>9.4f}{mark}"
            )
        lines += [f"{name}: FAILED {why}" for name, why in self.failed.items()]
        if self.stream_img_s:
            lines.append(f"decode only (JPEG bytes -> gray, CPU threads): {self.decode_img_s:.1f} img/s")
            lines.append(
                f"streamed bytes -> scores {self.stream_note}: {self.stream_img_s:.1f} img/s "
                f"({self.stream_img_s / 2:.1f} pairs/s)"
            )
        return "\n".join(lines)


def summary_line(result: GpuBenchResult, service_pairs_s: float | None) -> str:
    """The benchmark's last line (the figures of the fastest faithful variant)."""
    best = result.best
    assert best is not None
    pct = f"{best.pct_peak:.1f}%" if best.pct_peak is not None else "n/a%"
    service = f"{service_pairs_s:.1f} pairs/s" if service_pairs_s is not None else "not run"
    dp = result.fidelity[best.variant].max_abs_dp if best.variant in result.fidelity else float("nan")
    note = "" if result.device_type == "cuda" else "; device cpu: CPU figures, the GPU ones are still to be measured"
    return (
        f"gpu: {best.pairs_s:.1f} pairs/s at {result.size} px ({best.pairs_s / PAPER_PAIRS_S:.2f}x the paper's "
        f"{PAPER_PAIRS_S} pairs/s), {pct} of the device's bf16 peak, service end-to-end {service}, "
        f"max |dp| vs fp32 {dp:.4f} ({best.variant}, batch {best.batch}, {result.device}, model {result.base}{note})"
    )
