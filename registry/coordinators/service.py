"""The coordinators' roster: add and list. No database, no FastAPI."""

from __future__ import annotations

import uuid

from registry.coordinators.schemas import CoordinatorIn, CoordinatorRead
from registry.schemas import Page
from registry.validation import clean_text, parse_mobile
from registry.vault.gate import Vault


def clean(data: CoordinatorIn) -> CoordinatorIn:
    return data.model_copy(update={
        "name": clean_text(data.name, field="name", max_length=50),
        "phone": parse_mobile(data.phone) if data.phone else None})


def add(vault: Vault, data: CoordinatorIn, *, purpose: str | None = None) -> CoordinatorRead:
    return vault.coordinators.add(clean(data), purpose=purpose)


def list_coordinators(vault: Vault, *, jurisdiction: str | None, page: int, page_size: int,
                      purpose: str | None) -> Page[CoordinatorRead]:
    return vault.coordinators.list(jurisdiction=jurisdiction, page=page, page_size=page_size,
                                   purpose=purpose)


def change(vault: Vault, coordinator_id: uuid.UUID, changes: dict, *,
           purpose: str | None = None) -> CoordinatorRead:
    """Replace the given roster facts (name, jurisdiction, phone), already cleaned."""
    return vault.coordinators.change(coordinator_id, changes, purpose=purpose)
