"""docker-compose.yml, checked without a Docker engine: the default profile is the single-process SQLite demo, the
`scale` profile runs two servers on one PostgreSQL and one Redis behind the same broker, and every command,
environment variable and image it names exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from server.settings import ENV_PREFIX, ServerSettings

ROOT = Path(__file__).resolve().parents[2]
KNOWN_IMAGES = {"eclipse-mosquitto:2", "postgres:15", "redis:7"}


def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_default_profile_is_the_sqlite_demo():
    default = {name for name, svc in services().items() if not svc.get("profiles")}
    assert default == {"mosquitto", "prepare", "server", "edge"}
    assert "sqlite:////data/adbreak.db" in " ".join(services()["server"]["command"])
    assert "ADBREAK_SERVER_MQTT_SHARE_GROUP" not in services()["server"].get("environment", {})


def test_the_scale_profile_shares_one_database_redis_and_broker_with_own_client_ids():
    svcs = services()
    scaled = {name: svc for name, svc in svcs.items() if svc.get("profiles") == ["scale"]}
    assert set(scaled) == {"postgres", "redis", "migrate", "server-1", "server-2"}
    servers = [svcs["server-1"], svcs["server-2"]]
    db_urls = {s["command"][s["command"].index("--db") + 1] for s in servers}
    db_urls.add(svcs["migrate"]["command"][svcs["migrate"]["command"].index("--db") + 1])
    assert len(db_urls) == 1 and next(iter(db_urls)).startswith("postgresql+psycopg://")
    assert {s["environment"]["ADBREAK_SERVER_REDIS_URL"] for s in servers} == {"redis://redis:6379/0"}
    assert {s["environment"]["ADBREAK_SERVER_MQTT_SHARE_GROUP"] for s in servers} == {"adbreak"}
    assert len({s["environment"]["ADBREAK_SERVER_MQTT_CLIENT_ID"] for s in servers}) == 2
    assert {s["command"][s["command"].index("--mqtt") + 1] for s in servers} == {"mosquitto:1883"}
    assert len({tuple(s["ports"]) for s in servers}) == 2


def test_every_image_command_and_setting_exists():
    fields = {f"{ENV_PREFIX}{name}".upper() for name in ServerSettings.model_fields}
    for name, svc in services().items():
        assert ("image" in svc) != ("build" in svc), name
        if "image" in svc:
            assert svc["image"] in KNOWN_IMAGES, name
            continue
        assert svc["build"] == "."
        for var in svc.get("environment", {}):
            assert not var.startswith(ENV_PREFIX) or var in fields, f"{name}: {var} is no server setting"
        if svc.get("entrypoint"):  # `sh -c "adbreak db upgrade ... && exec adbreak server ..."`
            commands = [part.split()[part.split().index("adbreak") + 1:] for part in svc["command"][0].split("&&")]
        else:
            commands = [svc["command"]]
        for command in commands:
            words = [w for w in command if not w.startswith("-")]
            sub = command[:command.index(next(w for w in command if w.startswith("--")))] if any(
                w.startswith("--") for w in command) else words
            ran = subprocess.run([sys.executable, "-m", "adbreak", *sub, "--help"], cwd=ROOT, capture_output=True,
                                 text=True, timeout=60)
            assert ran.returncode == 0, f"{name}: adbreak {' '.join(sub)}: {ran.stderr}"
            for option in (part for part in command if part.startswith("--")):
                assert option in ran.stdout, f"{name}: adbreak {' '.join(sub)} has no {option}"
