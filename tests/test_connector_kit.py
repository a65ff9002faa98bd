"""The connector kit's promise: a new CRM is one module in `sources/` and one registry line.

Proved end to end: a copy of the package gets a made-up CRM (its module, one line in the
registry, nothing else), and the CLI syncs it over a real socket, lists it, tests it, and
`.env.example` names its settings. And statically: the CRMs added on the kit are named
nowhere else in the package.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crm_tui.demo import data
from crm_tui.demo.servers import FaultInjector, Faults, serve
from crm_tui.sources.registry import CONNECTORS
from tests.helpers.env import DEMO_CONTACTS, run_crm

PACKAGE = Path(__file__).parent.parent / "crm_tui"

ACME = '''"""Acme CRM: a made-up vendor, added by one module and one registry line."""

from crm_tui.sources.base import Source
from crm_tui.sources.kit import KeyHeader, Setting
from crm_tui.sources.pagination import CursorInBody, Stream


class AcmeSource(Source):
    name = "acme"
    display_name = "Acme CRM"
    short_name = "ACM"
    settings = (
        Setting("ACME_API_KEY", "Acme API key; enables Acme.", secret=True, required=True),
        Setting(
            "ACME_API_BASE_URL", "Acme API base URL.", default="https://acme.example", kind="url"
        ),
    )
    base_url_setting = "ACME_API_BASE_URL"
    auth = KeyHeader("ACME_API_KEY", header="X-Acme-Key")
    endpoints = {"contacts": Stream("people", CursorInBody("next", "page_token"), ("items",))}
    field_maps = {"contacts": {"remote_id": "key", "first_name": "given", "last_name": "family"}}
'''

PEOPLE = [{"key": f"a{i}", "given": f"Given{i}", "family": "Acme"} for i in range(250)]


def acme_server() -> Starlette:
    async def people(request: Request) -> JSONResponse:
        if request.headers.get("x-acme-key") != "acme-secret":
            return JSONResponse({"error": "who are you"}, 401)
        start = int(request.query_params.get("page_token", 0))
        size = int(request.query_params.get("limit", 10))
        end = min(start + size, len(PEOPLE))
        return JSONResponse(
            {"items": PEOPLE[start:end], "next": str(end) if end < len(PEOPLE) else None}
        )

    return Starlette(routes=[Route("/people", people)])


@pytest.fixture
def package_with_acme(tmp_path: Path) -> Path:
    """A copy of crm_tui with Acme added: its module and one line in the registry."""
    copy = tmp_path / "lib" / "crm_tui"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "sources" / "acme.py").write_text(ACME, encoding="utf-8")
    registry = copy / "sources" / "registry.py"
    text = registry.read_text(encoding="utf-8")
    text = text.replace(
        "from crm_tui.sources.base import Source, SourceContext\n",
        "from crm_tui.sources.acme import AcmeSource\n"
        "from crm_tui.sources.base import Source, SourceContext\n",
    )
    text, added = re.subn(r"(\n        LocalSource,)", r"\n        AcmeSource,\1", text)
    assert added == 1
    registry.write_text(text, encoding="utf-8")
    return copy.parent


def test_a_new_crm_is_one_module_and_one_registry_line(tmp_path, package_with_acme):
    server = serve("acme", FaultInjector(acme_server(), Faults(), lambda path: True))
    env = {
        "PYTHONPATH": str(package_with_acme),
        "ACME_API_KEY": "acme-secret",
        "ACME_API_BASE_URL": server.url,
        "CRM_DATA_DIR": str(tmp_path / "data"),
        "CRM_USER_ID": "alice",
    }

    def crm(*args: str) -> subprocess.CompletedProcess[str]:
        return run_crm(*args, env=env, cwd=tmp_path)

    try:
        synced = crm("sync", "acme", "--json")
        assert synced.returncode == 0, synced.stderr
        assert json.loads(synced.stdout)["results"]["acme"]["contacts"]["count"] == len(PEOPLE)
        status = json.loads(crm("status", "--json").stdout)["status"]["acme"]
        assert status["contactCount"] == len(PEOPLE) and status["status"] == "idle"
        tested = crm("test-connection", "acme", "--json")
        assert json.loads(tested.stdout)["results"]["acme"]["ok"] is True
        found = json.loads(crm("search", "given249", "--json").stdout)
        assert found["total"] == 1
        refused = subprocess.run(
            [sys.executable, "-m", "crm_tui", "test-connection", "acme", "--json"],
            capture_output=True,
            text=True,
            env={**env, "ACME_API_KEY": "nope"},
            cwd=tmp_path,
            timeout=120,
        )
        assert refused.returncode == 3
        assert "the API key was refused: check ACME_API_KEY in the environment" in refused.stdout
        example = subprocess.run(
            [sys.executable, "-m", "crm_tui.envexample"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert "# Acme API key; enables Acme.\nACME_API_KEY=\n" in example
    finally:
        server.stop()


#: The CRMs added on the kit, and the words that would betray them elsewhere.
ADDED_ON_THE_KIT = {"hubspot": "HUBSPOT", "pipedrive": "PIPEDRIVE", "lofty": "LOFTY"}


def code_of(path: Path) -> str:
    """A module's identifiers and string values, without its docstrings and comments (which
    may name a CRM as an example)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                words.append(node.value)
        elif isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.alias):
            words.append(node.name)
    return "\n".join(words)


