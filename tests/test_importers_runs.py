"""Running imports end to end (importers/run.py, registry/vault/bulk.py, the CLI and the upload
endpoint): idempotent re-runs, matching against the registry, a SIGKILL mid-import and its
re-run, the modes (dry run, all-or-nothing, a fatal error mid-file), the CLI's output and exit
codes, the upload endpoint's limits and answers, and bad input. Files are generated into
tmp_path; the database tests run on SQLite and PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from importers.columns import REQUIRED, Kind
from importers.reading import open_ledger
from importers.run import REJECTS_COLUMNS, Options, run_import
from registry.api import create_app
from registry.cli import app as cli_app
from registry.clock import Clock
from registry.config import get_settings
from registry.models import AuditEvent, DataKey, Person, Pledge, RentalProperty, Residency
from registry.security.keys import Keyring
from registry.validation import check_character
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    COMMUNITY_B,
    FIXED_NOW,
    GRID_A1,
    GRID_B1,
    PASSWORD,
    REGISTRY_BIN,
    TREE,
    id_number,
    make_user,
    rental_body,
)
from tests.conftest import test_settings as settings_with

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

RESIDENT_HEADER = ["姓名", "身份证号", "社区代码", "现住址", "来本地日期", "居住事由"]
RENTAL_HEADER = ["社区代码", "房屋地址", "出租户数", "房东姓名", "房东身份证号", "房东电话",
                 "出租状态", "登记日期", "保证书签订日期", "保证书有效期至"]
BAD_ID = "33019919850312001X"  # a wrong check character
TABLES = {"person": Person, "residency": Residency, "data_key": DataKey,
          "rental_property": RentalProperty, "pledge": Pledge}


# --- files -----------------------------------------------------------------------------------


def resident_row(seed: int, *, name: str | None = None, code: str = GRID_A1,
                 arrived: str = "2026-06-01", number: str | None = None) -> list[str]:
    return [name or f"测试{seed}", number or id_number(seed), code, f"东门路{seed}号",
            arrived, "务工"]


def rental_row(seed: int) -> list[str]:
    return [GRID_A1, f"东门路{seed}号{seed % 7 + 1}幢{100 + seed}室", "2", "王一明",
            id_number(500 + seed), f"1380013{seed:04d}", "在租", "2026-03-01", "2026-03-02",
            "2027-03-01"]


LEDGERS = {
    "residents": lambda n: [RESIDENT_HEADER, *(resident_row(100 + i) for i in range(n))],
    "rentals": lambda n: [RENTAL_HEADER, *(rental_row(i) for i in range(n))],
}


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def csv_bytes(rows: list[list[str]]) -> bytes:
    lines = [",".join(row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the database ----------------------------------------------------------------------------


def table_counts(registry: Registry) -> dict[str, int]:
    with registry.db.session() as session:
        return {name: session.scalar(select(func.count()).select_from(model))
                for name, model in TABLES.items()}


def head(registry: Registry) -> int:
    with registry.db.session() as session:
        return session.scalar(select(func.coalesce(func.max(AuditEvent.seq), 0)))


@dataclass(frozen=True)
class Event:
    kind: str
    action: str
    outcome: str
    detail: str
    refs: str
    jurisdiction_code: str | None


def events_after(registry: Registry, seq: int, action: str | None = "import") -> list[Event]:
    with registry.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return [Event(e.kind, e.action, e.outcome, e.detail, e.refs, e.jurisdiction_code)
                for e in session.scalars(query)]


def detail(event) -> dict[str, str]:
    """An import event's detail (``file=…;sha256=…;mode=…;batch=…;rows=a-b;imported=…``)."""
    text_ = event.detail if hasattr(event, "detail") else event["detail"]
    parts = text_.split(";")
    out = dict(p.split("=", 1) for p in parts if "=" in p)
    out.update((p, "") for p in parts if "=" not in p)
    return out


def refs(event) -> set[str]:
    return {r for r in event.refs.split(",") if r}


def ids(registry: Registry, column) -> set[str]:
    with registry.db.session() as session:
        return {str(v) for v in session.scalars(select(column))}


def police(registry, client=None, scope: str = COMMUNITY_A):
    return make_user(registry, client, "police", scope)


def read_rejects(path: str | Path) -> list[list[str]]:
    with Path(path).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


