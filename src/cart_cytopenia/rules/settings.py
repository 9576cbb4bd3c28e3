"""Institutional settings: the values a CAR-T centre may set, with the review's values as defaults.

Loaded from a TOML file (``--settings FILE``) or built in code; unknown keys are errors. The
values in force are printed with every report (``Settings.in_force()``), with where each default
comes from.

Example ``settings.toml``::

    institution = "Example CAR-T Centre"
    ctcae_version = "5.0"

    [transfusion]
    rbc_hb_below_g_dl = 7.0
    platelets_below_10e9_l = 10

    [gcsf]
    consider_from_day = 7
    consider_by_day = 10
    prophylactic_high_risk = false
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cart_cytopenia.domain.analytes import analyte
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.errors import SettingsError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferenceRanges(_Section):
    """Laboratory lower limits of normal (LLN) used for CTCAE grade 1. Institutional."""

    anc_lln_10e9_l: float = Field(
        2.0, gt=0, description="ANC LLN, x10^9/L (typical adult range 1.8-2.0)"
    )
    platelets_lln_10e9_l: float = Field(150.0, gt=0, description="Platelet LLN, x10^9/L")
    hb_lln_female_g_dl: float = Field(12.0, gt=0, description="Haemoglobin LLN, women, g/dL")
    hb_lln_male_g_dl: float = Field(13.5, gt=0, description="Haemoglobin LLN, men, g/dL")
    wbc_lln_10e9_l: float = Field(4.0, gt=0, description="WBC LLN, x10^9/L")
    alc_lln_10e9_l: float = Field(1.0, gt=0, description="Lymphocyte LLN, x10^9/L")
    # Limits the guidance engine compares with (IEC-HS, TA-TMA, haemolysis). Defaults are typical
    # adult reference limits, not values from the review: set the laboratory's own.
    ast_uln_u_l: float = Field(40.0, gt=0, description="AST ULN, U/L (IEC-HS: > 5x ULN)")
    alt_uln_u_l: float = Field(40.0, gt=0, description="ALT ULN, U/L (IEC-HS: > 5x ULN)")
    ldh_uln_u_l: float = Field(250.0, gt=0, description="LDH ULN, U/L (IEC-HS, TA-TMA)")
    haptoglobin_lln_mg_dl: float = Field(
        30.0, gt=0, description="Haptoglobin LLN, mg/dL (TA-TMA, haemolysis)"
    )
    retic_pct_uln: float = Field(2.5, gt=0, description="Reticulocytes ULN, % (TA-TMA)")
    ipf_pct_uln: float = Field(6.1, gt=0, description="Immature platelet fraction ULN, % (TA-TMA)")
    sc5b9_uln_ng_ml: float = Field(
        250.0,
        gt=0,
        description="sC5b-9 ULN, ng/mL (TA-TMA: >= ULN); default the Mayo Clinic assay's <= 250",
    )
    bilirubin_uln_mg_dl: float = Field(
        1.2, gt=0, description="Total bilirubin ULN, mg/dL (haemolysis work-up, IEC-HS, carHLH)"
    )
    ferritin_uln_ng_ml: float = Field(
        400.0, gt=0, description="Ferritin ULN, ng/mL (ASTCT IEC-HS: > 2x ULN or baseline)"
    )
    creatinine_uln_mg_dl: float = Field(
        1.2, gt=0, description="Creatinine ULN, mg/dL (carHLH kidney criterion: > 3x ULN)"
    )

    def lln_canonical(self, analyte_code: str, sex: str | None = None) -> float:
        """LLN in the analyte's canonical unit. Haemoglobin without a known sex: the lower LLN."""
        a = analyte(analyte_code)
        if analyte_code == "hb":
            hb = {"female": self.hb_lln_female_g_dl, "male": self.hb_lln_male_g_dl}.get(
                sex or "", min(self.hb_lln_female_g_dl, self.hb_lln_male_g_dl)
            )
            return hb * a.factor_from(resolve_unit("g/dL"))
        value = {
            "anc": self.anc_lln_10e9_l,
            "platelets": self.platelets_lln_10e9_l,
            "wbc": self.wbc_lln_10e9_l,
            "alc": self.alc_lln_10e9_l,
        }[analyte_code]
        return value * a.factor_from(resolve_unit("10*9/L"))


class TransfusionSettings(_Section):
    """Transfusion thresholds. Defaults: review case 1 ('goal of hemoglobin >7 g/dL and platelets >10 x10^3/uL')."""

    rbc_hb_below_g_dl: float = Field(7.0, gt=0, le=12)
    platelets_below_10e9_l: float = Field(10.0, gt=0, le=100)
    platelets_below_if_bleeding_10e9_l: float = Field(
        50.0, gt=0, le=150, description="Institutional; used only when bleeding is recorded"
    )
    irradiated_from_days_before_leukapheresis: int = Field(
        7,
        ge=0,
        le=30,
        description="EHA/EBMT (Rejeski 2023): irradiated products from 7 days before leukapheresis",
    )
    irradiated_until_day: int = Field(
        90, ge=90, le=3650, description="EHA/EBMT: until at least day 90 after infusion"
    )
    irradiated_indefinitely_after_purine_analogue: bool = Field(
        False,
        description=(
            "Local policy: irradiated products for life after a purine analogue (fludarabine, "
            "bendamustine, cladribine), as some national transfusion guidelines advise"
        ),
    )


