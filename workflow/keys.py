"""HTTP API keys: issued and revoked from the command line, stored as a SHA-256 of the secret.

A key reads `fk_<id>_<secret>`. The id is public (it names the key in the audit trail, in
logs and in `filing keys list`); the secret is 256 random bits, shown once. A fast hash is
enough for a secret that random (no dictionary to try), and it keeps authentication to one
indexed read per request. A key carries who its holder is: a role, the channel they act
through (L7), an organisation (a hospital's code, an agency's), the person an insured key acts
for (L8: a linked family account acts `on_behalf`), and the regions an officer or auditor
answers for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from states.codes import Codes
from states.errors import FilingError, InvalidInput
from states.periods import local_date
from states.regions import contains
from states.vocabulary import Channel, Role
from workflow.context import Actor
from workflow.identity import (
    mask,
    normalise_id_number,
    person_key,
    personal_data_in,
    region_exists,
)
from workflow.store import Row, Store, insert_sql
from workflow.tables import api_key_t

PREFIX = "fk_"
_KEY_ID = re.compile(r"[0-9a-f]{12}")
_INSERT = insert_sql(api_key_t)
# Roles a key can carry: the engine's own `system` role is never handed out.
KEY_ROLES = (Role.INSURED, Role.HOSPITAL, Role.OFFICER, Role.AUDITOR, Role.ADMINISTRATOR)


class KeyNotFound(FilingError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no API key {key_id}")


@dataclass(frozen=True)
class Principal:
    """The holder of a valid key: who the HTTP API acts for."""

    key_id: str
    role: Role
    channel: Channel
    organisation: str | None
    person_key: str | None
    person_masked: str | None
    on_behalf: bool
    regions: tuple[str, ...]
    label: str

    @property
    def actor(self) -> Actor:
        return Actor(
            id=f"key:{self.key_id}",
            role=self.role,
            channel=self.channel,
            organisation=self.organisation,
            on_behalf=self.on_behalf,
        )

    def covers_region(self, region: str) -> bool:
        """Whether one of the key's regions is `region` or contains it (GB/T 2260: 440000
        contains 4407xx; 440700 contains 440703). No regions: a key issued for all regions,
        or an insured person's, hospital's or administrator's, whose scope is not by region."""
        return not self.regions or any(contains(r, region) for r in self.regions)


@dataclass(frozen=True)
class IssuedKey:
    principal: Principal
    token: str  # shown once; only its hash is stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(
    store: Store,
    *,
    role: Role | str,
    label: str,
    now: datetime,
    person_secret: bytes,
    codes: Codes,
    channel: Channel | str | None = None,
    organisation: str | None = None,
    id_number: str | None = None,
    on_behalf: bool = False,
    regions: tuple[str, ...] = (),
    all_regions: bool = False,
) -> IssuedKey:
    """Make a key. Each role must say what it is scoped to (A5): an insured key its person, a
    hospital key its organisation, an officer key its organisation and regions, an auditor key
    its regions; `all_regions` gives an officer or auditor every region, on purpose. An
    organisation matches its pattern in `codes` (a hospital's is its hospital code, A4, A5)."""
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(
            "role", "A5", f"must be one of {', '.join(r.value for r in KEY_ROLES)}"
        ) from None
    if role not in KEY_ROLES:
        raise InvalidInput("role", "A5", "the engine's own role is never given to a key")
    default_channel = {Role.HOSPITAL: Channel.HOSPITAL_SYSTEM}.get(role, Channel.COUNTER)
    try:
        channel = Channel(channel or default_channel)
    except ValueError:
        raise InvalidInput("channel", "L7", f"must be one of {', '.join(Channel)}") from None
    if channel is Channel.SYSTEM:
        raise InvalidInput("channel", "L7", "the engine's own channel is never given to a key")
    if not label or len(label) > 64:
        raise InvalidInput("label", "A5", "1 to 64 characters naming the holder")
    kind = personal_data_in(label)
    if kind is not None:
        raise InvalidInput("label", "A5", f"holds what looks like {kind}: name the holder")
    if organisation is not None:
        pattern = codes.hospital if role is Role.HOSPITAL else codes.organisation
        pattern.check("organisation", organisation, "A5")
    p_key = p_masked = None
    if role is Role.INSURED:
        if id_number is None:
            raise InvalidInput("id_number", "A5", "an insured person's key names its person")
        number = normalise_id_number(id_number, local_date(now))
        p_key, p_masked = person_key(number, person_secret), mask(number)
    elif id_number is not None:
        raise InvalidInput("id_number", "A5", "only an insured person's key names a person")
    elif on_behalf:
        raise InvalidInput("on_behalf", "L8", "only an insured person's key acts on behalf")
    if role in (Role.HOSPITAL, Role.OFFICER) and not organisation:
        raise InvalidInput("organisation", "A5", f"a {role.value} key names its organisation")
    scoped = (Role.OFFICER, Role.AUDITOR)
    if role in scoped and not regions and not all_regions:
        # Every region is a decision, never a default: a forgotten --region must not open
        # the whole country to a key.
        raise InvalidInput(
            "regions", "A5", f"a {role.value} key names its regions, or says all_regions"
        )
    if role in scoped and regions and all_regions:
        raise InvalidInput("all_regions", "A5", "regions or all_regions, not both")
    if role not in scoped and (regions or all_regions):
        raise InvalidInput("regions", "A5", "only officer and auditor keys are scoped by region")
    for r in regions:
        if not region_exists(r):
            raise InvalidInput("regions", "A5", "each must be a six-digit GB/T 2260 region code")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row: dict[str, Any] = {
        "id": key_id,
        "secret_hash": _hash(secret),
        "role": role.value,
        "channel": channel.value,
        "organisation": organisation,
        "person_key": p_key,
        "person_masked": p_masked,
        "on_behalf": on_behalf,
        "regions": json.dumps(sorted(regions)),
        "label": label,
        "created_at": now,
        "revoked_at": None,
    }
    with store.write(chained=False) as tx:
        tx.run(_INSERT, row)
    return IssuedKey(_principal(row), f"{PREFIX}{key_id}_{secret}")


