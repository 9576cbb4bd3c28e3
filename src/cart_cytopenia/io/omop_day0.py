"""Day 0 of an OMOP extract: the CAR-T infusion from a user's infusion table, a CAR-T
administration procedure or a drug exposure naming the product; and the drug exposures read
once with their catalogue drug, product and lymphodepletion flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from cart_cytopenia.domain.catalogues import drug_by_rxnorm, resolve_drug, resolve_product
from cart_cytopenia.errors import (
    Location,
    ParseError,
    Problem,
    SchemaError,
)
from cart_cytopenia.io.omop_source import (
    OmopSource,
    OmopSummary,
    cast_column,
    code_of,
    concepts_of,
    dated_concept_rows,
    int_ids,
    omop_map,
    therapy_code_of_row,
    with_patient_ids,
)
from cart_cytopenia.io.therapy_codes import therapy_codes


def _read_infusion_table(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if not path.exists():
        raise ParseError(f"{path} does not exist")
    try:
        df = (
            pl.read_parquet(path) if suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
        )
    except Exception as exc:
        raise ParseError(f"{path} cannot be read: {str(exc).splitlines()[0]}") from None
    df = df.rename({c: c.lower() for c in df.columns}).with_row_index("row", offset=2)
    for c in ("person_id", "infusion_date"):
        if c not in df.columns:
            raise SchemaError(f"{path}: the infusion table needs person_id and infusion_date")
    where = str(path)
    df = with_patient_ids(df.with_columns(pl.col("row").cast(pl.Int64)), where)
    for c in (
        "infusion_date",
        "progression_date",
        "next_therapy_date",
        "last_followup_date",
        "ld_start_date",
    ):
        df = cast_column(df, c, pl.Date, where, "an ISO date (YYYY-MM-DD)")
    missing = df.filter(pl.col("infusion_date").is_null())
    if missing.height:
        raise SchemaError(
            f"{path}: {missing.height} row(s) without an infusion_date; nothing was loaded",
            [
                Problem(
                    "missing infusion_date",
                    Location(row=r["row"], patient_id=r["patient_id"], source=where),
                )
                for r in missing.head(20).iter_rows(named=True)
            ],
        )
    return df


def day0_infusions(src: OmopSource, infusions: Path | None, summary: OmopSummary) -> pl.DataFrame:
    """patient_id, infusion_date, product (+ optional user columns), the first per person."""
    if infusions is not None:
        df = _read_infusion_table(infusions)
        summary.infusion_from["infusion table"] = df["patient_id"].n_unique()
        return df.sort("infusion_date").unique("patient_id", keep="first")
    found: list[pl.DataFrame] = []
    if src.has("procedure_occurrence"):
        found += _candidates(_car_t_procedures(src), "procedure_date", "procedure", 0)
    if src.has("drug_exposure"):
        d = drug_rows(src).filter(pl.col("product").is_not_null())
        found += _candidates(d, "drug_exposure_start_date", "drug exposure", 1)
    if not found:
        return pl.DataFrame(
            schema={"patient_id": pl.String, "infusion_date": pl.Date, "product": pl.String}
        )
    allrows = pl.concat(found, how="vertical_relaxed").sort("patient_id", "infusion_date", "rank")
    first = allrows.group_by("patient_id", maintain_order=True).agg(
        pl.col("infusion_date").first(),
        # the product named on day 0 (a procedure code and a drug record may name it)
        pl.col("product")
        .filter(pl.col("infusion_date") == pl.col("infusion_date").first())
        .drop_nulls()
        .first(),
        pl.col("via").first(),
        (pl.col("infusion_date").n_unique() > 1).alias("several"),
    )
    for via, n in first.group_by("via").len().iter_rows():
        summary.infusion_from[via] = n
    several = int(first["several"].sum())
    if several:
        summary.notes.append(
            f"{several} person(s) have CAR-T administrations on more than one date: the first is day 0"
        )
    return first.drop("via", "several")


def _car_t_procedures(src: OmopSource) -> pl.DataFrame:
    """The PROCEDURE_OCCURRENCE rows naming a CAR-T administration, with the product they name."""
    p, concepts = procedure_rows(src)
    hits = [
        therapy_code_of_row(
            concepts, r.get("procedure_concept_id"), r.get("procedure_source_value")
        )
        for r in p.select(
            *(c for c in ("procedure_concept_id", "procedure_source_value") if c in p.columns)
        ).iter_rows(named=True)
    ]
    return p.with_columns(
        pl.Series("car_t", [h is not None and h.kind == "car_t" for h in hits]),
        pl.Series("product", [h.product if h else None for h in hits], dtype=pl.String),
    ).filter(pl.col("car_t"))


def _candidates(hit: pl.DataFrame, date_col: str, via: str, rank: int) -> list[pl.DataFrame]:
    """One table's CAR-T administrations as day-0 candidates (none or one frame); ``rank``: which
    table's row comes first on the same date (the procedure)."""
    if not hit.height:
        return []
    return [
        hit.select(
            "patient_id",
            pl.col(date_col).alias("infusion_date"),
            "product",
            pl.lit(via).alias("via"),
            pl.lit(rank).alias("rank"),
        )
    ]