# --- 1. idempotent re-runs -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["residents", "rentals"])
def test_a_second_run_finds_every_row_unchanged(registry, tmp_path, kind):
    user = police(registry)
    path = write_csv(tmp_path / f"{kind}.csv", LEDGERS[kind](6))
    first = run_import(registry, user.actor, kind, path, Options(batch_rows=4))
    assert (first.read, first.imported, first.unchanged, first.rejected) == (6, 6, 0, 0)
    assert first.error is None and first.committed and first.batches == 2
    before, seq = table_counts(registry), head(registry)

    second = run_import(registry, user.actor, kind, path, Options(batch_rows=4))
    assert (second.read, second.imported, second.updated, second.unchanged,
            second.rejected) == (6, 0, 0, 6, 0)
    assert second.error is None and second.rejects_file is None
    assert table_counts(registry) == before  # no person, residency, rental or key row more

    events = events_after(registry, seq)
    assert [e.kind for e in events] == [kind[:-1]] * 2
    assert [e.outcome for e in events] == ["ok", "ok"]
    details = [detail(e) for e in events]
    for d in details:
        assert d["file"] == path.name
        assert d["sha256"] == sha256(path) == second.sha256
        assert d["mode"] == "batches"
        assert (d["imported"], d["updated"], d["rejected"]) == ("0", "0", "0")
    assert [(d["batch"], d["rows"], d["unchanged"]) for d in details] == [
        ("1", "2-5", "4"), ("2", "6-7", "2")]
    named = set().union(*(refs(e) for e in events))
    records = (ids(registry, Residency.id) if kind == "residents"
               else ids(registry, RentalProperty.id))
    prefix = "resident" if kind == "residents" else "rental"
    assert {f"{prefix}:{i}" for i in records} <= named
    assert {f"person:{i}" for i in ids(registry, Person.id)} <= named
    assert len(records) == 6


RICH_RESIDENT_HEADER = [*RESIDENT_HEADER, "联系电话", "登记日期", "离开日期", "职业", "工作单位",
                        "户籍地址", "居住证号", "居住证签发日期", "签注日期", "性别", "出生日期"]


def rich_files(tmp_path: Path) -> dict[str, Path]:
    """Ledgers as offices type them: every optional column, spelt every which way."""
    residents = [RICH_RESIDENT_HEADER]
    for i, (phone, registered, left, arrived) in enumerate([
            ("+86 138 0013 8000", "2026/6/3", "", "2026年6月1日"),
            ("13800138001.0", "20260602", "2026-06-10", "2026.6.1"),
            ("", "", "", "２０２６-０６-０１"),
            ("138-0013-8003", "2026-06-02 00:00:00", "", "46174")]):
        seed = 900 + i
        number = id_number(seed)
        residents.append([f"测试{seed}", number.lower(), GRID_A1, f"东门路{seed}号", arrived,
                          ["务工", "经商", "", "work"][i], phone, registered, left,
                          ["厨师", "", "司机", ""][i], ["某餐馆", "", "", "某厂"][i],
                          ["浙江省某县", "", "", ""][i], ["JZ001", "", "", "JZ004"][i],
                          ["2026-06-05", "", "", "2026-06-05"][i], ["", "", "", "2026-06-06"][i],
                          ["女", "", "", ""][i], ["1985-03-12", "", "", ""][i]])
    rentals = [RENTAL_HEADER]
    for i, (status, pledge, phone) in enumerate([
            ("在租", True, "+86 13800138000"), ("空置", False, ""), ("注销", True, "13800138002"),
            ("", False, "13800138003.0")]):
        signed, until = ("2026/3/2", "2027年3月1日") if pledge else ("", "")
        rentals.append([GRID_A1, f"西门路{i}号", str(i + 1), "王一明", id_number(950 + i), phone,
                        status, ["2026-03-01", "", "2026/3/1", "20260301"][i], signed, until])
    return {"residents": write_csv(tmp_path / "rich-residents.csv", residents),
            "rentals": write_csv(tmp_path / "rich-rentals.csv", rentals)}


@pytest.mark.parametrize("kind", ["residents", "rentals"])
def test_every_optional_column_survives_a_re_run_unchanged(registry, tmp_path, kind):
    user = police(registry)
    path = rich_files(tmp_path)[kind]
    first = run_import(registry, user.actor, kind, path)
    assert (first.imported, first.rejected, first.error) == (4, 0, None), (
        first.rejects_file and read_rejects(first.rejects_file))
    before = table_counts(registry)
    second = run_import(registry, user.actor, kind, path)
    assert (second.unchanged, second.imported, second.updated, second.rejected) == (4, 0, 0, 0), (
        second.rejects_file and read_rejects(second.rejects_file))
    assert table_counts(registry) == before


def test_a_longer_file_after_a_shorter_one_only_adds_the_rest(registry, tmp_path):
    """A file run again with more rows: what landed is unchanged, the rest imported."""
    user = police(registry)
    rows = LEDGERS["residents"](8)
    run_import(registry, user.actor, "residents", write_csv(tmp_path / "a.csv", rows[:4]))
    summary = run_import(registry, user.actor, "residents", write_csv(tmp_path / "b.csv", rows),
                         Options(batch_rows=3))
    assert (summary.imported, summary.unchanged, summary.rejected) == (5, 3, 0)
    assert table_counts(registry)["residency"] == 8
    assert table_counts(registry)["person"] == 8


