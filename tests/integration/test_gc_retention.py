"""Retention end to end, after zot's examples/config-retention.json with durations scaled to seconds.

Images are pushed through a live gunicorn (search on, so pushes and pulls land in the metadata
database), some pulled later; then ``zotpy gc CONFIG --dry-run`` must change nothing and ``zotpy gc
CONFIG`` must leave exactly the expected tags, checked tag by tag, with search, the audit log and the
disk in step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from helpers.gc_server import StorageConfiguredServer
from helpers.layout import build_image
from helpers.registry_client import expect
from helpers.server import registry_flavor

pytestmark = pytest.mark.skipif(registry_flavor() != "zotpy", reason="zotpy's gc command and layout")

WINDOW = "5s"
RETENTION = {
    "dryRun": False,
    "delay": "1s",
    "policies": [
        {"repositories": ["infra/*", "prod/*"], "deleteReferrers": False,
         "keepTags": [{"patterns": ["v2.*", ".*-prod"]},
                      {"patterns": ["v3.*", ".*-prod"], "pulledWithin": WINDOW}]},
        {"repositories": ["tmp/**"], "deleteReferrers": True, "deleteUntagged": True,
         "keepTags": [{"patterns": ["v1.*"], "pulledWithin": WINDOW, "pushedWithin": WINDOW}],
         "keepUntagged": {"pulledWithin": WINDOW, "pushedWithin": WINDOW}},
        {"repositories": ["**"], "deleteReferrers": True, "deleteUntagged": True,
         "keepTags": [{"mostRecentlyPushedCount": 2}]},
    ],
}
OLD = {"prod/app": ["v2.0", "v3.0", "v3.1", "x-prod", "v1.0", "latest"],
       "tmp/a/b": ["v1.0", "v1.1", "other"],
       "misc": ["a", "b"]}
RECENT = {"tmp/a/b": ["v1.2"], "misc": ["c", "d"]}
PULLED = {"prod/app": ["v3.1"], "tmp/a/b": ["v1.1"]}
EXPECTED = {"prod/app": ["v2.0", "v3.1", "x-prod"], "tmp/a/b": ["v1.1", "v1.2"], "misc": ["c", "d"]}


def gc_command(server: StorageConfiguredServer, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "zotpy.cli", "gc", str(server.config_path), *args],
                          env=server.environment(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def tags(server: StorageConfiguredServer, repo: str) -> list[str]:
    resp = server.client().tags(repo)
    return sorted(resp.json()["tags"]) if resp.status_code == 200 else []


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file under the storage root (index.json contents included), except zotpy's own."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.name == "index.json" else None)
            for p in root.rglob("*") if p.is_file() and "_zotpy" not in p.parts}


def searched_tags(server: StorageConfiguredServer, repo: str) -> list[str]:
    query = f'{{ ImageList(repo: "{repo}") {{ Results {{ Tag }} }} }}'
    resp = requests.post(server.url + "/v2/_zot/ext/search", json={"query": query}, timeout=30)
    assert resp.status_code == 200, resp.text
    return sorted(r["Tag"] for r in resp.json()["data"]["ImageList"]["Results"])


def test_retention_like_zots_example(tmp_path: Path) -> None:
    server = StorageConfiguredServer(
        tmp_path / "retention", audit=True, extensions={"search": {"enable": True}},
        # The server's own scheduler stays out of the way: the command does the collecting.
        storage={"gc": True, "gcDelay": "1s", "gcInterval": "1h", "retention": RETENTION})
    server.start()
    try:
        client = server.client()
        untagged_old = build_image(n_layers=1)
        for repo, names in OLD.items():
            for name in names:
                client.push_image(repo, build_image(n_layers=1), name)
        client.push_image("tmp/a/b", untagged_old)
        time.sleep(6)  # the old pushes fall out of the 5 s windows
        untagged_recent = build_image(n_layers=1)
        for repo, names in RECENT.items():
            for name in names:
                client.push_image(repo, build_image(n_layers=1), name)
        client.push_image("tmp/a/b", untagged_recent)
        for repo, names in PULLED.items():
            for name in names:
                expect(client.get_manifest(repo, name), 200)
        time.sleep(2)  # pull counts are flushed to the database every second
        before = snapshot(server.root)

        dry = gc_command(server, "--dry-run")
        assert snapshot(server.root) == before, "a dry run changed the storage"
        for repo in OLD:
            assert tags(server, repo) == sorted(OLD[repo] + RECENT.get(repo, []))
        for repo, expected in EXPECTED.items():
            for name in set(OLD[repo] + RECENT.get(repo, [])) - set(expected):
                assert f"would remove tag {repo}:{name}" in dry, (name, dry)
        assert f"would remove manifest tmp/a/b@{untagged_old.digest}" in dry

        out = gc_command(server)
        for repo, expected in EXPECTED.items():
            assert tags(server, repo) == expected, (repo, out)
            assert searched_tags(server, repo) == expected, repo
            for name in expected:
                expect(client.get_manifest(repo, name), 200)
        assert f"removed manifest tmp/a/b@{untagged_old.digest}" in out
        assert client.get_manifest("tmp/a/b", untagged_old.digest).status_code == 404
        assert expect(client.get_manifest("tmp/a/b", untagged_recent.digest), 200)  # kept by keepUntagged
        config_path = server.root / "tmp/a/b/blobs/sha256" / untagged_old.config.digest.split(":")[1]
        assert not config_path.exists()

        assert server.audit_path is not None
        audited = [json.loads(line) for line in server.audit_path.read_text().splitlines()
                   if '"zotpy-gc' in line]
        deleted_tags = {(r["object"].split("/manifests/")[0][4:], r["object"].rsplit("/", 1)[1])
                        for r in audited if "retention" in r["subject"]}
        assert deleted_tags == {(repo, name) for repo in OLD
                                for name in set(OLD[repo] + RECENT.get(repo, [])) - set(EXPECTED[repo])}
        assert any(r["subject"] == "zotpy-gc:deleteUntagged" and untagged_old.digest in r["object"]
                   for r in audited)
    finally:
        server.stop()
