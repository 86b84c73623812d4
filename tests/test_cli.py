"""The CLI against an on-disk SQLite registry: init, demo, jurisdictions load."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from registry.cli import app
from registry.config import get_settings

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REGISTRY_ENVIRONMENT", "test")
    monkeypatch.setenv("REGISTRY_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("REGISTRY_ARGON2_MEMORY_KIB", "64")
    monkeypatch.delenv("REGISTRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("REGISTRY_KEY_FILE", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str, input: str | None = None):
    get_settings.cache_clear()
    return runner.invoke(app, list(args), input=input)


def test_init_demo_is_idempotent_with_if_needed(cli_env):
    first = invoke("init", "--demo", "--scale", "0.05")
    assert first.exit_code == 0, first.output
    assert "police_a" in first.output
    again = invoke("init", "--demo", "--if-needed")
    assert again.exit_code == 0, again.output
    assert "already loaded" in again.output
    refused = invoke("demo")
    assert refused.exit_code == 2
    assert "empty registry" in refused.output
    assert invoke("audit", "verify").exit_code == 0


def test_demo_refused_in_production(cli_env, monkeypatch):
    monkeypatch.setenv("REGISTRY_ENVIRONMENT", "production")
    monkeypatch.setenv("REGISTRY_KEY_FILE", str(cli_env / "registry.key"))
    result = invoke("init", "--demo")
    assert result.exit_code == 2
    assert "production" in result.output


def test_jurisdictions_load(cli_env):
    assert invoke("init").exit_code == 0
    tree = cli_env / "tree.csv"
    tree.write_text("code,name,parent_code\n440101,示例区,\n440101001,一街道,440101\n"
                    "440101001001,一社区,440101001\n", encoding="utf-8")
    result = invoke("jurisdictions", "load", str(tree))
    assert result.exit_code == 0, result.output
    assert "3 added" in result.output
    tree.write_text("code,name,parent_code\n440101001,一街道（更名）,440101\n", encoding="utf-8")
    result = invoke("jurisdictions", "load", str(tree))
    assert "1 renamed" in result.output


@pytest.mark.parametrize(("content", "message"), [
    ("code,name\n440101,示例区\n", "missing columns: parent_code"),
    ("code,name,parent_code\n44010,短码,\n", "row 2: code"),
    ("code,name,parent_code\n440101,示例区,\n440101001001,孤儿,440101001\n", "row 3: parent_code"),
    ("code,name,parent_code\n440101,,\n", "row 2: name"),
])
def test_jurisdictions_load_rejects_bad_rows_and_writes_nothing(cli_env, content, message):
    assert invoke("init").exit_code == 0
    tree = cli_env / "tree.csv"
    tree.write_text(content, encoding="utf-8")
    result = invoke("jurisdictions", "load", str(tree))
    assert result.exit_code == 2
    assert message in result.output
    good = cli_env / "good.csv"
    good.write_text("code,name,parent_code\n440101,示例区,\n", encoding="utf-8")
    assert "1 added" in invoke("jurisdictions", "load", str(good)).output


def test_jurisdictions_load_refuses_binary_garbage(cli_env):
    assert invoke("init").exit_code == 0
    garbage = cli_env / "tree.csv"
    garbage.write_bytes(b"\xff\xfe\x00\x81\x82garbage\x00")
    result = invoke("jurisdictions", "load", str(garbage))
    assert result.exit_code == 2
    assert "UTF-8" in result.output


def test_jurisdictions_deadline(cli_env):
    assert invoke("init").exit_code == 0
    tree = cli_env / "tree.csv"
    tree.write_text("code,name,parent_code\n440101,示例区,\n440101001,一街道,440101\n",
                    encoding="utf-8")
    assert invoke("jurisdictions", "load", str(tree)).exit_code == 0
    result = invoke("jurisdictions", "deadline", "440101", "5")
    assert result.exit_code == 0, result.output
    assert "within 5 days" in result.output
    inherited = invoke("jurisdictions", "deadline", "440101001", "--clear")
    assert "within 5 days" in inherited.output  # from the parent
    assert invoke("jurisdictions", "deadline", "440101", "--clear").exit_code == 0
    assert "within 3 days" in invoke("jurisdictions", "deadline", "440101001",
                                     "--clear").output  # the setting
    for args, message in ((["440101", "400"], "days"), (["999999", "3"], "not found"),
                          (["440101"], "DAYS or --clear")):
        result = invoke("jurisdictions", "deadline", *args)
        assert result.exit_code == 2
        assert message in result.output