# --- 2. matching against the registry --------------------------------------------------------


def arrival_body(seed: int, name: str, **overrides) -> dict:
    body = {"name": name, "id_number": id_number(seed), "jurisdiction_code": GRID_A1,
            "address": f"东门路{seed}号", "arrived_on": "2026-06-01", "reason": "work"}
    body.update(overrides)
    return body


def test_a_registered_person_is_matched_not_duplicated(registry, client, tmp_path):
    user = police(registry, client)
    resident = client.post("/residents", headers=user.headers, json=arrival_body(201, "李四"))
    assert resident.status_code == 201, resident.text
    rental = client.post("/rentals", headers=user.headers, json=rental_body(202))
    assert rental.status_code == 201, rental.text
    landlord = uuid.UUID(rental.json()["landlord"]["id"])
    before = table_counts(registry)
    assert before["person"] == 2

    path = write_csv(tmp_path / "r.csv", [
        RESIDENT_HEADER,
        resident_row(201, name="李四"),  # the same arrival as registered
        resident_row(202, name=rental_body(202)["landlord"]["name"]),  # the landlord moves in
        resident_row(203, name="新人"),
    ])
    summary = run_import(registry, user.actor, "residents", path)
    assert (summary.imported, summary.unchanged, summary.rejected) == (2, 1, 0)
    after = table_counts(registry)
    assert after["person"] == before["person"] + 1  # only the new person
    assert after["residency"] == before["residency"] + 2
    with registry.db.session() as session:
        homes = session.scalars(select(Residency.id).where(
            Residency.person_id == landlord)).all()
    assert len(homes) == 1
    again = run_import(registry, user.actor, "residents", path)
    assert (again.imported, again.unchanged) == (0, 3)
    assert table_counts(registry) == after


def test_an_id_number_under_another_name_is_rejected(registry, client, tmp_path):
    user = police(registry, client)
    response = client.post("/residents", headers=user.headers, json=arrival_body(211, "李四"))
    assert response.status_code == 201, response.text
    before = table_counts(registry)
    path = write_csv(tmp_path / "r.csv", [RESIDENT_HEADER, resident_row(211, name="张三"),
                                          resident_row(212)])
    summary = run_import(registry, user.actor, "residents", path)
    assert (summary.imported, summary.rejected) == (1, 1)
    assert table_counts(registry)["person"] == before["person"] + 1
    rejects = read_rejects(summary.rejects_file)
    assert rejects[0][:4] == list(REJECTS_COLUMNS)
    assert [r[:2] for r in rejects[1:]] == [["2", "id_number"]]
    assert "different name" in rejects[1][3]
    assert "张三" in rejects[1]  # the row's cells follow, to fix and import again


def test_another_name_outside_the_callers_area_is_the_same_person(registry, client, tmp_path):
    """Names are compared in the caller's area only; the person (one per ID number) is still
    matched, never duplicated."""
    other = police(registry, client, scope=COMMUNITY_B)
    response = client.post("/residents", headers=other.headers,
                           json=arrival_body(215, "李四", jurisdiction_code=GRID_B1))
    assert response.status_code == 201, response.text
    before = table_counts(registry)
    user = police(registry)
    path = write_csv(tmp_path / "r.csv", [RESIDENT_HEADER, resident_row(215, name="张三")])
    summary = run_import(registry, user.actor, "residents", path)
    assert (summary.imported, summary.rejected) == (1, 0)
    after = table_counts(registry)
    assert after["person"] == before["person"]
    assert after["residency"] == before["residency"] + 1


def test_the_same_person_twice_in_one_file_is_rejected_across_batches(registry, tmp_path):
    user = police(registry)
    path = write_csv(tmp_path / "r.csv", [RESIDENT_HEADER, resident_row(221), resident_row(222),
                                          resident_row(221, arrived="2026-06-02")])
    summary = run_import(registry, user.actor, "residents", path, Options(batch_rows=2))
    assert (summary.imported, summary.rejected) == (2, 1)
    assert read_rejects(summary.rejects_file)[1][:2] == ["4", "id_number"]
    assert table_counts(registry)["person"] == 2


def test_a_row_outside_the_callers_area_is_rejected_and_audited(registry, tmp_path):
    user = police(registry)
    seq = head(registry)
    path = write_csv(tmp_path / "r.csv", [RESIDENT_HEADER, resident_row(231, code=GRID_B1),
                                          resident_row(232)])
    summary = run_import(registry, user.actor, "residents", path)
    assert (summary.imported, summary.rejected) == (1, 1)
    assert read_rejects(summary.rejects_file)[1][:2] == ["2", "jurisdiction_code"]
    denied = [e for e in events_after(registry, seq, action=None) if e.outcome == "denied"]
    assert len(denied) == 1 and denied[0].jurisdiction_code == GRID_B1


# --- 3. crash safety -------------------------------------------------------------------------


