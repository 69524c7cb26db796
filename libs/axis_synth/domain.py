"""Facility domains: the parameter sets that make all images of one facility look alike."""

from __future__ import annotations

from typing import Literal

from axis_contracts.wells import PlateType
from pydantic import BaseModel, ConfigDict, Field, model_validator

WellShape = Literal["round", "square"]
RGB = tuple[float, float, float]

REAL_SIZE: tuple[int, int] = (2300, 1920)


class Domain(BaseModel):
    """Plate, optics and sample look of one facility; lengths are fractions of the image's short side."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    plate_type: PlateType = PlateType.WELLS_96
    barcode_prefix: str = Field(default="SYN", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    imager_id: str = "imager-1"
    # well outline: round or square (with rounded corners); half-size relative to the short side
    well_shape: WellShape = "round"
    well_radius: float = Field(default=0.78, gt=0.2, le=2.0)
    well_darkness: float = Field(default=0.35, ge=0.0, le=1.0)
    # illumination: RGB transmission of the empty field, linear gradient and vignetting strength
    illumination: RGB = (0.71, 0.80, 0.57)
    gradient: float = Field(default=0.10, ge=0.0, le=1.0)
    vignette: float = Field(default=0.10, ge=0.0, le=1.0)
    # optics: Gaussian focus blur (pixels at a 224 px short side, scaled with size) and sensor noise (grey levels)
    blur_sigma: float = Field(default=0.25, ge=0.0, le=10.0)
    noise: float = Field(default=2.0, ge=0.0, le=60.0)
    # drop: semi-axis range, darkness of the rim and interior
    drop_radius: tuple[float, float] = (0.24, 0.34)
    drop_rim: float = Field(default=0.45, ge=0.0, le=1.0)
    drop_tone: float = Field(default=0.05, ge=0.0, le=0.5)
    # crystals: longest-side length range of single crystals, darkness of their edges, facet shading
    crystal_size: tuple[float, float] = (0.07, 0.14)
    edge_contrast: float = Field(default=0.85, ge=0.0, le=1.0)
    facet_contrast: float = Field(default=0.5, ge=0.0, le=1.0)
    dust: float = Field(default=1.0, ge=0.0, le=10.0)
    # UV: field, drop glow, crystal and precipitate brightness (0..1), blur and noise
    has_uv: bool = True
    uv_background: float = Field(default=0.12, ge=0.0, le=1.0)
    uv_drop_glow: float = Field(default=0.09, ge=0.0, le=1.0)
    uv_crystal: float = Field(default=0.62, ge=0.0, le=1.0)
    uv_precipitate: float = Field(default=0.05, ge=0.0, le=1.0)
    uv_blur_sigma: float = Field(default=0.7, ge=0.0, le=10.0)
    uv_noise: float = Field(default=1.5, ge=0.0, le=60.0)
    uv_border: float = Field(default=0.0, ge=0.0, le=0.2)
    image_size: tuple[int, int] = (224, 224)
    real_size: tuple[int, int] = REAL_SIZE

    @model_validator(mode="after")
    def _check(self) -> Domain:
        for name in ("drop_radius", "crystal_size"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max <= 1, got {(lo, hi)}")
        for name in ("image_size", "real_size"):
            w, h = getattr(self, name)
            if w < 16 or h < 16:
                raise ValueError(f"{name} must be at least 16x16 pixels, got {(w, h)}")
        if any(not 0.0 < c <= 1.0 for c in self.illumination):
            raise ValueError(f"illumination must be three fractions in (0, 1], got {self.illumination}")
        return self


DOMAIN_A = Domain(
    name="A",
    description="public dataset stand-in: bright green-grey field, sharp focus, large high-contrast crystals",
    barcode_prefix="PUBA",
    imager_id="imager-a1",
)

DOMAIN_B = Domain(
    name="B",
    description=(
        "facility B: square wells, warm grey light with a strong gradient and vignetting, noisier; "
        "dim UV (weaker crystal glow, darker field), so a domain-A model misses crystals there"
    ),
    barcode_prefix="FACB",
    imager_id="imager-b1",
    well_shape="square",
    well_radius=0.58,
    well_darkness=0.45,
    illumination=(0.80, 0.74, 0.66),
    gradient=0.30,
    vignette=0.25,
    blur_sigma=0.5,
    noise=3.0,
    drop_radius=(0.22, 0.30),
    drop_rim=0.30,
    drop_tone=0.08,
    crystal_size=(0.08, 0.15),
    edge_contrast=0.9,
    facet_contrast=0.45,
    dust=2.0,
    uv_background=0.09,
    uv_drop_glow=0.07,
    uv_crystal=0.30,
    uv_precipitate=0.04,
    uv_blur_sigma=1.6,
    uv_noise=3.0,
    uv_border=0.03,
)

DOMAINS: dict[str, Domain] = {DOMAIN_A.name: DOMAIN_A, DOMAIN_B.name: DOMAIN_B}