def procedure_rows(src: OmopSource) -> tuple[pl.DataFrame, dict[int, tuple[str, str, str]]]:
    """PROCEDURE_OCCURRENCE with dates and the concepts its rows name (read once per extract)."""

    return src.once(
        "procedure_occurrence",
        lambda: dated_concept_rows(src, "procedure_occurrence", "procedure_date", "procedure"),
    )


def drug_rows(src: OmopSource) -> pl.DataFrame:
    """DRUG_EXPOSURE with days, the catalogue drug (``drug``) and CAR-T product (``product``),
    read once per extract."""
    return src.once("drug_exposure", lambda: _read_drug_rows(src))


def _drug_of_code(rxcui: str | None) -> tuple[str | None, str | None]:
    """(catalogue drug id, ingredient name) of an RxNorm code: a catalogue ingredient code, or a
    clinical-drug code of the shared therapy-code table (fludarabine 50 MG Injection ...)."""
    if not rxcui:
        return None, None
    found = drug_by_rxnorm(rxcui)
    if found is not None:
        return found.id, found.id
    clinical = therapy_codes().clinical_drug(rxcui)
    if clinical is None:
        return None, None
    drug = resolve_drug(clinical.ingredient)
    return (drug.id if drug else None), clinical.ingredient


def _product_of_row(
    concepts: dict[int, tuple[str, str, str]], concept_id: Any, names: list[Any]
) -> str | None:
    """The CAR-T product a DRUG_EXPOSURE row names: by product name, or a HCPCS product code."""
    for name in names:
        if not name:
            continue
        p = resolve_product(str(name).strip())
        if p is not None:
            return p.id
        hit = therapy_code_of_row(concepts, concept_id, name)
        if hit is not None and hit.kind == "car_t" and hit.product is not None:
            return hit.product
    return None


def _read_drug_rows(src: OmopSource) -> pl.DataFrame:
    where = src.where("drug_exposure")
    d = src.read(
        "drug_exposure",
        [
            "person_id",
            "drug_exposure_start_date",
            "drug_exposure_end_date",
            "drug_concept_id",
            "drug_source_value",
        ],
        ["person_id", "drug_exposure_start_date"],
    )
    d = with_patient_ids(d, where)
    for c in ("drug_exposure_start_date", "drug_exposure_end_date"):
        d = cast_column(d, c, pl.Date, where, "a date")
    concepts = concepts_of(src, int_ids(d, "drug_concept_id"))
    ld_names = [x.lower() for x in omop_map()["lymphodepletion"]["drugs"]]
    drugs, prods, lds = [], [], []
    for r in d.select(
        *(c for c in ("drug_concept_id", "drug_source_value") if c in d.columns)
    ).iter_rows(named=True):
        cid = r.get("drug_concept_id")
        concept = concepts.get(int(cid)) if cid else None
        names = [r.get("drug_source_value"), concept[2] if concept else None]
        drug, ingredient = _drug_of_code(code_of(concept, ("RXNORM", "RXNORM EXTENSION")))
        lds.append(
            ingredient in ld_names
            or any(ld in str(x).lower() for x in names if x for ld in ld_names)
        )
        prod = _product_of_row(concepts, cid, names)
        if prod is None and drug is None:
            found = (resolve_drug(str(n).strip()) for n in names if n)
            drug = next((f.id for f in found if f is not None), None)
        drugs.append(drug)
        prods.append(prod)
    return d.with_columns(
        pl.Series("drug", drugs, dtype=pl.String),
        pl.Series("product", prods, dtype=pl.String),
        pl.Series("lymphodepletion", lds, dtype=pl.Boolean),
    )
