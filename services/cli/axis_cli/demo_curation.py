"""``python -m axis_cli.demo_curation`` (``make experiment-curation``): does curating likely-wrong agreements pay?

The demo's loop, in one process and on the demo's synthetic plates (axis_simulators.robot / axis_synth), with the
library code the services run: a foundation model trained on domain A scores facility-B plates (both modes, fused
by max), simulated LIMS users score them (three users, one of them careless), the routing of the discrepancy
service (axis_core.routing: the same score, budget and per-user reliability from curated outcomes) fills the
curator queue, simulated curators label the queue in its order up to the same budget in both arms, and the
curation export's rule builds the training set (agreements with their agreed label, curated items with the
curators' label, uncurated disagreements and items the curators found uncertain left out). Each arm fine-tunes a
copy of the foundation on all loop plates but one with the trainer's own loop (axis_model.finetune.train_mode:
the best epoch on that validation plate is kept), picks its decision threshold on the same plate (best
balanced accuracy under the training labels, as the trainer selects on its validation split) and is measured on
held-out facility-B test plates. Per seed the loop runs twice:

* disagreements only: the queue is the disagreements (ordered by the same score);
* with uncertain agreements: the queue also receives routed agreements within the budget.

What it does not run: the broker, PostgreSQL and the services' processes (the full stack is ``make demo``, ~7 min
a run; four runs would not fit the 20-minute bound on 2 cores). The curators are perfect apart from an
``uncertain`` share (an uncertain answer spends a label and yields none), and one label decides an item (the
demo's consensus of two would halve every budget alike).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

USERS: tuple[tuple[str, float], ...] = (("lims-ann", 0.03), ("lims-bob", 0.05), ("lims-cy", 0.30))


@dataclass(frozen=True)
class ExperimentOptions:
    """Sizes of one experiment (two arms per seed)."""

    seeds: tuple[int, ...] = (0, 1)
    budget: int = 60
    rounds: int = 2
    foundation_plates: int = 3
    loop_plates: int = 4
    test_plates: int = 2
    wells: int = 48
    inspections: int = 3
    foundation_steps: int = 300
    steps: int = 300
    threshold: float = 0.5
    share: float = 0.5
    uncertain_share: float = 0.1
    users: tuple[tuple[str, float], ...] = USERS
    torch_threads: int = 1
    size: tuple[int, int] = (224, 168)


@dataclass
class Inspection:
    """One facility-B inspection: its images (per mode, model input), truth and what the loop made of it."""

    iid: str
    plate: str
    truth: str
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    probs: dict[str, float] = field(default_factory=dict)
    user: str = ""
    human: str = ""


def say(msg: str) -> None:
    """Progress on stderr (the result line goes to stdout)."""
    print(f"[experiment] {msg}", file=sys.stderr, flush=True)


def render(
    domain: str, plates: int, seed: int, part: str, o: ExperimentOptions, preprocess: object
) -> list[Inspection]:
    """Plan and render plates; one Inspection per inspection with both modes' model inputs."""
    from axis_model import preprocess_bytes
    from axis_simulators.robot import RobotConfig, encode_image, plan

    config = RobotConfig(
        domain=domain,
        plates=plates,
        wells=o.wells,
        inspections=o.inspections,
        seed=seed,
        size=o.size,
        image_format="png",
        barcode_prefix=f"X{part}{seed}",
    )
    dom = config.domain_obj()
    out: dict[str, Inspection] = {}
    for im in plan(config):
        insp = out.setdefault(im.inspection_id, Inspection(im.inspection_id, im.plate_barcode, im.label))
        data = encode_image(im, dom, image_format="png", size=o.size)
        insp.pixels[im.imaging_mode.value] = preprocess_bytes(data, preprocess)  # type: ignore[arg-type]
    return list(out.values())


def label_ids(labels: Sequence[str]) -> np.ndarray:
    """Class ids of the classifier (axis_model.spec.LABELS order)."""
    from axis_model.spec import LABELS

    return np.array([LABELS.index(x) for x in labels], dtype=np.int64)


def train(
    clf: object, rows: list[tuple[Inspection, str]], val: list[tuple[Inspection, str]], *, steps: int, seed: int
) -> None:
    """Fine-tune each mode's adapter + head with the trainer's loop (best validation epoch kept), one image a mode."""
    from axis_model.finetune import TrainConfig, train_mode

    for mode in ("visible", "uv"):
        have = [(i, lab) for i, lab in rows if mode in i.pixels]
        held = [(i, lab) for i, lab in val if mode in i.pixels] or have  # no validation rows: select on training
        px = np.stack([i.pixels[mode] for i, _ in have])
        val_px = np.stack([i.pixels[mode] for i, _ in held])
        config = TrainConfig.for_steps(steps, len(px), batch_size=16, lr=1e-3, seed=seed)
        train_mode(
            clf,  # type: ignore[arg-type]
            mode,
            px,
            label_ids([lab for _, lab in have]),
            val_px,
            label_ids([lab for _, lab in held]),
            config,
        )


