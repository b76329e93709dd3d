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


# Municipalities (Beijing, Tianjin, Shanghai, Chongqing): the province is the city.
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})


def area_of(code: str) -> str:
    """The treatment area a code belongs to: its city, or the whole municipality (L6, K8)."""
    return province_of(code) if province_of(code) in MUNICIPALITIES else city_of(code)


def is_province_level(code: str) -> bool:
    """A province's own code (e.g. 440000), which names no city of treatment."""
    return code.endswith("0000") and province_of(code) not in MUNICIPALITIES


def same_area(insured: str, treatment: str, scope: str) -> bool:
    """True if treatment in `treatment` needs no filing for a person insured in `insured` (K8)."""
    if scope == "province":
        return province_of(insured) == province_of(treatment)
    return area_of(insured) == area_of(treatment)


def prefix_of(area: str) -> str:
    """The code prefix every region inside `area` shares (GB/T 2260 levels): 440000 -> 44,
    440700 -> 4407, 440703 -> 440703."""
    prefix = area
    while prefix.endswith("00") and len(prefix) > 2:
        prefix = prefix[:-2]
    return prefix


def contains(area: str, code: str) -> bool:
    """Whether region `area` is `code` or contains it, by the code's levels (GB/T 2260):
    440000 (a province) contains 4407xx; 440700 (a city) contains 440703; 440703 only itself."""
    return code.startswith(prefix_of(area))
