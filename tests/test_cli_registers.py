"""The registers from the command line (registry/cli_registers.py), against one on-disk SQLite
registry with the demo county: each workflow end to end as a signed-in user, masking without
--purpose, scope, dry runs, input errors that name fields and echo no values, and the audit
events each command leaves (read straight from the SQLite file)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry import cli_registers
from registry.cli import app
from registry.config import get_settings
from registry.validation import check_character
from registry.vault.runtime import Registry

runner = CliRunner()
cli_registers.mount(app)

PASSWORDS = {
    "police_a": "demo-police-a",
    "police_b": "demo-police-b",
    "coordinator_a": "demo-coordinator-a",
    "corrections": "demo-corrections",
    "justice": "demo-justice",
}
COMMUNITY_A = "330199001001"
GRID_A1 = "330199001001001"
GRID_A2 = "330199001001002"
LOGIN = ("session", "login", "ok")


def day(offset: int) -> str:
    # Today when asked, not when the module was imported: a suite that runs past midnight
    # (UTC) must not compare yesterday with the registry's today.
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


def id_number(seed: int, birth: str = "19900101") -> str:
    first17 = f"330199{birth}{900 + seed % 100:03d}"
    return first17 + check_character(first17)


def phone(seed: int) -> str:
    return f"1391234{seed % 10000:04d}"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-registers")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REGISTRY_DATA_DIR", str(path))
        env.setenv("REGISTRY_ENVIRONMENT", "test")
        env.setenv("REGISTRY_ARGON2_TIME_COST", "1")
        env.setenv("REGISTRY_ARGON2_MEMORY_KIB", "64")
        env.setenv("REGISTRY_TIMEZONE", "UTC")  # the offices' "today" is day(0) below
        for name in ("REGISTRY_DATABASE_URL", "REGISTRY_KEY_FILE", "REGISTRY_PASSWORD"):
            env.delenv(name, raising=False)
        get_settings.cache_clear()
        result = runner.invoke(app, ["init", "--demo", "--scale", "0.02"])
        assert result.exit_code == 0, result.output
        yield path
    get_settings.cache_clear()


# --- helpers ---------------------------------------------------------------------------------


def cli(user: str, register: str, *args: str, input: str | None = None,
        env: dict[str, str | None] | None = None):
    get_settings.cache_clear()
    try:
        return runner.invoke(app, [register, "--as", user, *args], input=input,
                             env={"REGISTRY_PASSWORD": PASSWORDS.get(user, "x"), **(env or {})})
    finally:
        get_settings.cache_clear()


def head(home: Path) -> int:
    with closing(sqlite3.connect(home / "registry.sqlite3")) as conn:
        return conn.execute("select coalesce(max(seq), 0) from audit_event").fetchone()[0]


def events_after(home: Path, seq: int) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(home / "registry.sqlite3")) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(
            "select kind, action, outcome, actor, purpose, request_id, record_id, fields "
            "from audit_event where seq > ? order by seq", (seq,)).fetchall()


def audited(home: Path, user: str, register: str, *args: str, **kwargs):
    """Run a command; return its result and the (kind, action, outcome) of the audit events
    it left."""
    start = head(home)
    result = cli(user, register, *args, **kwargs)
    return result, [(e["kind"], e["action"], e["outcome"]) for e in events_after(home, start)]


def ok(home: Path, user: str, register: str, *args: str, expect: tuple[str, str], **kwargs):
    """Run a command that must succeed with one sign-in and exactly one event of ``expect``
    (kind, action); return the parsed JSON answer."""
    result, events = audited(home, user, register, *args, **kwargs)
    assert result.exit_code == 0, result.output
    assert events == [LOGIN, (*expect, "ok")]
    return json.loads(result.stdout)


def write(home: Path, name: str, body: dict | str) -> str:
    path = home / f"{name}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body, ensure_ascii=False),
                    encoding="utf-8")
    return str(path)


def rental_body(seed: int, **overrides) -> dict:
    body = {
        "jurisdiction_code": GRID_A1,
        "address": f"东门路{seed}号{seed % 7 + 1}幢{100 + seed}室",
        "units": 2,
        "registered_on": day(-30),
        "landlord": {"name": "赵一明", "id_number": id_number(seed), "phone": phone(seed)},
        "pledge": {"signed_on": day(-29), "valid_until": day(335)},
    }
    body.update(overrides)
    return body


def make_rental(home: Path, seed: int) -> str:
    rental = ok(home, "police_a", "rentals", "register", write(home, "rental",
                rental_body(seed)), expect=("rental", "create"))
    return rental["id"]


def assert_dry_run(home: Path, user: str, register: str, *args: str) -> None:
    result, events = audited(home, user, register, *args)
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout and "--yes" in result.stdout
    assert events == []  # not even a sign-in


# --- the workflows ---------------------------------------------------------------------------


def test_mount_is_idempotent():
    cli_registers.mount(app)
    cli_registers.mount(app)
    names = [info.name for info in app.registered_groups]
    for name in ("rentals", "residents", "corrections", "releases"):
        assert names.count(name) == 1


def test_rentals_workflow(home):
    body = rental_body(11)
    file = write(home, "rental", body)
    start = head(home)
    result = cli("police_a", "rentals", "register", file, "--purpose", "核查 2026-001")
    assert result.exit_code == 0, result.output
    assert "东门路11号" in result.stdout  # UTF-8, not \u escapes
    rental = json.loads(result.stdout)
    rid = rental["id"]
    events = events_after(home, start)
    assert [(e["kind"], e["action"], e["outcome"]) for e in events] == [
        LOGIN, ("rental", "create", "ok")]
    assert events[1]["purpose"] == "核查 2026-001"
    assert events[0]["request_id"] == events[1]["request_id"]
    assert events[1]["record_id"] == rid

    masked = ok(home, "police_a", "rentals", "show", rid, expect=("rental", "read"))
    assert masked["landlord"]["name"] == "赵*"
    assert masked["landlord"]["id_number"] != body["landlord"]["id_number"]
    assert body["landlord"]["id_number"] not in json.dumps(masked)
    assert {"name", "id_number", "phone", "address"} <= set(masked["masked"])

    clear = ok(home, "police_a", "rentals", "show", rid, "--purpose", "案件 A-1",
               expect=("rental", "read"))
    assert clear["landlord"]["name"] == "赵一明"
    assert clear["landlord"]["id_number"] == body["landlord"]["id_number"]
    assert clear["masked"] == []

    page = ok(home, "police_a", "rentals", "list", "--jurisdiction", GRID_A1, "--status",
              "active", "--pledge-state", "valid", "--page-size", "500",
              expect=("rental", "list"))
    assert rid in [item["id"] for item in page["items"]]
    assert all(item["jurisdiction_code"] == GRID_A1 for item in page["items"])

    found = ok(home, "police_a", "rentals", "find", "--id-number",
               body["landlord"]["id_number"], expect=("rental", "search"))
    assert [item["id"] for item in found] == [rid]

    amended = ok(home, "police_a", "rentals", "amend", rid, write(home, "amend", {"units": 3}),
                 expect=("rental", "update"))
    assert amended["units"] == 3

    pledged = ok(home, "police_a", "rentals", "pledge", rid, "--signed-on", day(-1),
                 "--valid-until", day(364), "--signed-by", "赵二明", expect=("rental", "pledge"))
    assert pledged["pledge"]["signed_on"] == day(-1)
    assert pledged["pledge_state"] == "valid"

    assert_dry_run(home, "police_a", "rentals", "deregister", rid)
    still = ok(home, "police_a", "rentals", "show", rid, expect=("rental", "read"))
    assert still["status"] == "active"
    gone = ok(home, "police_a", "rentals", "deregister", rid, "--on", day(0), "--yes",
              expect=("rental", "deregister"))
    assert gone["status"] == "deregistered"
    assert gone["deregistered_on"] == day(0)


def test_another_community_cannot_see_the_rental(home):
    rid = make_rental(home, 12)
    result, events = audited(home, "police_b", "rentals", "show", rid, "--purpose", "x")
    assert result.exit_code == 2
    assert "not found" in result.stderr
    assert "Traceback" not in result.output
    assert events == [LOGIN, ("rental", "read", "denied")]


def test_coordinator_sees_basic_fields_only_even_with_a_purpose(home):
    rid = make_rental(home, 13)
    rental = ok(home, "coordinator_a", "rentals", "show", rid, "--purpose", "走访",
                expect=("rental", "read"))
    assert rental["address"].startswith("东门路13号")
    assert rental["landlord"]["name"] == "赵*"
    result, events = audited(home, "coordinator_a", "rentals", "find", "--phone", phone(13))
    assert result.exit_code == 2
    assert "may not search" in result.stderr
    assert events == [LOGIN, ("rental", "search", "denied")]


def test_residents_workflow(home):
    rid = make_rental(home, 21)
    arrival = {
        "name": "钱小红", "id_number": id_number(22, "19950505"), "reason": "work",
        "arrived_on": day(-10), "registered_on": day(-9), "rental_id": rid,
        "phone": phone(22), "occupation": "快递员", "hukou_address": "安徽省合肥市某路1号",
    }
    resident = ok(home, "police_a", "residents", "arrive", write(home, "arrival", arrival),
                  expect=("resident", "create"))
    res_id, person_id = resident["id"], resident["person"]["id"]
    assert resident["jurisdiction_code"] == GRID_A1

    masked = ok(home, "police_a", "residents", "show", res_id, expect=("resident", "read"))
    assert masked["person"]["name"] == "钱*"
    assert arrival["id_number"] not in json.dumps(masked)

    page = ok(home, "police_a", "residents", "list", "--person-id", person_id, "--present-on",
              day(0), "--on-time", "--jurisdiction", COMMUNITY_A, expect=("resident", "list"))
    assert [item["id"] for item in page["items"]] == [res_id]

    found = ok(home, "police_a", "residents", "find", "--phone", phone(22), "--purpose", "核查",
               expect=("resident", "search"))
    assert res_id in [item["id"] for item in found]
    assert found[0]["person"]["name"] == "钱小红"

    there = ok(home, "police_a", "residents", "at-rental", rid, expect=("resident", "list"))
    assert [item["id"] for item in there] == [res_id]

    amended = ok(home, "police_a", "residents", "amend", res_id,
                 write(home, "facts", {"workplace": "示例物流公司"}), "--purpose", "更新",
                 expect=("resident", "update"))
    assert amended["workplace"] == "示例物流公司"

    moved = ok(home, "police_a", "residents", "move", res_id, write(home, "move", {
        "moved_on": day(-2), "jurisdiction_code": GRID_A2, "address": "东门路99号3幢101室"}),
        expect=("resident", "move"))
    new_id = moved["id"]
    assert new_id != res_id
    assert moved["jurisdiction_code"] == GRID_A2

    assert_dry_run(home, "police_a", "residents", "move-out", new_id, "--on", day(0))
    left = ok(home, "police_a", "residents", "move-out", new_id, "--on", day(0), "--yes",
              expect=("resident", "move-out"))
    assert left["left_on"] == day(0)


def test_corrections_workflow(home):
    case_body = {
        "name": "孙大伟", "id_number": id_number(31, "19880808"), "jurisdiction_code": GRID_A1,
        "category": "probation", "deciding_body": "清河县人民法院",
        "judgment_ref": "(2026)清刑初999号", "effective_on": day(-20),
        "supervision_start": day(-20), "supervision_end": day(345), "officer": "corrections",
        "phone": phone(31),
    }
    case = ok(home, "corrections", "corrections", "open", write(home, "case", case_body),
              expect=("corrections", "create"))
    cid = case["id"]
    assert case["status"] == "awaiting_report"
    assert case["person"]["name"] == "孙*"

    reported = ok(home, "corrections", "corrections", "report", cid, "--on", day(-15),
                  expect=("corrections", "report"))
    assert reported["status"] == "active"

    checked = ok(home, "corrections", "corrections", "check-in", cid, "--method", "phone",
                 expect=("corrections", "check_in"))
    assert checked["check_ins"][0]["method"] == "phone"

    sanctioned = ok(home, "corrections", "corrections", "sanction", cid, write(home, "sanction", {
        "kind": "admonition", "decided_on": day(-1), "reason": "未按规定时间报告"}),
        "--purpose", "矫正 2026-7", expect=("corrections", "sanction"))
    assert [s["kind"] for s in sanctioned["sanctions"]] == ["admonition"]
    assert sanctioned["sanctions"][0]["reason"] == "未按规定时间报告"

    amended = ok(home, "corrections", "corrections", "amend", cid,
                 write(home, "case-update", {"check_in_interval_days": 14}),
                 expect=("corrections", "update"))
    assert amended["check_in_interval_days"] == 14

    board = ok(home, "corrections", "corrections", "board", "--mine",
               expect=("corrections", "board"))
    assert board["as_of"] == day(0)

    page = ok(home, "corrections", "corrections", "list", "--status", "active",
              "--category", "probation", "--page-size", "500", expect=("corrections", "list"))
    assert cid in [item["id"] for item in page["items"]]

    shown = ok(home, "corrections", "corrections", "show", cid, expect=("corrections", "read"))
    assert shown["person"]["name"] == "孙*"
    # The police never learn that someone is under supervision: not found, and audited.
    result, events = audited(home, "police_a", "corrections", "show", cid, "--purpose", "x")
    assert result.exit_code == 2
    assert "not found" in result.stderr
    assert events == [LOGIN, ("corrections", "read", "denied")]

    # Absconding is not destructive: no --yes needed.
    absconded = ok(home, "corrections", "corrections", "status", cid, "--to", "absconded",
                   "--on", day(0), expect=("corrections", "status"))
    assert absconded["status"] == "absconded"

    assert_dry_run(home, "corrections", "corrections", "status", cid, "--to", "ended",
                   "--on", day(0), "--reason", "矫正期满")
    ended = ok(home, "corrections", "corrections", "status", cid, "--to", "ended", "--on",
               day(0), "--reason", "矫正期满", "--yes", expect=("corrections", "status"))
    assert ended["status"] == "ended"
    assert ended["ended_on"] == day(0)


def test_releases_workflow(home):
    release_body = {
        "name": "李建国", "id_number": id_number(41, "19791111"), "jurisdiction_code": GRID_A1,
        "source": "prison", "released_on": day(-60), "releasing_institution": "省第一监狱",
        "notice_received_on": day(-90), "phone": phone(41),
    }
    case = ok(home, "justice", "releases", "register", write(home, "release", release_body),
              expect=("release", "create"))
    cid = case["id"]
    assert case["open"] is True
    assert case["person"]["name"] == "李*"

    clear = ok(home, "justice", "releases", "show", cid, "--purpose", "帮教 2026-3",
               expect=("release", "read"))
    assert clear["person"]["name"] == "李建国"

    page = ok(home, "justice", "releases", "list", "--open", "--needs-action",
              "--jurisdiction", GRID_A1, "--page-size", "500", expect=("release", "list"))
    assert cid in [item["id"] for item in page["items"]]

    amended = ok(home, "justice", "releases", "amend", cid, write(home, "release-update", {
        "measures_in_place": True, "aftercare_group": "司法所、社区、家属"}),
        expect=("release", "update"))
    assert amended["measures_in_place"] is True

    placed = ok(home, "justice", "releases", "place", cid, "--status", "placed", "--kind",
                "employment", "--on", day(-30), expect=("release", "placement"))
    assert placed["placement_status"] == "placed"
    assert placed["placement_kind"] == "employment"

    assisted = ok(home, "justice", "releases", "assist", cid, "--kind", "visit", "--on",
                  day(-1), "--notes", "走访了解近况", "--purpose", "帮教",
                  expect=("release", "assist"))
    assert assisted["assistance"][0]["notes"] == "走访了解近况"

    assert_dry_run(home, "justice", "releases", "close", cid, "--on", day(0), "--reason",
                   "moved_away")
    closed = ok(home, "justice", "releases", "close", cid, "--on", day(0), "--reason",
                "moved_away", "--yes", expect=("release", "close"))
    assert closed["open"] is False
    assert closed["close_reason"] == "moved_away"


# --- input and sign-in -----------------------------------------------------------------------


def test_body_from_stdin_and_password_from_stdin(home):
    body = json.dumps(rental_body(14), ensure_ascii=False)
    rental = ok(home, "police_a", "rentals", "register", "-", input=body,
                expect=("rental", "create"))
    result, events = audited(home, "police_a", "rentals", "show", rental["id"],
                             input="demo-police-a\n", env={"REGISTRY_PASSWORD": None})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == rental["id"]
    assert events == [LOGIN, ("rental", "read", "ok")]
    # Both from standard input: refused before anything is read or written.
    result, events = audited(home, "police_a", "rentals", "register", "-", input=body,
                             env={"REGISTRY_PASSWORD": None})
    assert result.exit_code == 2
    assert "REGISTRY_PASSWORD" in result.stderr
    assert events == []


def test_malformed_json_is_refused_before_sign_in(home):
    file = write(home, "broken", '{"jurisdiction_code": "330199001001001", "address": ')
    result, events = audited(home, "police_a", "rentals", "register", file)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "Invalid JSON" in result.stderr
    assert "330199001001001" not in result.output
    assert events == []


def test_bad_fields_are_named_and_their_values_never_echoed(home):
    secret_id, secret_belief = "SECRET-ID-0001", "某宗教信仰"
    body = rental_body(15, units=0, religion=secret_belief)
    body["landlord"]["id_number"] = secret_id
    result, events = audited(home, "police_a", "rentals", "register", write(home, "bad", body))
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    for field in ("units", "landlord.id_number", "religion"):
        assert f"  {field}:" in result.stderr
    assert secret_id not in result.output
    assert secret_belief not in result.output
    assert events == []


def test_a_rule_broken_in_the_service_names_the_field_and_saves_nothing(home):
    bad = id_number(16)[:-1] + ("0" if id_number(16)[-1] != "0" else "1")  # wrong check char
    body = rental_body(16)
    body["landlord"]["id_number"] = bad
    result, events = audited(home, "police_a", "rentals", "register", write(home, "bad", body))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: landlord.id_number: ")
    assert " / " in result.stderr  # English / Chinese
    assert bad not in result.output
    assert events == [LOGIN]  # the write rolled back with nothing to audit


def test_option_errors_name_the_option(home):
    result = cli("police_a", "rentals", "find", "--phone", phone(1), "--id-number",
                 id_number(1))
    assert result.exit_code == 2
    assert "exactly one of --id-number and --phone" in result.stderr
    result = cli("police_a", "rentals", "find", "--id-number", "12345")
    assert result.exit_code == 2
    assert "--id-number:" in result.stderr and "12345" not in result.stderr
    result = cli("police_a", "rentals", "list", "--jurisdiction", "33")
    assert result.exit_code == 2


def test_wrong_password_is_a_clear_error(home):
    result, events = audited(home, "police_a", "rentals", "list",
                             env={"REGISTRY_PASSWORD": "not-the-password"})
    assert result.exit_code == 2
    assert "sign-in failed: wrong username or password" in result.stderr
    assert "Traceback" not in result.output
    assert events == [("session", "login", "denied")]


def test_as_is_required(home):
    get_settings.cache_clear()
    result = runner.invoke(app, ["rentals", "list"], env={"REGISTRY_PASSWORD": "x"})
    assert result.exit_code == 2
    assert "--as" in result.stderr
    help_text = runner.invoke(app, ["rentals", "show", "--help"])
    assert help_text.exit_code == 0
    assert "--purpose" in help_text.output


def test_a_purpose_must_be_printable(home):
    result, events = audited(home, "police_a", "rentals", "list", "--purpose", "a\x07b")
    assert result.exit_code == 2
    assert "--purpose" in result.stderr
    assert events == []


def test_a_reset_password_must_be_changed_before_the_cli_signs_in(home):
    """After the operator's ``users reset-password`` the command-line sign-in is refused, with a
    clear message and one audited ``change-required``; once the user has chosen their own
    password (POST /auth/password, here through the same Authenticator) it works again."""
    name = f"officer-{uuid.uuid4().hex[:6]}"
    get_settings.cache_clear()
    added = runner.invoke(app, ["users", "add", name, "--role", "police", "--jurisdiction",
                                COMMUNITY_A], input="operator-chosen-1\n")
    assert added.exit_code == 0, added.output
    # Added by the operator: usable at once.
    result, events = audited(home, name, "rentals", "list",
                             env={"REGISTRY_PASSWORD": "operator-chosen-1"})
    assert result.exit_code == 0, result.output
    assert events[0] == LOGIN

    get_settings.cache_clear()
    reset = runner.invoke(app, ["users", "reset-password", name], input="operator-chosen-2\n")
    assert reset.exit_code == 0, reset.output
    assert "must choose a new one" in reset.output
    result, events = audited(home, name, "rentals", "list",
                             env={"REGISTRY_PASSWORD": "operator-chosen-2"})
    assert result.exit_code == 2
    assert "sign-in failed: choose a new password first" in result.stderr
    assert "Traceback" not in result.output
    assert "operator-chosen-2" not in result.output
    assert events == [("session", "login", "change-required")]

    get_settings.cache_clear()
    Registry(get_settings()).auth.change_password(name, "operator-chosen-2", "my-own-choice-1")
    result, events = audited(home, name, "rentals", "list",
                             env={"REGISTRY_PASSWORD": "operator-chosen-2"})
    assert result.exit_code == 2
    assert events == [("session", "login", "denied")]
    result, events = audited(home, name, "rentals", "list",
                             env={"REGISTRY_PASSWORD": "my-own-choice-1"})
    assert result.exit_code == 0, result.output
    assert events[0] == LOGIN
    changes = [e for e in events_after(home, 0)
               if e["action"] == "password-change" and e["actor"] == name]
    assert [e["outcome"] for e in changes] == ["ok"]
