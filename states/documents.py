"""Which documents a filing still lacks (M1–M8, V6)."""

from __future__ import annotations

from dataclasses import dataclass

from states.filing import Filing
from states.policy import Policy, Requirement
from states.vocabulary import Category, Document


@dataclass(frozen=True)
class Missing:
    rule_id: str
    any_of: Requirement

    def describe(self) -> str:
        return " or ".join(self.any_of)


def missing_documents(
    policy: Policy, filing: Filing, documents: frozenset[Document] | None = None
) -> list[Missing]:
    """Requirements not met by `documents` (default: the filing's own).

    A long-term filing by personal commitment (V6) is accepted without its kind's documents
    (M2–M4); those stay listed by `waived_by_commitment` until supplied.
    """
    have = filing.documents if documents is None else documents
    missing = [
        Missing(policy.rule("documents_all"), g) for g in policy.documents_all if not set(g) & have
    ]
    if not waived_by_commitment(policy, filing):
        missing += kind_documents_missing(policy, filing, have)
    if filing.student:
        missing += [
            Missing(policy.rule("documents_student"), g)
            for g in policy.documents_student
            if not set(g) & have
        ]
    if filing.flexible_employment:
        missing += [
            Missing(policy.rule("documents_flexible_employment"), g)
            for g in policy.documents_flexible_employment
            if not set(g) & have
        ]
    return missing


def kind_documents_missing(
    policy: Policy, filing: Filing, have: frozenset[Document]
) -> list[Missing]:
    key = f"documents_{filing.kind.value}"
    return [
        Missing(policy.rule(key), g)
        for g in policy.documents_by_kind[filing.kind]
        if not set(g) & have
    ]


def waived_by_commitment(policy: Policy, filing: Filing) -> bool:
    """V6: long-term kinds may file by commitment where the policy allows it."""
    return (
        filing.by_commitment
        and policy.commitment_allowed
        and filing.category is Category.LONG_TERM
        and Document.PERSONAL_COMMITMENT in filing.documents
    )