def big_resident_file(path: Path, rows: int, bad_every: int) -> tuple[Path, int]:
    """``rows`` residents, all different people; every ``bad_every``-th has a bad ID number.
    Returns the path and the number of good rows."""
    good = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RESIDENT_HEADER)
        for i in range(rows):
            if i % bad_every == bad_every - 1:
                number = BAD_ID
            else:
                born = (date(1980, 1, 1) + timedelta(days=i // 900)).strftime("%Y%m%d")
                first17 = f"330199{born}{100 + i % 900:03d}"
                number = first17 + check_character(first17)
                good += 1
            writer.writerow([f"测试{i}", number, GRID_A1, f"东门路{i}号", "2026-01-05", "务工"])
    return path, good


def test_an_import_killed_mid_way_and_run_again(disk):
    assert disk.run("init").returncode == 0
    tree = disk.cwd / "tree.csv"
    write_csv(tree, [["code", "name", "parent_code"],
                     *([code, name, parent or ""] for code, name, parent in TREE)])
    loaded = disk.run("jurisdictions", "load", str(tree))
    assert loaded.returncode == 0, loaded.stderr
    added = disk.run("users", "add", "clerk", "--role", "police", "--jurisdiction",
                     COMMUNITY_A, input=f"{PASSWORD}\n")
    assert added.returncode == 0, added.stderr
    path, good = big_resident_file(disk.cwd / "ledger.csv", 6000, bad_every=499)
    digest = sha256(path)
    command = ("import", "residents", str(path), "--as", "clerk", "--batch-rows", "200")
    landed_sql = ("select count(*) from audit_event where action = 'import' and "
                  "outcome = 'ok'")

    log = (disk.cwd / "killed.log").open("w")
    child = subprocess.Popen([str(REGISTRY_BIN), *command], env=disk.environ(PASSWORD),
                             cwd=disk.cwd, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while disk.scalar(landed_sql) == 0:
            assert child.poll() is None, "the import ended before a batch was seen"
            assert time.monotonic() < deadline, "no batch landed in 60 s"
            time.sleep(0.01)
        assert child.poll() is None, "the import finished before it could be killed"
        os.killpg(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        log.close()

    residencies = disk.scalar("select count(*) from residency")
    persons = disk.scalar("select count(*) from person")
    events = disk.rows("select detail, outcome from audit_event where action = 'import' "
                       "order by seq")
    details = [detail(e) for e in events]
    assert all(e["outcome"] == "ok" for e in events)
    assert all(d["sha256"] == digest and d["mode"] == "batches" for d in details)
    assert [int(d["batch"]) for d in details] == list(range(1, len(details) + 1))
    assert [d["rows"] for d in details] == [f"{2 + 200 * i}-{201 + 200 * i}"
                                           for i in range(len(details))]
    # No partial batch: what is in the tables is exactly what the landed batches say.
    landed = sum(int(d["imported"]) for d in details)
    assert residencies == persons == landed
    assert 0 < landed < good, "killed mid-way"
    assert landed == sum(200 - int(d["rejected"]) for d in details)

    again = disk.run(*command, "--json", password=PASSWORD)
    assert again.returncode == 1, again.stderr  # the bad ID numbers are rejected
    summary = json.loads(again.stdout)
    assert summary["read"] == 6000
    assert summary["unchanged"] == landed
    assert summary["imported"] == good - landed
    assert summary["rejected"] == 6000 - good
    assert summary["error"] is None
    assert disk.scalar("select count(*) from residency") == good
    assert disk.scalar("select count(*) from person") == good
    assert disk.scalar("select count(distinct person_id) from residency") == good
    verified = disk.run("audit", "verify")
    assert verified.returncode == 0, verified.stderr


# --- 4. modes --------------------------------------------------------------------------------


def test_a_dry_run_writes_nothing_but_its_audit_event(registry, tmp_path):
    user = police(registry)
    before, seq = table_counts(registry), head(registry)
    path = write_csv(tmp_path / "r.csv", [*LEDGERS["residents"](3), resident_row(300,
                                                                                 number=BAD_ID)])
    summary = run_import(registry, user.actor, "residents", path,
                         Options(dry_run=True, batch_rows=2))
    assert summary.mode == "dry-run"
    assert (summary.read, summary.imported, summary.rejected) == (4, 3, 1)
    assert not summary.committed
    assert "dry run: nothing was written" in summary.describe()
    assert table_counts(registry) == before
    events = events_after(registry, seq)
    assert len(events) == 1
    d = detail(events[0])
    assert (d["mode"], d["imported"], d["rejected"], events[0].outcome) == (
        "dry-run", "3", "1", "ok")
    assert "total" in d and d["sha256"] == sha256(path)


def test_all_or_nothing_with_a_rejected_row_writes_nothing(registry, tmp_path):
    user = police(registry)
    before, seq = table_counts(registry), head(registry)
    path = write_csv(tmp_path / "r.csv", [*LEDGERS["residents"](4), resident_row(300,
                                                                                 number=BAD_ID)])
    summary = run_import(registry, user.actor, "residents", path,
                         Options(all_or_nothing=True, batch_rows=2))
    assert summary.mode == "all-or-nothing"
    assert (summary.read, summary.rejected) == (5, 1) and not summary.committed
    assert "nothing was written" in summary.describe()
    assert table_counts(registry) == before
    events = events_after(registry, seq)
    assert [e.outcome for e in events] == ["refused"]
    assert detail(events[0])["mode"] == "all-or-nothing"
    assert read_rejects(summary.rejects_file)[1][:2] == ["6", "id_number"]


def test_all_or_nothing_without_rejects_commits_everything(registry, tmp_path):
    user = police(registry)
    path = write_csv(tmp_path / "r.csv", LEDGERS["residents"](5))
    summary = run_import(registry, user.actor, "residents", path,
                         Options(all_or_nothing=True, batch_rows=2))
    assert summary.committed and summary.imported == 5
    assert table_counts(registry)["residency"] == 5


def test_a_second_header_mid_file_keeps_the_batches_before_it(registry, tmp_path):
    user = police(registry)
    seq = head(registry)
    rows = LEDGERS["residents"](5)  # rows 2-6
    other = ["现住址", "姓名", "社区代码", "身份证号", "来本地日期"]  # another column order
    path = write_csv(tmp_path / "r.csv", [*rows, other, resident_row(400)])
    summary = run_import(registry, user.actor, "residents", path, Options(batch_rows=2))
    assert summary.error is not None
    assert summary.error["row"] == 7 and summary.error["field"] == "header"
    assert summary.error["file"] == "r.csv"
    assert summary.committed
    assert table_counts(registry)["residency"] == 4  # rows 2-5; row 6's batch never landed
    events = events_after(registry, seq)
    assert [(e.outcome, detail(e).get("rows")) for e in events] == [
        ("ok", "2-3"), ("ok", "4-5"), ("error", None)]
    assert sum(int(detail(e)["imported"]) for e in events[:2]) == 4


def test_a_fatal_error_under_all_or_nothing_keeps_nothing(registry, tmp_path):
    user = police(registry)
    before = table_counts(registry)
    rows = LEDGERS["residents"](5)
    path = write_csv(tmp_path / "r.csv", [*rows, ["现住址", "姓名", "社区代码", "身份证号"]])
    summary = run_import(registry, user.actor, "residents", path,
                         Options(all_or_nothing=True, batch_rows=2))
    assert summary.error is not None and not summary.committed
    assert table_counts(registry) == before


# --- 5. the CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """An on-disk SQLite registry with the test county and a police account, for
    ``registry import`` run in-process."""
    path = tmp_path_factory.mktemp("cli-import")
    tree = write_csv(path / "tree.csv", [["code", "name", "parent_code"],
                                         *([c, n, p or ""] for c, n, p in TREE)])
    assert cli(path, "init").exit_code == 0
    loaded = cli(path, "jurisdictions", "load", str(tree))
    assert loaded.exit_code == 0, loaded.output
    added = cli(path, "users", "add", "clerk", "--role", "police", "--jurisdiction",
                COMMUNITY_A, input=f"{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    added = cli(path, "users", "add", "reader", "--role", "auditor", "--jurisdiction",
                COMMUNITY_A, input=f"{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    return path


def cli(home: Path, *args: str, input: str | None = None, password: str = PASSWORD):
    env = {"REGISTRY_DATA_DIR": str(home), "REGISTRY_ENVIRONMENT": "test",
           "REGISTRY_ARGON2_TIME_COST": "1", "REGISTRY_ARGON2_MEMORY_KIB": "64",
           "REGISTRY_TIMEZONE": "UTC", "REGISTRY_PASSWORD": password,
           "REGISTRY_DATABASE_URL": None, "REGISTRY_KEY_FILE": None}
    get_settings.cache_clear()
    try:
        return runner.invoke(cli_app, list(args), input=input, env=env)
    finally:
        get_settings.cache_clear()


def import_cli(home: Path, path: Path, *args: str, user: str = "clerk", kind: str = "residents",
               password: str = PASSWORD):
    return cli(home, "import", kind, str(path), "--as", user, *args, password=password)


def cli_rows(first: int, n: int) -> list[list[str]]:
    """Resident rows with ID numbers of their own (the module's registry is shared)."""
    return [resident_row(first + i, arrived="2026-01-05",
                         number=_cli_id(first + i)) for i in range(n)]


def _cli_id(seed: int) -> str:
    first17 = f"33019919700101{seed % 1000:03d}"
    return first17 + check_character(first17)


def test_cli_prints_the_summary_and_exits_0(home, tmp_path):
    path = write_csv(tmp_path / "ok.csv", [RESIDENT_HEADER, *cli_rows(1, 3)])
    result = import_cli(home, path)
    assert result.exit_code == 0, result.output
    assert "ok.csv: read 3, imported 3, updated 0, unchanged 0, rejected 0" in result.stdout
    assert "读取3行，新增3，更新0，未变0，拒绝0" in result.stdout
    assert "3 rows" in result.stderr  # progress goes to standard error
    assert not (tmp_path / "ok.rejects.csv").exists()
    again = import_cli(home, path)
    assert again.exit_code == 0 and "unchanged 3" in again.stdout


def test_cli_some_rejected_exits_1_with_a_private_rejects_file(home, tmp_path):
    path = write_csv(tmp_path / "some.csv", [RESIDENT_HEADER, *cli_rows(11, 2),
                                             resident_row(13, number=BAD_ID)])
    result = import_cli(home, path)
    assert result.exit_code == 1, result.output
    rejects = tmp_path / "some.rejects.csv"
    assert str(rejects) in result.stdout
    assert "imported 2" in result.stdout and "rejected 1" in result.stdout
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    assert rejects.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = read_rejects(rejects)
    assert rows[1][:2] == ["4", "id_number"] and BAD_ID in rows[1]
    assert rows[0][4:] == RESIDENT_HEADER


def test_cli_rejects_option_and_existing_file_permissions(home, tmp_path):
    path = write_csv(tmp_path / "perm.csv", [RESIDENT_HEADER, resident_row(21, number=BAD_ID)])
    target = tmp_path / "out" / "bad-rows.csv"
    target.parent.mkdir()
    result = import_cli(home, path, "--rejects", str(target))
    assert result.exit_code == 1, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not (tmp_path / "perm.rejects.csv").exists()


def test_cli_rejects_file_is_private_even_if_it_existed(home, tmp_path):
    path = write_csv(tmp_path / "old.csv", [RESIDENT_HEADER, resident_row(22, number=BAD_ID)])
    stale = tmp_path / "old.rejects.csv"
    stale.write_text("stale")
    stale.chmod(0o644)
    result = import_cli(home, path)
    assert result.exit_code == 1, result.output
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600


def test_cli_fatal_error_exits_2(home, tmp_path):
    path = write_csv(tmp_path / "dup.csv", [[*RESIDENT_HEADER, "身份证号码"],
                                            [*cli_rows(31, 1)[0], "x"]])
    result = import_cli(home, path)
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr and "same field" in result.stderr
    assert "nothing was written (未写入任何数据)" in result.stdout


def test_cli_json_is_parseable(home, tmp_path):
    path = write_csv(tmp_path / "j.csv", [RESIDENT_HEADER, *cli_rows(41, 2)])
    result = import_cli(home, path, "--json", "--dry-run")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["kind"] == "residents" and summary["mode"] == "dry-run"
    assert (summary["read"], summary["imported"], summary["committed"]) == (2, 2, False)
    assert summary["sha256"] == sha256(path)


def test_cli_usage_errors(home, tmp_path):
    path = write_csv(tmp_path / "u.csv", [RESIDENT_HEADER, *cli_rows(51, 1)])
    unknown = cli(home, "import", "pets", str(path), "--as", "clerk")
    assert unknown.exit_code == 2 and "No such command" in unknown.output
    missing = import_cli(home, tmp_path / "nope.csv")
    assert missing.exit_code == 2
    assert "file not found" in missing.stderr and "Traceback" not in missing.output
    both = import_cli(home, path, "--dry-run", "--all-or-nothing")
    assert both.exit_code == 2 and "--all-or-nothing" in both.stderr
    wrong = import_cli(home, path, password="not-the-password")
    assert wrong.exit_code == 2 and "sign-in failed" in wrong.stderr
    auditor = import_cli(home, path, user="reader")
    assert auditor.exit_code == 2 and "may not create" in auditor.stderr


def test_cli_template_reads_back_and_is_never_overwritten(home, tmp_path):
    target = tmp_path / "X.xlsx"
    result = cli(home, "import", "template", "rentals", "--out", str(target))
    assert result.exit_code == 0, result.output
    with open_ledger(target, Kind.rentals) as ledger:
        assert REQUIRED[Kind.rentals] <= set(ledger.header)
        assert list(ledger.rows()) == []
    written = target.read_bytes()
    again = cli(home, "import", "template", "rentals", "--out", str(target))
    assert again.exit_code == 2 and "overwrite" in again.stderr
    assert target.read_bytes() == written


# --- 6. the upload endpoint ------------------------------------------------------------------


def upload(client: TestClient, user, kind: str, body, filename: str = "x.csv", **params):
    headers = {**(user.headers if user else {}), "Content-Type": "text/csv"}
    return client.post(f"/imports/{kind}", params={"filename": filename, **params},
                       content=body, headers=headers)


def test_upload_answers_the_summary_and_the_rejects(registry, client):
    user = police(registry, client)
    body = csv_bytes([*LEDGERS["residents"](2), resident_row(300, number=BAD_ID),
                      resident_row(301, code=GRID_B1)])
    response = upload(client, user, "residents", body, filename="台账.csv")
    assert response.status_code == 200, response.text
    summary, rejects = response.json()["summary"], response.json()["rejects_csv"]
    assert (summary["read"], summary["imported"], summary["rejected"]) == (4, 2, 2)
    assert summary["file"] == "台账.csv" and summary["rejects_file"] is None
    assert summary["sha256"] == hashlib.sha256(body).hexdigest()
    assert rejects.lstrip("\ufeff").startswith(",".join([*REJECTS_COLUMNS, "姓名"]))
    rows = list(csv.reader(rejects.lstrip("\ufeff").splitlines()))
    assert [r[:2] for r in rows[1:]] == [["4", "id_number"], ["5", "jurisdiction_code"]]
    assert table_counts(registry)["residency"] == 2


def test_upload_needs_a_token_and_the_right(registry, client):
    body = csv_bytes(LEDGERS["residents"](1))
    assert upload(client, None, "residents", body).status_code == 401
    auditor = make_user(registry, client, "auditor", COMMUNITY_A)
    seq = head(registry)
    denied = upload(client, auditor, "residents", body)
    assert denied.status_code == 403, denied.text
    events = events_after(registry, seq, action=None)
    assert [(e.kind, e.action, e.outcome) for e in events] == [("resident", "create", "denied")]
    assert table_counts(registry)["residency"] == 0
    coordinator = make_user(registry, client, "coordinator", GRID_A1)
    assert upload(client, coordinator, "jurisdictions",
                  csv_bytes([["区划代码", "名称"], ["330199009", "新街道"]])).status_code == 403


def test_upload_checks_its_parameters(registry, client):
    user = police(registry, client)
    body = csv_bytes(LEDGERS["residents"](1))
    bad = upload(client, user, "residents", body, filename="x.pdf")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "filename"
    assert upload(client, user, "pets", body).status_code == 422
    both = upload(client, user, "residents", body, dry_run="true", all_or_nothing="true")
    assert both.status_code == 422 and both.json()["error"]["field"] == "all_or_nothing"
    assert table_counts(registry)["residency"] == 0


@pytest.fixture
def small(key_dir, db, registry) -> Iterator[tuple[Registry, TestClient]]:
    """The registry with small caps: 2 KiB for requests, 4 KiB for uploads."""
    settings = settings_with(key_dir, max_request_bytes=2048, max_upload_bytes=4096)
    capped = Registry(settings, db=db, keyring=Keyring.from_settings(settings),
                      clock=Clock(fixed=FIXED_NOW))
    with TestClient(create_app(capped), raise_server_exceptions=False) as client:
        yield capped, client


def test_uploads_and_requests_have_their_own_caps(small):
    registry, client = small
    user = police(registry, client)
    fits = csv_bytes(LEDGERS["residents"](40))
    assert 2048 < len(fits) <= 4096  # over the request cap, under the upload cap
    response = upload(client, user, "residents", fits)
    assert response.status_code == 200, response.text
    assert response.json()["summary"]["imported"] == 40
    over = csv_bytes(LEDGERS["residents"](80))
    assert len(over) > 4096
    assert upload(client, user, "residents", over).status_code == 413

    def streamed():  # no Content-Length: the cap counts what arrives
        for start in range(0, len(over), 1000):
            yield over[start:start + 1000]

    answer = upload(client, user, "residents", streamed())
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "too_large"
    assert table_counts(registry)["residency"] == 40
    big_json = client.post("/residents", headers=user.headers,
                           json=arrival_body(401, "李四", workplace="厂" * 1200))
    assert big_json.status_code == 413
    small_json = client.post("/residents", headers=user.headers, json=arrival_body(402, "李五"))
    assert small_json.status_code == 201, small_json.text


@pytest.mark.parametrize("body,filename,message", [
    (bytes(range(256)) * 8, "x.csv", "binary"),
    (b"PK\x03\x04" + bytes(range(256)) * 4, "x.csv", "workbook"),
    (b"not a workbook at all", "x.xlsx", "not a readable XLSX"),
    (b"", "x.csv", "is empty"),
    (b"\r\n\r\n  \r\n", "x.csv", "is empty"),
])
def test_unreadable_uploads_are_a_clear_error(registry, client, body, filename, message):
    user = police(registry, client)
    response = upload(client, user, "residents", body, filename=filename)
    assert response.status_code == 200, response.text
    summary = response.json()["summary"]
    assert summary["error"] is not None and message in summary["error"]["message"]
    assert summary["error"]["message_zh"]
    assert (summary["read"], summary["imported"], summary["committed"]) == (0, 0, False)
    assert response.json()["rejects_csv"] is None


def test_an_upload_error_names_the_users_file(registry, client):
    user = police(registry, client)
    response = upload(client, user, "residents", bytes(range(256)) * 8, filename="台账.csv")
    summary = response.json()["summary"]
    assert summary["file"] == "台账.csv"
    assert summary["error"]["file"] == "台账.csv"


def test_a_header_only_upload_reads_nothing(registry, client):
    user = police(registry, client)
    response = upload(client, user, "residents", csv_bytes([RESIDENT_HEADER]))
    assert response.status_code == 200, response.text
    summary = response.json()["summary"]
    assert (summary["read"], summary["imported"], summary["error"]) == (0, 0, None)
    assert summary["header_row"] == 1


# --- 7. bad input ----------------------------------------------------------------------------


def test_a_formula_cell_rejects_its_row(registry, tmp_path):
    user = police(registry)
    wb = Workbook()
    ws = wb.active
    ws.append(RESIDENT_HEADER)
    ws.append(resident_row(501))
    ws.append([*resident_row(502)[:3], '=HYPERLINK("http://x","东门路")', *resident_row(502)[4:]])
    ws.append(resident_row(503))
    path = tmp_path / "f.xlsx"
    wb.save(path)
    summary = run_import(registry, user.actor, "residents", path)
    assert (summary.read, summary.imported, summary.rejected) == (3, 2, 1)
    rows = read_rejects(summary.rejects_file)
    assert rows[1][:2] == ["3", "address"] and "formula" in rows[1][3]
    assert table_counts(registry)["residency"] == 2


def test_duplicate_columns_stop_before_anything_is_written(registry, tmp_path):
    user = police(registry)
    before, seq = table_counts(registry), head(registry)
    path = write_csv(tmp_path / "d.csv", [[*RESIDENT_HEADER, "公民身份号码"],
                                          *([*r, r[1]] for r in LEDGERS["residents"](3)[1:])])
    summary = run_import(registry, user.actor, "residents", path)
    assert summary.error is not None and summary.error["field"] == "id_number"
    assert "same field" in summary.error["message"]
    assert (summary.read, summary.batches, summary.committed) == (0, 0, False)
    assert table_counts(registry) == before
    assert [e.outcome for e in events_after(registry, seq)] == ["error"]


def test_two_ledgers_side_by_side_stop_the_file(registry, tmp_path):
    user = police(registry)
    before = table_counts(registry)
    header = [*RESIDENT_HEADER, "矫正类别", "决定机关", "判决书号"]
    path = write_csv(tmp_path / "m.csv", [header, *([*r, "管制", "某法院", "(2026)1号"]
                                                   for r in LEDGERS["residents"](2)[1:])])
    summary = run_import(registry, user.actor, "residents", path)
    assert summary.error is not None and summary.error["field"] == "header"
    assert "mixes two ledgers" in summary.error["message"]
    assert summary.read == 0 and table_counts(registry) == before


def test_a_line_over_one_mib_stops_the_file(registry, tmp_path):
    user = police(registry)
    rows = LEDGERS["residents"](3)  # rows 2-4
    huge = resident_row(600)
    huge[3] = "x" * ((1 << 20) + 10)
    path = write_csv(tmp_path / "long.csv", [*rows, huge])
    summary = run_import(registry, user.actor, "residents", path, Options(batch_rows=2))
    assert summary.error is not None
    assert summary.error["file"] == "long.csv" and "1 MiB" in summary.error["message"]
    assert table_counts(registry)["residency"] == 2  # the batch of rows 2-3; not row 4


def test_rows_of_another_community_and_an_unknown_code_are_named(registry, tmp_path):
    user = police(registry, scope=COMMUNITY_B)
    path = write_csv(tmp_path / "c.csv", [RESIDENT_HEADER, resident_row(701, code=GRID_B1),
                                          resident_row(702, code="330199001002999")])
    summary = run_import(registry, user.actor, "residents", path)
    assert (summary.imported, summary.rejected) == (1, 1)
    assert read_rejects(summary.rejects_file)[1][:2] == ["3", "jurisdiction_code"]


def test_a_fixed_rejects_file_imports(registry, tmp_path):
    user = police(registry)
    path = write_csv(tmp_path / "r.csv", [*LEDGERS["residents"](1),
                                          resident_row(801, number=BAD_ID)])
    first = run_import(registry, user.actor, "residents", path)
    assert first.rejected == 1
    rejects = Path(first.rejects_file)
    rows = read_rejects(rejects)
    rows[1][4 + RESIDENT_HEADER.index("身份证号")] = id_number(801)
    fixed = write_csv(tmp_path / "fixed.csv", rows, encoding="utf-8-sig")
    again = run_import(registry, user.actor, "residents", fixed)
    assert again.error is None
    assert (again.imported, again.rejected) == (1, 0)
