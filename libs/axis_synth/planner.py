"""Pure layout logic of the imaging-robot simulator: plates, wells, drops, inspections over simulated days."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from axis_contracts.events import ImagingMode
from axis_contracts.wells import PlateType, validate_well, wells_of
from pydantic import AwareDatetime, BaseModel, ConfigDict

from axis_synth.domain import Domain
from axis_synth.spec import (
    CRYSTAL_OUTCOMES,
    DEFAULT_CLASS_MIX,
    OUTCOMES,
    SUBTYPES,
    USER_SCORE_CLASS,
    DropSpec,
    Label,
    Outcome,
    label_of,
)

DEFAULT_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class PlannedImage(BaseModel):
    """One image the robot will take, with its ground truth and the seeds that render it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: str
    plate_barcode: str
    plate_type: PlateType
    well: str
    drop: int
    inspection_id: str
    inspection_index: int
    imaged_at: AwareDatetime
    imaging_mode: ImagingMode
    imager_id: str
    outcome: str  # class visible at this inspection (crystalline drops look clear before nucleation)
    subtype: str
    label: Label
    final_outcome: Outcome
    final_subtype: str
    growth: float
    drop_seed: int
    seed: int

    @property
    def spec(self) -> DropSpec:
        """The DropSpec that renders this image (geometry from drop_seed, growth of this inspection)."""
        return DropSpec(
            outcome=self.final_outcome, subtype=self.final_subtype, growth=self.growth, drop_seed=self.drop_seed
        )

    @property
    def user_score_class(self) -> str:
        """What a careful scientist scores in the default 7-class scheme."""
        return USER_SCORE_CLASS[self.outcome]

    @property
    def experiment_key(self) -> str:
        """``plate:well:drop``, the Kafka key of the drop."""
        return f"{self.plate_barcode}:{self.well}:{self.drop}"


def stable_seed(*parts: object) -> int:
    """A 31-bit seed from any parts, identical across processes and machines (unlike hash())."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def inspection_days(n_inspections: int, days: float) -> list[float]:
    """Imaging times in days after setup: day 0, then roughly geometric spacing up to ``days``."""
    if n_inspections < 1:
        raise ValueError(f"n_inspections must be at least 1, got {n_inspections}")
    if n_inspections == 1:
        return [0.0]
    ratio = np.geomspace(1.0, days + 1.0, n_inspections) - 1.0
    return [float(v) for v in ratio]


def _class_counts(n: int, mix: Mapping[str, float]) -> list[str]:
    """Exactly ``n`` outcomes in the given proportions (largest remainder), in a fixed order."""
    unknown = set(mix) - set(OUTCOMES)
    if unknown:
        raise ValueError(f"unknown outcome class(es) {sorted(unknown)}; allowed: {', '.join(OUTCOMES)}")
    total = sum(mix.values())
    if total <= 0 or any(v < 0 for v in mix.values()):
        raise ValueError(f"class mix needs non-negative shares with a positive sum, got {dict(mix)}")
    names = [o for o in OUTCOMES if mix.get(o, 0.0) > 0]
    exact = [n * mix[o] / total for o in names]
    counts = [int(v) for v in exact]
    for i in sorted(range(len(names)), key=lambda i: exact[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return [o for o, c in zip(names, counts, strict=True) for _ in range(c)]


def _resolve_wells(domain: Domain, wells: int | Sequence[str] | None) -> list[str]:
    all_wells = wells_of(domain.plate_type)
    if wells is None:
        return all_wells
    if isinstance(wells, int):
        if not 1 <= wells <= len(all_wells):
            raise ValueError(f"wells must be 1..{len(all_wells)} for a {domain.plate_type.value}-well plate")
        return all_wells[:wells]
    return [validate_well(w, domain.plate_type) for w in wells]


def plan_plates(
    domain: Domain,
    n_plates: int,
    wells: int | Sequence[str] | None = None,
    drops_per_well: int = 1,
    n_inspections: int = 5,
    days: float = 14.0,
    seed: int = 0,
    class_mix: Mapping[str, float] | None = None,
    start: datetime = DEFAULT_START,
    plate_interval: timedelta = timedelta(hours=1),
    image_interval: timedelta = timedelta(seconds=5),
) -> list[PlannedImage]:
    """Every image of ``n_plates`` plates over ``n_inspections`` inspections, sorted by imaged_at.

    ``wells``: None for the whole plate, an int for the first N wells, or explicit well names.
    Each drop gets a final outcome (class mix applied exactly per plate set), a sub-type and,
    when crystalline, a nucleation time and growth time so crystals appear and grow over days.
    """
    if n_plates < 1 or drops_per_well < 1:
        raise ValueError("n_plates and drops_per_well must be at least 1")
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    well_names = _resolve_wells(domain, wells)
    times = inspection_days(n_inspections, days)
    modes = [ImagingMode.VISIBLE, ImagingMode.UV] if domain.has_uv else [ImagingMode.VISIBLE]
    rng = np.random.default_rng([seed, 17])
    n_drops = n_plates * len(well_names) * drops_per_well
    outcomes = _class_counts(n_drops, class_mix if class_mix is not None else DEFAULT_CLASS_MIX)
    order = rng.permutation(n_drops)
    out: list[PlannedImage] = []
    for p in range(n_plates):
        barcode = f"{domain.barcode_prefix}-{seed}-{p + 1:03d}"
        plate_start = start + p * plate_interval
        for w_i, well in enumerate(well_names):
            for drop in range(1, drops_per_well + 1):
                idx = (p * len(well_names) + w_i) * drops_per_well + (drop - 1)
                final: Outcome = outcomes[order[idx]]  # type: ignore[assignment]
                subtype = str(rng.choice(SUBTYPES[final]))
                onset = rng.uniform(0.03, 0.45) * days
                duration = rng.uniform(0.25, 0.6) * days
                drop_seed = stable_seed(domain.name, seed, barcode, well, drop)
                for k, t_day in enumerate(times):
                    growth = 1.0
                    if final in CRYSTAL_OUTCOMES:
                        growth = round(float(np.clip((t_day - onset) / duration, 0.0, 1.0)), 4)
                    label = label_of(final, growth)
                    outcome = final if final not in CRYSTAL_OUTCOMES or growth > 0 else "clear"
                    sub = subtype if outcome == final else "before_nucleation"
                    slot = (w_i * drops_per_well + drop - 1) * len(modes)
                    for m_i, mode in enumerate(modes):
                        out.append(
                            PlannedImage(
                                domain=domain.name,
                                plate_barcode=barcode,
                                plate_type=domain.plate_type,
                                well=well,
                                drop=drop,
                                inspection_id=f"{barcode}-{well}-d{drop}-i{k + 1}",
                                inspection_index=k,
                                imaged_at=plate_start + timedelta(days=t_day) + (slot + m_i) * image_interval,
                                imaging_mode=mode,
                                imager_id=domain.imager_id,
                                outcome=outcome,
                                subtype=sub,
                                label=label,
                                final_outcome=final,
                                final_subtype=subtype,
                                growth=growth,
                                drop_seed=drop_seed,
                                seed=stable_seed(drop_seed, k, mode.value),
                            )
                        )
    out.sort(key=lambda im: (im.imaged_at, im.plate_barcode, im.well, im.drop, im.imaging_mode.value))
    return out