def score(clf: object, inspections: list[Inspection]) -> None:
    """Per-mode P(crystal) of every inspection (in chunks)."""
    for mode in ("visible", "uv"):
        have = [i for i in inspections if mode in i.pixels]
        for s in range(0, len(have), 64):
            chunk = have[s : s + 64]
            p = clf.predict_proba(np.stack([i.pixels[mode] for i in chunk]), mode)  # type: ignore[attr-defined]
            for i, v in zip(chunk, p, strict=True):
                i.probs[mode] = float(v)


def fused(clf: object, inspections: list[Inspection]) -> np.ndarray:
    """Fused P(crystal) (max over modes) of inspections, without touching their stored scores."""
    out = np.zeros(len(inspections))
    for mode in ("visible", "uv"):
        idx = [n for n, i in enumerate(inspections) if mode in i.pixels]
        for s in range(0, len(idx), 64):
            chunk = idx[s : s + 64]
            px = np.stack([inspections[n].pixels[mode] for n in chunk])
            p = clf.predict_proba(px, mode)  # type: ignore[attr-defined]
            out[chunk] = np.maximum(out[chunk], p)
    return out


def _ba(pred: np.ndarray, true: np.ndarray) -> float:
    tpr = (pred & true).sum() / max(1, true.sum())
    tnr = (~pred & ~true).sum() / max(1, (~true).sum())
    return float((tpr + tnr) / 2)


def pick_threshold(clf: object, rows: list[tuple[Inspection, str]]) -> float:
    """The threshold with the best fused balanced accuracy on validation rows (0.5 when they hold one class)."""
    true = np.array([lab == "crystal" for _, lab in rows])
    if not rows or true.all() or not true.any():
        return 0.5
    p = fused(clf, [i for i, _ in rows])
    return float(max(np.unique(p), key=lambda t: (_ba(p >= t, true), -abs(t - 0.5))))


def balanced_accuracy(clf: object, test: list[Inspection], threshold: float) -> float:
    """Fused (max over modes) balanced accuracy on the test inspections at the model's threshold."""
    return _ba(fused(clf, test) >= threshold, np.array([i.truth == "crystal" for i in test]))


@dataclass
class ArmResult:
    """What one arm curated and the model it trained."""

    balanced_accuracy: float
    curated: int
    agreements_curated: int
    corrected: int
    training_rows: int
    threshold: float


def run_arm(
    foundation: object, loop: list[Inspection], test: list[Inspection], o: ExperimentOptions, *, seed: int, route: bool
) -> ArmResult:
    """One pass of the loop with or without routed agreements; returns the trained copy's test result."""
    from axis_core.routing import BudgetState, ModeProbability, Reliability, RoutingPolicy, assess, choose

    rng = np.random.default_rng(seed * 7 + 3)
    per_round = o.budget // o.rounds
    policy = RoutingPolicy(agreements_per_day=per_round if route else 0, max_queue_share=o.share)
    record: dict[str, list[int]] = {u: [0, 0] for u, _ in o.users}
    curated: dict[str, str] = {}
    unsure: set[str] = set()
    agreements_curated = corrected = 0
    plates = sorted({i.plate for i in loop})
    for r in range(o.rounds):
        todays = [i for i in loop if plates.index(i.plate) % o.rounds == r]
        scored = {}
        for i in todays:
            fused = max(i.probs.values())
            agrees = (fused >= o.threshold) == (i.human == "crystal")
            modes = [ModeProbability(m, p, o.threshold) for m, p in sorted(i.probs.items())]
            user = Reliability(i.user, *record[i.user])
            scored[i.iid] = assess(
                probability=fused, threshold=o.threshold, modes=modes, agrees=agrees, user=user, policy=policy
            )
        routed = set(choose(scored, policy=policy, spent=BudgetState())) if route else set()
        queue = [k for k, a in scored.items() if not a.agrees or k in routed]
        queue.sort(key=lambda k: (-scored[k].value, k))
        by_id = {i.iid: i for i in todays}
        for k in queue[:per_round]:
            i = by_id[k]
            if rng.random() < o.uncertain_share:
                unsure.add(k)  # "uncertain": the label is spent; the export then leaves the item out
                continue
            curated[k] = i.truth
            record[i.user][0] += 1
            record[i.user][1] += int(i.truth != i.human)
            ml = "crystal" if max(i.probs.values()) >= o.threshold else "other"
            agreements_curated += int(scored[k].agrees)
            corrected += int(ml != i.truth)
    rows: list[tuple[Inspection, str]] = []
    for i in loop:
        if i.iid in curated:
            rows.append((i, curated[i.iid]))
        elif i.iid not in unsure and (max(i.probs.values()) >= o.threshold) == (i.human == "crystal"):
            rows.append((i, i.human))
    clf = copy.deepcopy(foundation)
    val_plate = plates[-1]
    val_rows = [(i, lab) for i, lab in rows if i.plate == val_plate]
    train(clf, [(i, lab) for i, lab in rows if i.plate != val_plate], val_rows, steps=o.steps, seed=seed)
    threshold = pick_threshold(clf, val_rows)
    ba = balanced_accuracy(clf, test, threshold)
    return ArmResult(ba, len(curated), agreements_curated, corrected, len(rows), threshold)


