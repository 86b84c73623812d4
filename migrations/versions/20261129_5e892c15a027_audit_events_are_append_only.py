"""audit events are append-only

Revision ID: 5e892c15a027
Revises: c92e7b121d7d
Create Date: 2026-11-29 17:57:11.516747
"""

from collections.abc import Sequence

from alembic import op


revision: str = '5e892c15a027'
down_revision: str | None = 'c92e7b121d7d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The application only ever inserts audit events; the database refuses anything else, so a bug
# or a stolen application login cannot rewrite the record. (Whoever owns the database can still
# drop the triggers: that is what signed checkpoints held elsewhere are for.)
PG_FUNCTION = """
CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only';
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute("CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON "
                   "audit_event FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()")
        op.execute("CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()")
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_event_append_only_{event.lower()} BEFORE {event} "
                       "ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); "
                       "END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_event_no_truncate ON audit_event")
        op.execute("DROP TRIGGER audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION audit_event_append_only()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER audit_event_append_only_{event}")
