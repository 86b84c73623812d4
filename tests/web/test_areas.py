"""The jurisdiction choices of the pages' filters and forms."""

from __future__ import annotations

from sqlalchemy import event

from registry.vault.base import Actor
from registry.web.field import areas
from tests.conftest import COUNTY


def test_areas_lists_the_subtree_level_by_level_in_one_query(registry):
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        if "jurisdiction" in statement.lower():
            statements.append(statement)

    with registry.vault(Actor(None, "tests", "police", COUNTY)) as vault:
        walked = [(j.code, f"{j.name}（{j.code}）") for j in [vault.jurisdictions.get(COUNTY)]]
        level = [vault.jurisdictions.get(COUNTY)]
        for _ in range(2):
            level = [c for j in level for c in vault.jurisdictions.children(j.code)]
            walked += [(j.code, f"{j.name}（{j.code}）") for j in level]
        event.listen(registry.db.engine, "before_cursor_execute", seen)
        try:
            found = areas(vault, COUNTY)
        finally:
            event.remove(registry.db.engine, "before_cursor_execute", seen)
        assert areas(vault, COUNTY, depth=0) == walked[:1]
    assert len(walked) > 3 and found == walked  # the same choices, in the same order
    assert len(statements) == 1, statements