def run_seed(seed: int, o: ExperimentOptions) -> tuple[float, ArmResult, ArmResult]:
    """Foundation on domain A, then both arms on the same facility-B plates and users."""
    import torch
    from axis_model import BaseSpec, LoraSpec, build_classifier

    torch.manual_seed(seed)
    clf = build_classifier(BaseSpec.tiny(seed=seed), LoraSpec())
    t0 = time.monotonic()
    a = render("A", o.foundation_plates, seed * 100 + 1, "A", o, clf.preprocess)
    loop = render("B", o.loop_plates, seed * 100 + 12, "L", o, clf.preprocess)
    test = render("B", o.test_plates, seed * 100 + 11, "T", o, clf.preprocess)
    crystals = sum(i.truth == "crystal" for i in loop)
    say(
        f"seed {seed}: rendered {len(a)} domain-A, {len(loop)} loop and {len(test)} test inspections "
        f"({crystals} loop crystals) in {time.monotonic() - t0:.0f}s"
    )
    a_val = sorted({i.plate for i in a})[-1]
    a_val_rows = [(i, i.truth) for i in a if i.plate == a_val]
    train(clf, [(i, i.truth) for i in a if i.plate != a_val], a_val_rows, steps=o.foundation_steps, seed=seed)
    threshold = pick_threshold(clf, a_val_rows)
    o = replace(o, threshold=threshold)  # the foundation's threshold: the loop's routing and labels use it
    before = balanced_accuracy(clf, test, threshold)
    say(
        f"seed {seed}: foundation trained ({o.foundation_steps} steps/mode, threshold {threshold:.3f} on a "
        f"domain-A validation plate): test balanced accuracy {before:.1%}"
    )
    score(clf, loop)
    rng = np.random.default_rng(seed * 13 + 5)
    for i in loop:
        name, err = o.users[int(rng.integers(len(o.users)))]
        i.user = name
        wrong = rng.random() < err
        i.human = i.truth if not wrong else ("other" if i.truth == "crystal" else "crystal")
    disagreements = sum((max(i.probs.values()) >= o.threshold) != (i.human == "crystal") for i in loop)
    say(f"seed {seed}: {disagreements} of {len(loop)} loop inspections disagree; curator budget {o.budget}")
    arms = []
    for route in (False, True):
        t1 = time.monotonic()
        res = run_arm(clf, loop, test, o, seed=seed, route=route)
        arms.append(res)
        name = "with uncertain agreements" if route else "disagreements only"
        say(
            f"seed {seed}, {name}: {res.curated} labels ({res.agreements_curated} on agreements, "
            f"{res.corrected} correcting the model), {res.training_rows} training inspections, threshold "
            f"{res.threshold:.3f} -> balanced accuracy {res.balanced_accuracy:.1%} ({time.monotonic() - t1:.0f}s)"
        )
    return before, arms[0], arms[1]


def parse_args(argv: Sequence[str] | None = None) -> ExperimentOptions:
    """Options from the command line."""
    p = argparse.ArgumentParser(prog="python -m axis_cli.demo_curation", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(ExperimentOptions.seeds))
    p.add_argument("--budget", type=int, default=ExperimentOptions.budget, help="curator labels per arm")
    p.add_argument("--loop-plates", type=int, default=ExperimentOptions.loop_plates)
    p.add_argument("--wells", type=int, default=ExperimentOptions.wells)
    p.add_argument("--steps", type=int, default=ExperimentOptions.steps, help="fine-tune steps per mode")
    p.add_argument("--foundation-steps", type=int, default=ExperimentOptions.foundation_steps)
    a = p.parse_args(argv)
    return ExperimentOptions(
        seeds=tuple(a.seeds),
        budget=a.budget,
        loop_plates=a.loop_plates,
        wells=a.wells,
        steps=a.steps,
        foundation_steps=a.foundation_steps,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run both arms on every seed; the last line compares them."""
    import os

    o = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(o.torch_threads))
    import torch

    torch.set_num_threads(o.torch_threads)
    from axis_adapters.console import quiet_libraries

    quiet_libraries()
    t0 = time.monotonic()
    results = [run_seed(s, o) for s in o.seeds]
    x = float(np.mean([r[0] for r in results]))
    y = float(np.mean([r[1].balanced_accuracy for r in results]))
    z = float(np.mean([r[2].balanced_accuracy for r in results]))
    for s, (b, d, u) in zip(o.seeds, results, strict=True):
        say(f"seed {s}: {b:.1%} -> {d.balanced_accuracy:.1%} (disagreements only) vs {u.balanced_accuracy:.1%}")
    say(f"done in {time.monotonic() - t0:.0f}s (means over seeds below)")
    seeds = " ".join(str(s) for s in o.seeds)
    print(
        f"curation budget {o.budget}: balanced accuracy (fused) {x:.1%} -> {y:.1%} (disagreements only) "
        f"vs {x:.1%} -> {z:.1%} (with uncertain agreements), seeds {seeds}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
