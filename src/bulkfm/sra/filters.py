"""Which runs to keep: human bulk RNA-seq by default, configurable.

Excluded runs stay in the metadata table with ``excluded_reason`` set, so an exclusion is
visible and explainable, never silent. Rules:

- organism: ``taxon_id`` must equal the configured taxon (missing taxon -> excluded);
- library_strategy must be in the allowed list (missing -> excluded);
- library_source, when reported, must be in the allowed list ("TRANSCRIPTOMIC SINGLE CELL" is
  not bulk). Some ENA answers omit the column, and a missing source is not held against a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class RunFilter:
    taxon_id: int = 9606
    library_strategies: tuple[str, ...] = ("RNA-Seq",)
    library_sources: tuple[str, ...] = ("TRANSCRIPTOMIC",)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> RunFilter:
        cfg = cfg or {}
        d = cls()
        return cls(
            taxon_id=int(cfg.get("taxon_id", d.taxon_id)),
            library_strategies=tuple(cfg.get("library_strategies", d.library_strategies)),
            library_sources=tuple(cfg.get("library_sources", d.library_sources)),
        )

    def reason(self, row: Mapping[str, Any]) -> str | None:
        """Why ``row`` is excluded, or None when it is kept."""
        reasons: list[str] = []
        taxon = _val(row.get("taxon_id"))
        if taxon is None:
            reasons.append(f"organism not reported (need taxon {self.taxon_id})")
        elif int(taxon) != self.taxon_id:
            reasons.append(f"organism {_val(row.get('organism')) or '?'} (taxon {int(taxon)}) is not taxon {self.taxon_id}")
        reasons += _check("library_strategy", _val(row.get("library_strategy")), self.library_strategies, required=True)
        reasons += _check("library_source", _val(row.get("library_source")), self.library_sources, required=False)
        return "; ".join(reasons) or None


def _val(v: Any) -> Any:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v


def _check(field: str, value: str | None, allowed: Sequence[str], required: bool) -> list[str]:
    if value is None:
        return [f"{field} not reported"] if required else []
    if value.casefold() not in {a.casefold() for a in allowed}:
        return [f"{field} {value!r} not in allowed {list(allowed)}"]
    return []


def apply_filter(df: pd.DataFrame, flt: RunFilter | None) -> pd.DataFrame:
    """Set ``excluded_reason`` (None everywhere when ``flt`` is None)."""
    df = df.copy()
    if flt is None:
        df["excluded_reason"] = pd.Series([None] * len(df), dtype="string", index=df.index)
    else:
        df["excluded_reason"] = pd.Series([flt.reason(r) for r in df.to_dict("records")], dtype="string", index=df.index)
    return df
