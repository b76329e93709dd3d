"""Where a filing is needed: scope by region (K7, K8).

Codes are GB/T 2260 six-digit codes: the first two digits are the province, the first four the
city. Whether a code exists is checked by the caller against the code table; this module only
decides scope.
"""

from __future__ import annotations

# K7: Hong Kong (81), Macao (82) and Taiwan (71) are never covered by a filing.
EXCLUDED_PROVINCES = {"71": "Taiwan", "81": "Hong Kong", "82": "Macao"}


def province_of(code: str) -> str:
    return code[:2]


def city_of(code: str) -> str:
    """The city a code belongs to; a municipality's districts (e.g. 3101xx) share one city."""
    return code[:4]


def same_area(insured: str, treatment: str, scope: str) -> bool:
    """True if treatment in `treatment` needs no filing for a person insured in `insured` (K8)."""
    if scope == "province":
        return province_of(insured) == province_of(treatment)
    # Municipalities (11 Beijing, 12 Tianjin, 31 Shanghai, 50 Chongqing) are one city.
    if province_of(insured) in {"11", "12", "31", "50"}:
        return province_of(insured) == province_of(treatment)
    return city_of(insured) == city_of(treatment)
