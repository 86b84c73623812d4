from __future__ import annotations

from fastapi import APIRouter

from registry.deps import VaultDep
from registry.retention.schemas import DueRead, PlanRead

router = APIRouter(prefix="/retention", tags=["retention 保存期限"])


@router.get("/plan", response_model=PlanRead)
def retention_plan(vault: VaultDep) -> PlanRead:
    """What the retention rules say must go today, and what legal holds keep (administrators;
    record ids only). Erasure itself is `registry retention apply`, run by the operator."""
    today = vault.clock.today()
    items = vault.retention.plan(today)
    return PlanRead(as_of=today, items=[
        DueRead(kind=i.kind, record_id=i.record_id, action=i.action, rule=i.rule,
                due_on=i.due_on, jurisdiction_code=i.jurisdiction_code, held=i.held)
        for i in items], audit_events_past_retention=vault.retention.audit_past_retention(today))
