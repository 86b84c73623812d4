"""Every table, and the one import point for alembic and the vault.

Clear columns carry what counts, routes and decides access (jurisdiction code, status, dates,
completeness); personal data sits only in :class:`~registry.security.sealed.Sealed` columns.
"""

from sqlmodel import SQLModel

from registry.db import NAMING_CONVENTION

SQLModel.metadata.naming_convention = NAMING_CONVENTION

from registry.models.access import BreakGlassGrant, PersonRestriction  # noqa: E402
from registry.models.accounts import AuthToken, SignInFailure, UserAccount  # noqa: E402
from registry.models.audit import (  # noqa: E402
    AnomalyReview,
    AuditAnchor,
    AuditCheckpoint,
    AuditEvent,
    AuditHead,
    AuditRef,
)
from registry.models.coordinators import Coordinator  # noqa: E402
from registry.models.corrections import CheckIn, CorrectionsCase, Sanction  # noqa: E402
from registry.models.jurisdiction import Jurisdiction  # noqa: E402
from registry.models.keys import DataKey, KeyCheck  # noqa: E402
from registry.models.metrics import SurveyBaseline  # noqa: E402
from registry.models.person import Person  # noqa: E402
from registry.models.releases import AssistanceRecord, ReleaseCase  # noqa: E402
from registry.models.rentals import Pledge, RentalProperty  # noqa: E402
from registry.models.residents import Residency  # noqa: E402
from registry.models.retention import Erasure, LegalHold  # noqa: E402

metadata = SQLModel.metadata

__all__ = [
    "AnomalyReview",
    "AssistanceRecord",
    "AuditAnchor",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "AuditRef",
    "AuthToken",
    "BreakGlassGrant",
    "CheckIn",
    "Coordinator",
    "CorrectionsCase",
    "DataKey",
    "Erasure",
    "Jurisdiction",
    "KeyCheck",
    "LegalHold",
    "Person",
    "PersonRestriction",
    "Pledge",
    "ReleaseCase",
    "RentalProperty",
    "Residency",
    "Sanction",
    "SignInFailure",
    "SurveyBaseline",
    "UserAccount",
    "metadata",
]
