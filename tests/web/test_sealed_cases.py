"""Sealed juvenile cases on the pages: as in the API, they open only under a stated purpose,
and every read or write of one carries it into the audit log — the board's, the list's and
the case page's forms carry the purpose stated there."""

from __future__ import annotations

import re

from sqlalchemy import select

from registry.corrections import service as corrections
from registry.corrections.schemas import CaseCreate
from registry.models import AuditEvent
from registry.releases import service as releases
from registry.releases.schemas import ReleaseCreate
from registry.vault.base import Actor
from tests.conftest import COMMUNITY_A, COUNTY, id_number
from tests.web.conftest import signed_in

PURPOSE = "少年庭协查 2026-07"


def _sealed_case(registry) -> str:
    with registry.vault(Actor(None, "loader", "corrections", COUNTY)) as vault:
        case = corrections.open_case(vault, CaseCreate(
            name="韩小明", id_number=id_number(61), jurisdiction_code=COMMUNITY_A,
            category="probation", deciding_body="测试县人民法院", judgment_ref="(2026)少刑初1号",
            effective_on="2026-04-01", supervision_start="2026-04-01",
            supervision_end="2027-04-01", reported_on="2026-04-03", juvenile=True,
            check_in_interval_days=7, grace_days=2), purpose="立案")
        vault.commit()
    return str(case.id)


def _sealed_release(registry) -> str:
    with registry.vault(Actor(None, "loader", "justice", COUNTY)) as vault:
        case = releases.register(vault, ReleaseCreate(
            name="韩小亮", id_number=id_number(62), jurisdiction_code=COMMUNITY_A,
            source="prison", released_on="2026-05-01", releasing_institution="省未成年犯管教所",
            juvenile=True), purpose="登记")
        vault.commit()
    return str(case.id)


def _purposes(registry, record_id: str) -> list[tuple[str, str | None]]:
    with registry.db.session() as session:
        return [tuple(r) for r in session.execute(
            select(AuditEvent.action, AuditEvent.purpose)
            .where(AuditEvent.record_id == record_id).order_by(AuditEvent.seq))]


def test_a_sealed_corrections_case_is_worked_under_the_purpose_stated_on_the_board(
        registry, client):
    case_id = _sealed_case(registry)
    csrf = signed_in(registry, client, "corrections", COUNTY)
    assert case_id not in client.get("/web/corrections/board").text
    board = client.post("/web/corrections/board", data={"csrf_token": csrf,
                                                        "purpose": PURPOSE})
    assert "韩小明" in board.text
    # The entry opens the case under the board's purpose (its page has no address without
    # one), and its check-in carries the purpose too.
    opener = re.search(rf'<form method="post" action="/web/corrections/{case_id}/reveal"'
                       rf'.*?</form>', board.text, re.S)
    assert opener and f'name="purpose" value="{PURPOSE}"' in opener[0]
    checkin = re.search(rf'action="/web/corrections/{case_id}/check-in".*?</form>',
                        board.text, re.S)
    assert checkin and f'name="purpose" value="{PURPOSE}"' in checkin[0]
    assert client.get(f"/web/corrections/{case_id}").status_code == 404
    # A check-in from the board without a purpose: the sealed case is not found.
    bare = client.post(f"/web/corrections/{case_id}/check-in",
                       data={"csrf_token": csrf, "method": "video"})
    assert bare.status_code == 404 and "韩" not in bare.text
    checked = client.post(f"/web/corrections/{case_id}/check-in", data={
        "csrf_token": csrf, "method": "video", "purpose": PURPOSE})
    assert checked.status_code == 200 and "签到已记录" in checked.text
    assert PURPOSE in checked.text  # the board again, still under the purpose
    page = client.post(f"/web/corrections/{case_id}/reveal", data={"csrf_token": csrf,
                                                                   "purpose": PURPOSE})
    assert page.status_code == 200 and "韩小明" in page.text and "视频" in page.text
    # Its language link leads to the board: the case has no page without a purpose.
    assert 'href="/web/lang/en?next=/web/corrections/board"' in page.text
    forms = re.findall(r'<form method="post" action="/web/corrections/[^"]+/'
                       r'(check-in|sanctions|status)".*?</form>', page.text, re.S)
    assert sorted(forms) == ["check-in", "sanctions", "status"]
    for form in re.findall(r'<form method="post" action="/web/corrections/[^"]+/'
                           r'(?:check-in|sanctions|status)".*?</form>', page.text, re.S):
        assert f'name="purpose" value="{PURPOSE}"' in form
    # Writes on the case page under the purpose: refused next to the field, still under it;
    # then saved, and the page shown again under it.
    bad = client.post(f"/web/corrections/{case_id}/sanctions", data={
        "csrf_token": csrf, "purpose": PURPOSE, "sanction.kind": "warning",
        "sanction.decided_on": "2026-06-14", "sanction.reason": ""})
    assert bad.status_code == 422 and "韩小明" in bad.text
    assert re.search(r'id="f-sanction-reason-err"[^>]*>必填', bad.text)
    warned = client.post(f"/web/corrections/{case_id}/sanctions", data={
        "csrf_token": csrf, "purpose": PURPOSE, "sanction.kind": "warning",
        "sanction.decided_on": "2026-06-14", "sanction.reason": "未按时报告"})
    assert warned.status_code == 200 and "已登记" in warned.text and "警告" in warned.text
    assert "韩小明" in warned.text and "未按时报告" in warned.text
    again = client.post(f"/web/corrections/{case_id}/check-in", data={
        "csrf_token": csrf, "method": "phone", "purpose": PURPOSE, "back": "case"})
    assert again.status_code == 200 and "签到记录" in again.text and "韩小明" in again.text
    ended = client.post(f"/web/corrections/{case_id}/status", data={
        "csrf_token": csrf, "purpose": PURPOSE, "status.status": "ended",
        "status.on": "2026-06-14", "status.reason": "矫正期满"})
    assert ended.status_code == 200 and "矫正状态已变更" in ended.text
    # Without the purpose the same writes find nothing.
    assert client.post(f"/web/corrections/{case_id}/sanctions", data={
        "csrf_token": csrf, "sanction.kind": "warning", "sanction.decided_on": "2026-06-14",
        "sanction.reason": "x"}).status_code == 404
    audited = _purposes(registry, case_id)
    for action in ("check_in", "sanction", "status"):
        assert (action, PURPOSE) in audited, audited