def revoke(store: Store, key_id: str, now: datetime) -> None:
    """Revoke a key: from the next request on, it authenticates nothing."""
    with store.write(chained=False) as tx:
        changed = tx.run(
            "UPDATE api_key_record SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL",
            {"id": key_id, "at": now},
        )
        if not changed and tx.one("SELECT id FROM api_key_record WHERE id = :id", {"id": key_id}):
            return  # already revoked: revoking again changes nothing
    if not changed:
        raise KeyNotFound(key_id)


def regions_shown(role: Role | str, regions: Sequence[str]) -> list[str] | str | None:
    """A key's regions as `filing keys` shows them: an officer or auditor key with none was
    issued for every region (`all_regions`), shown as "all"; other roles are not scoped by
    region (None). An empty list would read as "no region at all", the opposite."""
    if Role(role) not in (Role.OFFICER, Role.AUDITOR):
        return None
    return list(regions) if regions else "all"


def listing(store: Store) -> list[dict[str, Any]]:
    """Every key, revoked or not, without its hash (for `filing keys list`)."""
    with store.read() as tx:
        rows = tx.all("SELECT * FROM api_key_record ORDER BY created_at, id")
    return [
        {
            "id": r["id"],
            "role": r["role"],
            "channel": r["channel"],
            "organisation": r["organisation"],
            "person": r["person_masked"],
            "on_behalf": r["on_behalf"],
            "regions": regions_shown(r["role"], json.loads(r["regions"])),
            "label": r["label"],
            "created_at": r["created_at"].isoformat(),
            "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
        }
        for r in rows
    ]


def authenticate(store: Store, token: str) -> Principal | None:
    """The key's holder, or None for anything else: malformed, unknown, wrong or revoked."""
    if not token.startswith(PREFIX):
        return None
    key_id, sep, secret = token[len(PREFIX) :].partition("_")
    # The id is 12 hex digits; anything else (a NUL, which PostgreSQL refuses in text) is
    # never sent to the database.
    if not sep or not _KEY_ID.fullmatch(key_id) or not secret:
        return None
    with store.read() as tx:
        row = tx.one("SELECT * FROM api_key_record WHERE id = :id", {"id": key_id})
    if row is None or row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(row["secret_hash"], _hash(secret)):
        return None
    return _principal(row)


def _principal(row: Row | dict[str, Any]) -> Principal:
    return Principal(
        key_id=row["id"],
        role=Role(row["role"]),
        channel=Channel(row["channel"]),
        organisation=row["organisation"],
        person_key=row["person_key"],
        person_masked=row["person_masked"],
        on_behalf=bool(row["on_behalf"]),
        regions=tuple(json.loads(row["regions"])),
        label=row["label"],
    )
