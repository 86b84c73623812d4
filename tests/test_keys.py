"""Key rotation end to end, on an on-disk registry per backend: ``registry keys rotate``
re-wraps every data key under a new KEK version while the registry stays in use, resumes after
a SIGKILL without starting another version, and ``registry keys retire`` then destroys the old
version — after which every record still opens, in a fresh process and in one that was running
all along."""

from __future__ import annotations

import json
import uuid

import pytest

from registry.rentals import service as rentals
from registry.rentals.schemas import RentalCreate
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from tests.conftest import (
    GRID_A1,
    Disk,
    assert_rentals_open,
    rental_body,
)

RENTALS = 40  # two data keys each (the rental and its landlord)
PURPOSE = "key rotation test"


def key_file(disk: Disk) -> dict:
    return json.loads((disk.data / "registry.key").read_text())


@pytest.fixture
def filled(disk: Disk) -> tuple[Disk, Actor, dict[uuid.UUID, tuple[str, str, str]]]:
    """An initialised registry with RENTALS rentals by one officer, and what each shows."""
    return disk, *disk.fill(RENTALS, PURPOSE)


def status(disk: Disk) -> dict:
    result = disk.run("keys", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_rotation_killed_mid_way_resumes_then_the_old_version_retires(filled):
    disk, officer, shown = filled
    (original,) = key_file(disk)["keks"]
    running = disk.open()  # a server that was up before the rotation began
    assert_rentals_open(running, officer, shown, PURPOSE)

    disk.kill_after("rewrap", 3, "keys", "rotate", "--batch", "2")

    # Killed: two versions, the data keys split between them, and everything still opens —
    # in a fresh process and in the one that was running all along.
    keys = key_file(disk)
    assert len(keys["keks"]) == 2 and keys["active"] != original
    midway = status(disk)
    assert 0 < midway["stale"] < 2 * RENTALS
    assert {v["kek_id"] for v in midway["versions"]} == {original, keys["active"]}
    assert_rentals_open(disk.open(), officer, shown, PURPOSE)
    assert_rentals_open(running, officer, shown, PURPOSE)

    # Run again: it resumes under the same new version rather than starting a third.
    resumed = disk.run("keys", "rotate", "--batch", "50")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming to {keys['active']}" in resumed.stderr
    after = status(disk)
    assert after["stale"] == 0 and after["active"] == keys["active"]
    assert {v["kek_id"]: v["data_keys"] for v in after["versions"]} == {
        original: 0, keys["active"]: 2 * RENTALS}

    # Retire: the old version leaves the key file, and every record still opens.
    retired = disk.run("keys", "retire")
    assert retired.returncode == 0, retired.stderr
    assert json.loads(retired.stdout) == {"retired": [original]}
    assert list(key_file(disk)["keks"]) == [keys["active"]]
    assert_rentals_open(disk.open(), officer, shown, PURPOSE)
    assert_rentals_open(running, officer, shown, PURPOSE)  # follows the rewritten key file

    # The server that was running wraps new data keys under the new version.
    with running.vault(officer) as vault:
        rentals.register(vault, RentalCreate(**rental_body(RENTALS + 1, code=GRID_A1)),
                         purpose=PURPOSE)
        vault.commit()
    assert status(disk)["stale"] == 0
    verified = disk.run("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    running.db.dispose()


def test_a_finished_rotation_starts_a_new_version_and_retires_in_one_go(filled):
    disk, officer, shown = filled
    (first,) = key_file(disk)["keks"]
    result = disk.run("keys", "rotate", "--retire")
    assert result.returncode == 0, result.stderr
    assert f"re-wrapped {2 * RENTALS} data keys" in result.stdout
    second = key_file(disk)["active"]
    assert list(key_file(disk)["keks"]) == [second] != [first]

    again = disk.run("keys", "rotate")
    assert again.returncode == 0, again.stderr
    assert "rotating to" in again.stderr
    third = key_file(disk)["active"]
    assert third not in (first, second)
    assert sorted(key_file(disk)["keks"]) == sorted([second, third])
    assert_rentals_open(disk.open(), officer, shown, PURPOSE)

    actions = disk.rows("select action, record_id, outcome from audit_event "
                        "where kind = 'key' order by seq")
    assert [a["action"] for a in actions][:1] == ["rotate"]
    assert {"rotate", "rewrap", "retire"} <= {a["action"] for a in actions}
    assert all(a["outcome"] == "ok" for a in actions)


def test_retirement_interrupted_after_its_commit_is_finished_by_running_it_again(filled):
    """Retiring removes the version's check value first and destroys the key after: a crash
    in between leaves a key file with a spare version, never a database needing a lost one."""
    disk, officer, shown = filled
    (first,) = key_file(disk)["keks"]
    assert disk.run("keys", "rotate").returncode == 0
    registry = disk.open()
    with registry.vault(system_actor("tests")) as vault:
        assert vault.keys.retire() == [first]
        vault.commit()  # ... and the process dies before vault.keys.destroy()
    registry.db.dispose()
    assert first in key_file(disk)["keks"]
    assert_rentals_open(disk.open(), officer, shown, PURPOSE)  # starts: nothing needs `first`
    result = disk.run("keys", "retire")
    assert result.returncode == 0 and json.loads(result.stdout) == {"retired": [first]}
    assert first not in key_file(disk)["keks"]


def test_a_key_file_missing_a_version_still_in_use_is_refused_by_name(filled):
    disk, _, _ = filled
    (first,) = key_file(disk)["keks"]
    assert disk.run("keys", "rotate", "--batch", "1000").returncode == 0
    # Someone "tidies" the key file by hand, dropping the new version the data now needs.
    body = key_file(disk)
    active = body["active"]
    body["keks"].pop(active)
    body["active"] = first
    (disk.data / "registry.key").write_text(json.dumps(body))
    result = disk.run("keys", "status")
    assert result.returncode == 2
    assert f"the database needs key-encryption key {active}, which the key file lacks" in \
        result.stderr
    assert "Traceback" not in result.stderr


def test_status_shows_versions_and_counts_but_no_key_material(filled):
    disk, _, _ = filled
    report = status(disk)
    (kek_id, secret), = key_file(disk)["keks"].items()
    assert report["active"] == kek_id and report["stale"] == 0 and report["destroyed"] == 0
    assert report["versions"] == [{"kek_id": kek_id, "active": True, "data_keys": 2 * RENTALS}]
    plain = disk.run("keys", "status")
    assert secret not in plain.stdout + json.dumps(report)
    assert key_file(disk)["index_root"] not in plain.stdout + json.dumps(report)
