"""The website's deployment recipes (deploy/github-actions/site.yml, deploy/site/), parsed and
their commands run here: the GitHub Pages workflow's `run:` steps with bash (as a runner would,
twice, with the database kept between the runs as its cache step keeps it), and the cron line
with /bin/sh in a stand-in install folder."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_deploy import run_step  # a `run:` step as GitHub runs it, with this venv

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "deploy" / "github-actions" / "site.yml"
SITE = ROOT / "deploy" / "site"
EXAMPLE = ROOT / "examples" / "sessions.yaml"
SITE_DIR = "/var/www/reading-group/site"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found = job["steps"]
    assert isinstance(found, list)
    return found


def test_the_pages_workflow_builds_on_changes_and_hourly_and_deploys(
    workflow: dict[Any, Any],
) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(triggers, dict)
    assert "sessions.yaml" in triggers["push"]["paths"]
    (schedule,) = triggers["schedule"]
    assert len(schedule["cron"].split()) == 5
    assert "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    assert [s["uses"] for s in steps(deploy)] == ["actions/deploy-pages@v4"]
    runs = [str(s["run"]) for s in steps(build) if "run" in s]
    (site_step,) = [r for r in runs if "site build" in r]
    output = shlex.split(site_step)[shlex.split(site_step).index("-o") + 1]
    (upload,) = [
        s for s in steps(build) if str(s.get("uses", "")).startswith("actions/upload-pages")
    ]
    assert upload["with"]["path"] == output
    cache = next(s for s in steps(build) if str(s.get("uses", "")).startswith("actions/cache"))
    assert build["env"]["DATABASE_URL"] == f"sqlite:///{cache['with']['path']}/site.db"
    documented = set(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / "config.example.env").read_text(), re.M)
    )
    assert set(build["env"]) <= documented, set(build["env"]) - documented


@pytest.mark.slow  # real `python -m bot` processes
def test_the_pages_workflow_steps_build_the_same_site_run_after_run(
    workflow: dict[Any, Any], tmp_path: Path
) -> None:
    build = workflow["jobs"]["build"]
    env = {name: str(value) for name, value in build["env"].items()}
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "sessions.yaml").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    install = next(i for i, s in enumerate(steps(build)) if "pip install" in str(s.get("run", "")))
    scripts = [str(s["run"]) for s in steps(build)[install + 1 :] if "run" in s]
    sites = []
    for _ in range(2):  # two runs; the database folder stays, as the cache step restores it
        (workspace / "_site").exists() and subprocess.run(["rm", "-rf", str(workspace / "_site")])
        for script in scripts:
            result = run_step(script, env, workspace)
            assert result.returncode == 0, (script, result.stdout, result.stderr)
        site = workspace / "_site"
        sites.append({p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()})
    assert sites[0] == sites[1], "a run with unchanged sessions changed the site"
    index = sites[0][Path("index.html")].decode()
    assert "Diffusion LLM Reading Group" in index
    assert (
        "https://your-org.github.io/your-repo/sessions/diffucoder/"
        in sites[0][Path("feed.xml")].decode()
    )
    assert "example.zoom.us" not in index  # the meeting link stays off the public site


@pytest.mark.slow  # real `python -m bot` processes
def test_the_cron_line_rebuilds_the_site_silently(tmp_path: Path) -> None:
    install = tmp_path / "srv-bot"
    install.mkdir()
    site = tmp_path / "www" / "site"
    (install / ".env").write_text(
        f"DATABASE_URL=sqlite:///{tmp_path}/bot.db\nSITE_DIR={site}\n", encoding="utf-8"
    )
    lines = [
        line
        for line in (SITE / "crontab").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    (line,) = lines
    fields = line.split(None, 5)
    assert fields[:5] == ["*/15", "*", "*", "*", "*"]
    command = (
        fields[5].replace(".venv/bin/python", sys.executable).replace("/srv/bot", str(install))
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    result = subprocess.run(
        ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (site / "index.html").exists() and (site / "calendar.ics").exists()
    assert "0 sessions" in (install / "site.log").read_text(encoding="utf-8")


def test_the_web_server_recipes_serve_site_dir_and_hide_dot_files() -> None:
    nginx = (SITE / "nginx.conf").read_text(encoding="utf-8")
    caddy = (SITE / "Caddyfile").read_text(encoding="utf-8")
    readme = (SITE / "README.md").read_text(encoding="utf-8")
    assert f"root {SITE_DIR};" in nginx and "try_files $uri $uri/ =404" in nginx
    assert r"location ~ /\. " in nginx and "deny all" in nginx
    assert f"root * {SITE_DIR}" in caddy and "@hidden path */.*" in caddy
    assert f"SITE_DIR={SITE_DIR}" in readme
    assert "ReadWritePaths=/var/www/reading-group" in readme
    assert nginx.count("{") == nginx.count("}") and caddy.count("{") == caddy.count("}")
