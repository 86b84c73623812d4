"""The role pages over HTTP (both backends): validation next to the field with nothing saved,
the purpose prompt, escaping, and the gate's refusals for roles without the register."""

from __future__ import annotations

import re

from sqlalchemy import select

from registry.corrections import service as corrections
from registry.corrections.schemas import CaseCreate
from registry.models import AuditEvent
from registry.vault.base import Actor
from tests.conftest import COMMUNITY_A, COMMUNITY_B, COUNTY, GRID_A1, id_number
from tests.web.conftest import csrf_of, signed_in

SCRIPT = '<script>alert("x")</script>'


def _rental_form(**overrides) -> dict:
    form = {"jurisdiction_code": GRID_A1, "address": "东门路8号3幢402室", "units": "2",
            "status": "active", "landlord.name": "李建国", "landlord.id_number": id_number(7),
            "landlord.phone": "13800138000", "pledge.signed_on": "2026-06-01",
            "pledge.valid_until": "2027-05-31"}
    form.update(overrides)
    return form


def _count_rentals(client) -> int:
    text = client.get("/web/rentals").text
    return int(re.search(r"共 (\d+) 条", text)[1]) if "共" in text else 0


def test_police_register_a_rental_record_a_pledge_and_an_arrival(registry, client):
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    # A wrong check character: the message sits next to the field, nothing is saved, and what
    # was typed is kept.
    bad = client.post("/web/rentals/new", data={"csrf_token": csrf,
                                                **_rental_form(**{"landlord.id_number":
                                                                  id_number(7)[:-1] + "0"})})
    assert bad.status_code == 422
    assert re.search(r'id="f-landlord-id_number-err"[^>]*>校验码不符', bad.text), bad.text
    assert "东门路8号3幢402室" in bad.text
    assert _count_rentals(client) == 0
    # The filter form's "all" sends blanks; a value not on the list is said next to it.
    assert client.get("/web/rentals?jurisdiction=&status=&pledge_state=").status_code == 200
    odd = client.get("/web/rentals?status=sold")
    assert odd.status_code == 422 and re.search(r'id="f-status-err"[^>]*>请从列表中选择', odd.text)
    saved = client.post("/web/rentals/new", data={"csrf_token": csrf, **_rental_form()},
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    detail = client.get(saved.headers["location"])
    assert "房屋已登记" in detail.text and "李*" in detail.text  # masked without a purpose
    assert "330199197" not in detail.text
    rental_path = saved.headers["location"].split("?")[0]
    # The purpose prompt: without one it is asked for; with one the page shows it in full.
    empty = client.post(rental_path + "/reveal", data={"csrf_token": csrf, "purpose": ""})
    assert empty.status_code == 422 and "请填写查阅事由" in empty.text
    full = client.post(rental_path + "/reveal", data={"csrf_token": csrf,
                                                      "purpose": "走访 2026-117"})
    assert "李建国" in full.text and id_number(7) in full.text
    # A pledge whose end precedes its start: refused next to the field.
    pledge = client.post(rental_path + "/pledge", data={
        "csrf_token": csrf, "pledge.signed_on": "2026-06-10", "pledge.valid_until": "2026-06-01"})
    assert pledge.status_code == 422
    assert re.search(r'id="f-pledge-valid_until-err"[^>]*>须晚于签订日期', pledge.text)
    renewed = client.post(rental_path + "/pledge", data={
        "csrf_token": csrf, "pledge.signed_on": "2026-06-10",
        "pledge.valid_until": "2027-06-09"})
    assert "保证书已登记" in renewed.text
    # An arrival at the rental, then the departure.
    rental_id = rental_path.rsplit("/", 1)[1]
    arrived = client.post("/web/residents/new", data={
        "csrf_token": csrf, "name": "赵六", "id_number": id_number(8), "reason": "work",
        "arrived_on": "2026-06-01", "rental_id": rental_id, "phone": "13900001111"},
        follow_redirects=False)
    assert arrived.status_code == 303, arrived.text
    resident_path = arrived.headers["location"].split("?")[0]
    assert "赵*" in client.get(rental_path).text
    living = client.get("/web/residents")
    assert living.status_code == 200 and resident_path in living.text
    left = client.post(resident_path + "/move-out", data={"csrf_token": csrf,
                                                          "out.left_on": "2026-06-20"})
    assert left.status_code == 422 and "不能晚于今天" in left.text  # the clock: 15 June
    left = client.post(resident_path + "/move-out", data={"csrf_token": csrf,
                                                          "out.left_on": "2026-06-14"})
    assert "离开已登记" in left.text
    # Search by ID number finds the resident and the landlord's rental.
    found = client.post("/web/search", data={"csrf_token": csrf, "id_number": id_number(7)})
    assert found.status_code == 200 and rental_id in found.text


def test_script_in_a_text_field_is_shown_as_text(registry, client):
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    saved = client.post("/web/rentals/new", data={"csrf_token": csrf,
                                                  **_rental_form(address="东门路" + SCRIPT)})
    page = client.post(saved.url.path + "/reveal", data={"csrf_token": csrf,
                                                         "purpose": "核查" + SCRIPT})
    assert SCRIPT not in page.text  # neither the stored address nor the stated purpose
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    # Echoed back in a refused form too.
    bad = client.post("/web/rentals/new", data={"csrf_token": csrf,
                                                **_rental_form(**{"landlord.name": SCRIPT,
                                                                  "units": "x"})})
    assert bad.status_code == 422 and SCRIPT not in bad.text and "须为整数" in bad.text


def _case(registry) -> str:
    loader = Actor(None, "loader", "corrections", COUNTY)
    with registry.vault(loader) as vault:
        case = corrections.open_case(vault, CaseCreate(
            name="孙七", id_number=id_number(9), jurisdiction_code=COMMUNITY_A,
            category="probation", deciding_body="测试县人民法院", judgment_ref="(2026)刑初1号",
            effective_on="2026-04-01", supervision_start="2026-04-01",
            supervision_end="2027-04-01", reported_on="2026-04-03",
            check_in_interval_days=7, grace_days=2))
        vault.commit()
    return str(case.id)


def test_corrections_board_check_in_and_case_page(registry, client):
    case_id = _case(registry)
    csrf = signed_in(registry, client, "corrections", COUNTY)
    board = client.get("/web/corrections/board")
    assert board.status_code == 200 and "逾期" in board.text and "孙*" in board.text
    assert re.search(r"逾期 \d+ 天", board.text)
    named = client.post("/web/corrections/board", data={"csrf_token": csrf, "purpose": "晨检"})
    assert "孙七" in named.text and "晨检" in named.text
    done = client.post(f"/web/corrections/{case_id}/check-in",
                       data={"csrf_token": csrf, "method": "video"}, follow_redirects=False)
    assert done.headers["location"] == "/web/corrections/board?done=checkin.saved"
    case = client.get(f"/web/corrections/{case_id}")
    assert "视频" in case.text and "签到记录" in case.text
    warned = client.post(f"/web/corrections/{case_id}/sanctions", data={
        "csrf_token": csrf, "sanction.kind": "warning", "sanction.decided_on": "2026-06-14",
        "sanction.reason": ""})
    assert warned.status_code == 422
    assert re.search(r'id="f-sanction-reason-err"[^>]*>必填', warned.text)


def test_police_never_see_corrections(registry, client):
    case_id = _case(registry)
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    home = client.get("/web/").text
    assert "签到看板" not in home and "安置帮教" not in home
    board = client.get("/web/corrections/board")
    assert board.status_code == 403 and "孙" not in board.text
    case = client.get(f"/web/corrections/{case_id}")
    assert case.status_code == 404 and "孙" not in case.text
    refused = client.post(f"/web/corrections/{case_id}/check-in",
                          data={"csrf_token": csrf, "method": "video"})
    assert refused.status_code in (403, 404) and "孙" not in refused.text
    assert csrf_of(home)


def _release(registry) -> str:
    from registry.releases import service as releases
    from registry.releases.schemas import ReleaseCreate

    loader = Actor(None, "loader", "justice", COUNTY)
    with registry.vault(loader) as vault:
        case = releases.register(vault, ReleaseCreate(
            name="吴九", id_number=id_number(11), jurisdiction_code=COMMUNITY_A,
            source="prison", released_on="2026-05-01", releasing_institution="省第一监狱"))
        vault.commit()
    return str(case.id)


def test_justice_aftercare_list_and_an_assistance_visit(registry, client):
    case_id = _release(registry)
    csrf = signed_in(registry, client, "justice", COUNTY)
    listing = client.get("/web/releases")
    assert listing.status_code == 200 and case_id in listing.text and "吴*" in listing.text
    future = client.post(f"/web/releases/{case_id}/assist", data={
        "csrf_token": csrf, "assist.on": "2026-07-01", "assist.kind": "visit"})
    assert future.status_code == 422
    assert re.search(r'id="f-assist-on-err"[^>]*>不能晚于今天', future.text)
    saved = client.post(f"/web/releases/{case_id}/assist", data={
        "csrf_token": csrf, "assist.on": "2026-06-14", "assist.kind": "visit",
        "assist.notes": "走访了解近况"})
    assert "帮扶记录已登记" in saved.text and "走***" in saved.text  # notes masked
    placed = client.post(f"/web/releases/{case_id}/placement", data={
        "csrf_token": csrf, "place.status": "placed", "place.kind": "employment",
        "place.placed_on": "2026-06-10"})
    assert "安置情况已登记" in placed.text and "就业" in placed.text


def test_police_never_see_release_cases(registry, client):
    case_id = _release(registry)
    signed_in(registry, client, "police", COMMUNITY_A)
    assert client.get("/web/releases").status_code == 403
    page = client.get(f"/web/releases/{case_id}")
    assert page.status_code == 404 and "吴" not in page.text


def test_leadership_dashboard_drill_down_and_workbook(registry, client):
    signed_in(registry, client, "leadership", COUNTY)
    page = client.get("/web/dashboard")
    assert page.status_code == 200
    assert "出租房屋基本信息登记录入率" in page.text and 'class="target"' in page.text
    assert "/web/dashboard?at=330199001" in page.text  # a child to drill into
    down = client.get("/web/dashboard?at=330199001")
    assert down.status_code == 200 and "返回上级" in down.text
    book = client.get("/web/dashboard.xlsx?at=330199001")
    assert book.status_code == 200 and book.content[:2] == b"PK"
    with registry.db.session() as session:  # a file leaving the system: an export
        action = session.scalar(select(AuditEvent.action).order_by(AuditEvent.seq.desc())
                                .limit(1))
    assert action == "export"
    assert "attachment" in book.headers["content-disposition"]


def test_auditors_see_no_targets(registry, client):
    signed_in(registry, client, "auditor", COUNTY)
    assert client.get("/web/dashboard").status_code == 403


def test_auditor_pages(registry, client):
    case_id = _release(registry)
    csrf = signed_in(registry, client, "auditor", COUNTY)
    events = client.get(f"/web/audit?record_id={case_id}")
    assert events.status_code == 200 and "release · create" in events.text
    assert "吴" not in events.text  # events name records and fields, never values
    chain = client.get("/web/audit/chain")
    assert chain.status_code == 200 and "日志链完整" in chain.text
    # The latest signed checkpoint, shown as a read of the chain, never as an export.
    assert re.search(r"最近的签名检查点</dt><dd>第 \d+ 号事件，签于 \d{4}-", chain.text)
    with registry.db.session() as session:
        actions = session.execute(select(AuditEvent.action, AuditEvent.detail).where(
            AuditEvent.kind == "audit").order_by(AuditEvent.seq.desc()).limit(2)).all()
    assert [a for a, _ in actions] == ["read", "verify"]
    assert actions[0].detail.startswith("checkpoint=last;seq=")
    both = client.post("/web/audit/disclosure", data={"csrf_token": csrf})
    assert both.status_code == 422 and "须且只能填写" in both.text
    found = client.post("/web/audit/disclosure", data={"csrf_token": csrf,
                                                       "id_number": id_number(11)})
    assert found.status_code == 200 and "共 " in found.text and "release" in found.text
    assert client.get("/web/audit/anomalies").status_code == 200
    assert client.get("/web/audit/break-glass").status_code == 200


def test_police_have_no_audit_pages(registry, client):
    signed_in(registry, client, "police", COMMUNITY_A)
    assert client.get("/web/audit").status_code == 403
    assert client.get("/web/audit/chain").status_code == 403


def test_admin_users_keys_and_retention(registry, client):
    csrf = signed_in(registry, client, "admin", COUNTY)
    page = client.get("/web/admin")
    assert page.status_code == 200 and "密钥状态" in page.text and "保存期限计划" in page.text
    short = client.post("/web/admin/users", data={
        "csrf_token": csrf, "username": "police_new", "password": "short",
        "role": "police", "jurisdiction_code": COMMUNITY_A})
    assert short.status_code == 422
    assert re.search(r'id="f-password-err"[^>]*>长度不足', short.text)
    assert "police_new" in short.text  # kept in the form, not in the list
    added = client.post("/web/admin/users", data={
        "csrf_token": csrf, "username": "police_new", "password": "a-long-password",
        "role": "police", "jurisdiction_code": COMMUNITY_A})
    assert "用户已新增" in added.text and "police_new" in added.text
    again = client.post("/web/admin/users", data={
        "csrf_token": csrf, "username": "police_new", "password": "a-long-password",
        "role": "police", "jurisdiction_code": COMMUNITY_A})
    assert again.status_code == 409 and "该用户名已被使用" in again.text
    disabled = client.post("/web/admin/users/police_new/disable", data={"csrf_token": csrf})
    assert "账户已停用" in disabled.text


def test_admin_sees_no_personal_data_pages(registry, client):
    signed_in(registry, client, "admin", COUNTY)
    assert client.get("/web/rentals").status_code == 403


def _case_form(**overrides) -> dict:
    form = {"name": "郑十", "id_number": id_number(21), "jurisdiction_code": COMMUNITY_A,
            "category": "probation", "deciding_body": "测试县人民法院",
            "judgment_ref": "(2026)刑初21号", "effective_on": "2026-06-01",
            "supervision_start": "2026-06-01", "supervision_end": "2027-05-31",
            "check_in_interval_days": "7", "grace_days": "2"}
    form.update(overrides)
    return form


def test_corrections_open_report_and_close_a_case(registry, client):
    csrf = signed_in(registry, client, "corrections", COUNTY)
    form = client.get("/web/corrections/new")
    assert form.status_code == 200 and "新接收矫正对象" in form.text
    # The end before the start: said next to the field, nothing saved, the typing kept.
    bad = client.post("/web/corrections/new", data={
        "csrf_token": csrf, **_case_form(supervision_end="2026-05-01", juvenile="on")})
    assert bad.status_code == 422
    assert re.search(r'id="f-supervision_end-err"[^>]*>须晚于矫正起始日期', bad.text)
    assert "(2026)刑初21号" in bad.text
    assert 'name="juvenile" type="checkbox" value="on" checked' in bad.text
    assert "郑" not in client.get("/web/corrections/board").text
    # An officer who is not one: refused next to the field.
    odd = client.post("/web/corrections/new", data={"csrf_token": csrf,
                                                    **_case_form(officer="nobody")})
    assert odd.status_code == 422 and re.search(r'id="f-officer-err"[^>]*>不是该辖区', odd.text)
    saved = client.post("/web/corrections/new", data={"csrf_token": csrf, **_case_form()},
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    case_path = saved.headers["location"].split("?")[0]
    page = client.get(saved.headers["location"])
    assert "矫正案件已立案" in page.text and "郑*" in page.text and "待报到" in page.text
    assert "登记报到" in page.text
    reported = client.post(case_path + "/report", data={"csrf_token": csrf,
                                                        "report.reported_on": "2026-06-03"})
    assert "报到已登记" in reported.text and "在矫" in reported.text
    # Ending needs a reason; then the case is closed and takes no check-in.
    ended = client.post(case_path + "/status", data={
        "csrf_token": csrf, "status.status": "ended", "status.on": "2026-06-14"})
    assert ended.status_code == 422
    assert re.search(r'id="f-status-reason-err"[^>]*>解除或终止须说明原因', ended.text)
    ended = client.post(case_path + "/status", data={
        "csrf_token": csrf, "status.status": "ended", "status.on": "2026-06-14",
        "status.reason": "矫正期满"})
    assert "矫正状态已变更" in ended.text and "解除矫正" in ended.text
    assert "结案日期" in ended.text and "/check-in" not in ended.text
    again = client.post(case_path + "/status", data={
        "csrf_token": csrf, "status.status": "absconded", "status.on": "2026-06-14"})
    assert again.status_code == 409 and "当前状态不允许此变更" in again.text


def test_police_may_not_open_a_corrections_case(registry, client):
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    assert client.get("/web/corrections/new").status_code == 403
    refused = client.post("/web/corrections/new", data={"csrf_token": csrf, **_case_form()})
    assert refused.status_code == 403


def _release_form(**overrides) -> dict:
    form = {"name": "冯十一", "id_number": id_number(31), "jurisdiction_code": COMMUNITY_A,
            "source": "prison", "released_on": "2026-06-01",
            "releasing_institution": "省第二监狱", "notice_received_on": "2026-05-20",
            "aftercare_years": "3", "measures_in_place": "on", "place.status": "placed",
            "place.kind": "employment", "place.placed_on": "2026-06-10"}
    form.update(overrides)
    return form


def test_justice_register_a_release_with_its_placement_then_close_it(registry, client):
    csrf = signed_in(registry, client, "justice", COUNTY)
    assert client.get("/web/releases/new").status_code == 200
    # A placement dated before the release: the vault refuses it, and the case registered
    # in the same transaction is not kept either.
    bad = client.post("/web/releases/new", data={
        "csrf_token": csrf, **_release_form(**{"place.placed_on": "2026-05-01"})})
    assert bad.status_code == 422
    assert re.search(r'id="f-place-placed_on-err"[^>]*>早于释放日期', bad.text)
    assert "省第二监狱" in bad.text
    assert "冯" not in client.get("/web/releases?needs_action=false").text
    missing = client.post("/web/releases/new", data={
        "csrf_token": csrf, **_release_form(source="", aftercare_years="x")})
    assert missing.status_code == 422
    assert re.search(r'id="f-source-err"[^>]*>必填', missing.text)
    assert re.search(r'id="f-aftercare_years-err"[^>]*>须为整数', missing.text)
    saved = client.post("/web/releases/new", data={"csrf_token": csrf, **_release_form()},
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    case_path = saved.headers["location"].split("?")[0]
    page = client.get(saved.headers["location"])
    assert "已登记" in page.text and "冯*" in page.text and "冯十一" not in page.text
    assert "2029-06-01" in page.text and "已安置" in page.text and "就业" in page.text
    assert "2026-05-20" in page.text  # the handover notice
    closed = client.post(case_path + "/close", data={
        "csrf_token": csrf, "close.on": "2026-06-14", "close.reason": "moved_away"})
    assert "已结案" in closed.text and "迁出" in closed.text and "/close" not in closed.text
    again = client.post(case_path + "/close", data={
        "csrf_token": csrf, "close.on": "2026-06-14", "close.reason": "died"})
    assert again.status_code == 409 and "role=\"alert\"" in again.text


def test_police_may_not_register_a_release(registry, client):
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    assert client.get("/web/releases/new").status_code == 403
    assert client.post("/web/releases/new", data={"csrf_token": csrf, **_release_form()}
                       ).status_code == 403


def _rental(registry, scope: str, address: str, seed: int) -> str:
    from registry.rentals import service as rentals
    from registry.rentals.schemas import RentalCreate

    loader = Actor(None, "loader", "police", COUNTY)
    with registry.vault(loader) as vault:
        rental = rentals.register(vault, RentalCreate.model_validate({
            "jurisdiction_code": scope, "address": address, "units": 3,
            "registered_on": "2026-05-01",
            "landlord": {"name": "钱多多", "id_number": id_number(seed)}}))
        vault.commit()
    return str(rental.id)


def test_arrival_picks_a_rental_of_my_area_then_deregistration_waits_for_the_move_out(
        registry, client):
    mine = _rental(registry, COMMUNITY_A, "西街十二号院3号楼101", 41)
    theirs = _rental(registry, COMMUNITY_B, "南街九十九号院8号楼808", 42)
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    # The picker: my area's rentals by masked address and masked landlord, no other area's.
    form = client.get("/web/residents/new")
    assert f'<option value="{mine}">西街十二***（房东 钱*，3 户，在租，{COMMUNITY_A}）' in form.text
    assert theirs not in form.text and "南街" not in form.text
    assert "西街十二号院" not in form.text and "钱多多" not in form.text
    # A rental outside my area, posted anyway: the gate does not know it.
    elsewhere = client.post("/web/residents/new", data={
        "csrf_token": csrf, "name": "褚十二", "id_number": id_number(43), "reason": "work",
        "arrived_on": "2026-06-01", "rental_id": theirs})
    assert elsewhere.status_code in (404, 422) and "南街" not in elsewhere.text
    arrived = client.post("/web/residents/new", data={
        "csrf_token": csrf, "name": "褚十二", "id_number": id_number(43), "reason": "work",
        "arrived_on": "2026-06-01", "rental_id": mine}, follow_redirects=False)
    assert arrived.status_code == 303, arrived.text
    resident_path = arrived.headers["location"].split("?")[0]
    # Amend the facts: a bad mobile next to its field, nothing saved; then saved.
    bad = client.post(resident_path + "/edit", data={"csrf_token": csrf, "phone": "12345",
                                                      "occupation": "厨师"})
    assert bad.status_code == 422 and re.search(r'id="f-phone-err"[^>]*>\S', bad.text)
    assert "厨师" in bad.text
    assert "厨" not in client.get(resident_path).text.split("职业", 1)[1][:40]
    amended = client.post(resident_path + "/edit", data={
        "csrf_token": csrf, "occupation": "厨师", "permit_number": "330199202600001"})
    assert "登记信息已修改" in amended.text and "厨***" in amended.text
    # The move page has the same picker; the resident's own page lists no rentals.
    assert mine in client.get(resident_path + "/move").text
    assert "西街十二***（房东" not in client.get(resident_path).text
    # Deregistering waits for the residents to move out; then it is said, and final.
    rental_path = f"/web/rentals/{mine}"
    early = client.post(rental_path + "/deregister", data={"csrf_token": csrf})
    assert early.status_code == 409 and "仍有1名住户登记在此" in early.text
    client.post(resident_path + "/move-out", data={"csrf_token": csrf,
                                                   "out.left_on": "2026-06-14"})
    future = client.post(rental_path + "/deregister", data={
        "csrf_token": csrf, "dereg.deregistered_on": "2026-07-01"})
    assert future.status_code == 422
    assert re.search(r'id="f-dereg-deregistered_on-err"[^>]*>不能晚于今天', future.text)
    done = client.post(rental_path + "/deregister", data={"csrf_token": csrf})
    assert "已注销" in done.text and "注销日期：2026-06-15" in done.text
    assert "/pledge" not in done.text and "/deregister" not in done.text
    ended = client.post(resident_path + "/edit", data={"csrf_token": csrf,
                                                        "occupation": "司机"})
    assert ended.status_code == 409 and "已结束的居住登记不能修改" in ended.text
    assert mine not in client.get("/web/residents/new").text  # no longer offered


def test_coordinators_amend_facts_but_may_not_deregister(registry, client):
    rental = _rental(registry, COMMUNITY_A, "西街十二号院3号楼102", 44)
    csrf = signed_in(registry, client, "coordinator", COMMUNITY_A)
    page = client.get(f"/web/rentals/{rental}")
    assert page.status_code == 200 and "/deregister" not in page.text
    refused = client.post(f"/web/rentals/{rental}/deregister", data={"csrf_token": csrf})
    assert refused.status_code in (403, 404)
    assert "在租" in client.get(f"/web/rentals/{rental}").text


def test_the_rental_picker_says_when_it_lists_only_the_newest(registry, client, monkeypatch):
    from registry.web import field

    monkeypatch.setattr(field, "PICKER_SIZE", 1)
    _rental(registry, COMMUNITY_A, "西街十二号院3号楼103", 45)
    _rental(registry, COMMUNITY_A, "西街十二号院3号楼104", 46)
    signed_in(registry, client, "police", COMMUNITY_A)
    form = client.get("/web/residents/new")
    assert form.text.count("（房东 钱*") == 1 and "只列出最新登记的 1 处" in form.text


def test_a_purpose_on_a_rental_page_opens_the_rental_not_its_residents(registry, client):
    rental = _rental(registry, COMMUNITY_A, "西街十二号院3号楼105", 47)
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    arrived = client.post("/web/residents/new", data={
        "csrf_token": csrf, "name": "卫十三", "id_number": id_number(48), "reason": "work",
        "arrived_on": "2026-06-01", "rental_id": rental}, follow_redirects=False)
    assert arrived.status_code == 303, arrived.text
    full = client.post(f"/web/rentals/{rental}/reveal", data={"csrf_token": csrf,
                                                              "purpose": "走访 2026-118"})
    assert "钱多多" in full.text and id_number(47) in full.text  # the landlord, in full
    assert "卫*" in full.text and "卫十三" not in full.text and id_number(48) not in full.text
    with registry.db.session() as session:
        listed = session.execute(select(AuditEvent.fields, AuditEvent.purpose).where(
            AuditEvent.kind == "resident", AuditEvent.action == "list").order_by(
            AuditEvent.seq.desc()).limit(1)).one()
    assert listed.purpose is None and "~masked" in listed.fields
    resident = client.post(arrived.headers["location"].split("?")[0] + "/reveal",
                           data={"csrf_token": csrf, "purpose": "走访 2026-118"})
    assert "卫十三" in resident.text and id_number(48) in resident.text


def test_a_password_reset_for_an_unknown_user_is_said_on_the_admin_page(registry, client):
    csrf = signed_in(registry, client, "admin", COUNTY)
    missing = client.post("/web/admin/users/nobody-here/password", data={
        "csrf_token": csrf, "password": "a-long-new-password"})
    assert missing.status_code == 404 and "密钥状态" in missing.text  # the admin page
    assert re.search(r'role="alert">nobody-here：未找到', missing.text), missing.text


def test_a_rental_the_gate_does_not_know_is_said_next_to_the_picker(registry, client):
    import uuid

    theirs = _rental(registry, COMMUNITY_B, "南街九十九号院8号楼809", 49)
    mine = _rental(registry, COMMUNITY_A, "西街十二号院3号楼106", 50)
    csrf = signed_in(registry, client, "police", COMMUNITY_A)
    arrival = {"csrf_token": csrf, "name": "蒋十四", "id_number": id_number(51),
               "reason": "work", "arrived_on": "2026-06-01"}
    said = []
    for rental in (theirs, str(uuid.uuid4())):  # outside my area; none at all
        refused = client.post("/web/residents/new", data={**arrival, "rental_id": rental})
        assert refused.status_code == 422 and "蒋十四" in refused.text
        said.append(re.search(r'id="f-rental_id-err"[^>]*>([^<]*)<', refused.text)[1])
        assert "南街" not in refused.text
    assert said[0] == said[1] == "未找到出租房屋"
    arrived = client.post("/web/residents/new", data={**arrival, "rental_id": mine},
                          follow_redirects=False)
    resident_path = arrived.headers["location"].split("?")[0]
    for rental in (theirs, str(uuid.uuid4())):
        moved = client.post(resident_path + "/move", data={
            "csrf_token": csrf, "move.rental_id": rental, "move.moved_on": "2026-06-10"})
        assert moved.status_code == 422
        assert re.search(r'id="f-move-rental_id-err"[^>]*>未找到出租房屋<', moved.text)