def test_opening_a_juvenile_case_asks_for_the_purpose_it_is_seen_under(registry, client):
    from tests.web.test_role_pages import _case_form

    csrf = signed_in(registry, client, "corrections", COUNTY)
    asked = client.post("/web/corrections/new", data={"csrf_token": csrf,
                                                      **_case_form(juvenile="on")})
    assert asked.status_code == 422
    assert re.search(r'id="f-purpose-err"[^>]*>未成年人案件立案后即封存', asked.text)
    saved = client.post("/web/corrections/new", data={
        "csrf_token": csrf, **_case_form(juvenile="on"), "purpose": PURPOSE})
    assert saved.status_code == 200 and "矫正案件已立案" in saved.text
    assert "郑十" in saved.text and PURPOSE in saved.text
    case_id = re.search(r'/web/corrections/([0-9a-f-]{36})/', saved.text)[1]
    assert ("create", PURPOSE) in _purposes(registry, case_id)
    assert client.get(f"/web/corrections/{case_id}").status_code == 404


def test_sealed_release_cases_are_listed_and_worked_under_a_stated_purpose(registry, client):
    case_id = _sealed_release(registry)
    csrf = signed_in(registry, client, "justice", COUNTY)
    listing = client.get("/web/releases")
    assert listing.status_code == 200 and case_id not in listing.text
    assert 'action="/web/releases"' in listing.text  # the list asks for a purpose
    shown = client.post("/web/releases", data={"csrf_token": csrf, "purpose": PURPOSE,
                                               "needs_action": "true", "page": "1"})
    assert shown.status_code == 200 and "韩小亮" in shown.text
    opener = re.search(rf'<form method="post" action="/web/releases/{case_id}/reveal"'
                       rf'.*?</form>', shown.text, re.S)
    assert opener and f'name="purpose" value="{PURPOSE}"' in opener[0]
    page = client.post(f"/web/releases/{case_id}/reveal", data={"csrf_token": csrf,
                                                                "purpose": PURPOSE})
    assert page.status_code == 200 and "韩小亮" in page.text
    assert 'href="/web/lang/en?next=/web/releases"' in page.text
    for form in re.findall(r'<form method="post" action="/web/releases/[^"]+/'
                           r'(?:assist|placement|close)".*?</form>', page.text, re.S):
        assert f'name="purpose" value="{PURPOSE}"' in form
    bare = client.post(f"/web/releases/{case_id}/assist", data={
        "csrf_token": csrf, "assist.on": "2026-06-14", "assist.kind": "visit"})
    assert bare.status_code == 404 and "韩" not in bare.text
    visited = client.post(f"/web/releases/{case_id}/assist", data={
        "csrf_token": csrf, "purpose": PURPOSE, "assist.on": "2026-06-14",
        "assist.kind": "visit", "assist.notes": "家访"})
    assert visited.status_code == 200 and "帮扶记录已登记" in visited.text
    assert "韩小亮" in visited.text and "家访" in visited.text
    placed = client.post(f"/web/releases/{case_id}/placement", data={
        "csrf_token": csrf, "purpose": PURPOSE, "place.status": "placed",
        "place.kind": "employment", "place.placed_on": "2026-06-10"})
    assert placed.status_code == 200 and "安置情况已登记" in placed.text
    audited = _purposes(registry, case_id)
    assert ("assist", PURPOSE) in audited and ("placement", PURPOSE) in audited, audited


def test_registering_a_juvenile_release_with_its_placement_asks_for_the_purpose(
        registry, client):
    from tests.web.test_role_pages import _release_form

    csrf = signed_in(registry, client, "justice", COUNTY)
    asked = client.post("/web/releases/new", data={"csrf_token": csrf,
                                                   **_release_form(juvenile="on")})
    assert asked.status_code == 422
    assert re.search(r'id="f-purpose-err"[^>]*>未成年人案件立案后即封存', asked.text)
    saved = client.post("/web/releases/new", data={
        "csrf_token": csrf, **_release_form(juvenile="on"), "purpose": PURPOSE})
    assert saved.status_code == 200, saved.text
    assert "冯十一" in saved.text and "已安置" in saved.text and PURPOSE in saved.text