class GcsfSettings(_Section):
    """G-CSF timing. Defaults: review Figure 1 ('If the ANC has not recovered to >500/mm3 by day 7 to 10')."""

    consider_from_day: int = Field(7, ge=0, le=60)
    consider_by_day: int = Field(10, ge=0, le=60)
    recovery_anc_per_ul: float = Field(500, gt=0)
    biphasic_below_anc_per_ul: float = Field(750, gt=0)
    biphasic_target_anc_per_ul: float = Field(1500, gt=0)
    withhold_during_crs: bool = True
    prophylactic_high_risk: bool = Field(
        False,
        description=(
            "EHA/EBMT (Rejeski 2023, Table 3): prophylactic G-CSF from day +2 for CAR-HEMATOTOX "
            "high-risk patients. Off (default) = the review: 'If the ANC has not recovered to "
            ">500/mm3 by day 7 to 10, we consider the institution of ... G-CSF'"
        ),
    )


class IcahtSettings(_Section):
    """ICAHT operational conventions (defaults from rules/tables/icaht.toml). None = table default."""

    max_interpolation_gap_days: int | None = Field(None, ge=0, le=30)
    join_min_recovered_days: int | None = Field(None, ge=1, le=14)
    never_recovered_onset_by_day: int | None = Field(None, ge=0, le=30)
    never_recovered_rule: bool = True


class ProphylaxisSettings(_Section):
    """Infection prophylaxis defaults from the review's infection section and Figure 1."""

    pjp_start_day: int = Field(
        28, ge=0, le=90, description="Review: 'started at day ~28' / 'at day 30'"
    )
    antiviral_months: int = Field(12, ge=6, le=24, description="Review: 6 to 12 months")
    cd4_stop_above_per_ul: float = Field(200, gt=0)
    follow_up_years: int = Field(2, ge=1, le=10)
    antibacterial_antifungal: Literal["review", "eha-ebmt"] = Field(
        "review",
        description=(
            "'review': from day 0 until ANC recovery, and again for severe neutropenia; "
            "'eha-ebmt' (Rejeski 2023): only CAR-HEMATOTOX high-risk patients with ANC < 500/uL"
        ),
    )
    antiviral_until_cd4_above: bool = Field(
        False,
        description=(
            "EHA/EBMT: antiviral prophylaxis to 1 year and/or until CD4 > cd4_stop_above_per_ul; "
            "off = the review's fixed 6-12 months (antiviral_months)"
        ),
    )


class TpoRaSettings(_Section):
    """TPO-receptor agonists. Review: 'well beyond day 30'; stop after '4 to 6 weeks' without response."""

    consider_from_day: int = Field(42, ge=30, le=180)
    no_response_stop_weeks: int = Field(
        6, ge=4, le=12, description="Review: 'no response ... in 4 to 6 weeks' (alert after this)"
    )
    no_response_consider_stop_weeks: int = Field(
        4, ge=2, le=12, description="Review: 'no response ... in 4 to 6 weeks' (consider stopping)"
    )
    eltrombopag_start_mg: float = 75
    eltrombopag_max_mg: float = 150
    romiplostim_ug_per_kg_week: float = 10


class Settings(_Section):
    institution: str = "default (review values)"
    ctcae_version: Literal["5.0", "6.0"] = "5.0"
    reference_ranges: ReferenceRanges = Field(default_factory=ReferenceRanges)
    transfusion: TransfusionSettings = Field(default_factory=TransfusionSettings)
    gcsf: GcsfSettings = Field(default_factory=GcsfSettings)
    icaht: IcahtSettings = Field(default_factory=IcahtSettings)
    prophylaxis: ProphylaxisSettings = Field(default_factory=ProphylaxisSettings)
    tpo_ra: TpoRaSettings = Field(default_factory=TpoRaSettings)

    def in_force(self) -> dict[str, Any]:
        """Every value in force, as a flat {section.key: value} mapping for reports."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, dict):
                for k, v in value.items():
                    out[f"{name}.{k}"] = v
            else:
                out[name] = value
        return out

    def changed_from_defaults(self) -> dict[str, Any]:
        default = Settings().in_force()
        return {k: v for k, v in self.in_force().items() if default.get(k) != v}


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a TOML file, or the defaults when ``path`` is None."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SettingsError(f"settings file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {p} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"settings file {p} is not UTF-8 text (expected TOML)") from None
    except OSError as exc:  # a folder, no permission ...
        raise SettingsError(f"settings file {p} cannot be read: {exc.strerror or exc}") from None
    return settings_from_dict(raw, str(p))


def settings_from_dict(raw: dict[str, Any], source: str = "settings") -> Settings:
    try:
        s = Settings.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SettingsError(f"{source} is invalid:\n  - " + "\n  - ".join(lines)) from None
    if s.gcsf.consider_by_day < s.gcsf.consider_from_day:
        raise SettingsError(f"{source}: gcsf.consider_by_day is before gcsf.consider_from_day")
    if s.tpo_ra.no_response_stop_weeks < s.tpo_ra.no_response_consider_stop_weeks:
        raise SettingsError(
            f"{source}: tpo_ra.no_response_stop_weeks is before tpo_ra.no_response_consider_stop_weeks"
        )
    return s