@pytest.mark.parametrize("name", list(ADDED_ON_THE_KIT))
def test_a_crm_added_on_the_kit_is_named_nowhere_else(name):
    assert name in CONNECTORS
    allowed = {f"sources/{name}.py", "sources/registry.py"}
    pattern = re.compile(f"{name}|{ADDED_ON_THE_KIT[name]}_", re.IGNORECASE)
    named = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "demo" not in path.parts
        and str(path.relative_to(PACKAGE)) not in allowed
        and pattern.search(code_of(path))
    ]
    assert named == []


def test_the_scan_can_see_a_crm_named_in_code(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""HubSpot in a docstring."""\n# hubspot\nX = "hubspot"\n')
    assert "hubspot" in code_of(module) and "HubSpot in" not in code_of(module)


@pytest.mark.parametrize("name", list(ADDED_ON_THE_KIT))
def test_each_new_crm_syncs_and_tests_from_the_cli_with_the_usual_shapes(
    tmp_path, demo_servers, name
):
    env = {**demo_servers.env(), "CRM_DATA_DIR": str(tmp_path / "data")}

    def crm(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_crm(*args, env={**env, **extra})

    synced = crm("sync", name, "--json")
    assert synced.returncode == 0, synced.stderr
    result = json.loads(synced.stdout)
    assert result["success"] is True
    assert set(result["results"][name]) == {"contacts", "deals"}
    assert all(item["success"] and item["count"] > 0 for item in result["results"][name].values())
    assert json.loads(crm("test-connection", name, "--json").stdout)["results"][name]["ok"]
    secret = next(s.env for s in CONNECTORS[name].settings if s.secret)
    refused = crm("sync", name, "--json", **{secret: "wrong"})
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["error"] == "Authentication failed"


def test_pipedrive_reads_from_a_company_domain_without_the_api_v2_path(tmp_path, demo_servers):
    server = demo_servers.servers["pipedrive"].url
    env = {
        **demo_servers.env(),
        "CRM_DATA_DIR": str(tmp_path / "data"),
        "PIPEDRIVE_API_BASE_URL": server + "/",
    }
    synced = run_crm("sync", "pipedrive", "--json", env=env)
    assert synced.returncode == 0, synced.stderr
    counts = json.loads(synced.stdout)["results"]["pipedrive"]
    assert counts["contacts"]["count"] == data.expected_contacts(DEMO_CONTACTS)
