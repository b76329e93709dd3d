"""Making it happen: the machine, the services, persistence, audit, config and interfaces."""

from __future__ import annotations

from states.errors import (
    ConcurrentUpdate,
    FilingError,
    FilingNotFound,
    InvalidInput,
    PolicyConfigError,
    Refused,
    TransitionRefused,
)
from states.vocabulary import Channel, Document, FilingState, InsuranceType, Kind, Role
from workflow.api import FilingEngine
from workflow.audit import Checkpoint, Verification
from workflow.service import SYSTEM_ACTOR, Actor

__all__ = [
    "SYSTEM_ACTOR",
    "Actor",
    "Channel",
    "Checkpoint",
    "ConcurrentUpdate",
    "Document",
    "FilingEngine",
    "FilingError",
    "FilingNotFound",
    "FilingState",
    "InsuranceType",
    "InvalidInput",
    "Kind",
    "PolicyConfigError",
    "Refused",
    "Role",
    "TransitionRefused",
    "Verification",
]
