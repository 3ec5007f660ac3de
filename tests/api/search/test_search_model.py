"""Differential test: random sequences of pushes, tag moves, deletes, referrers and signatures.

After the sequence, three views must agree: what the distribution API serves (tags and their digests,
referrers), what search answers from the live database, and what search answers after the database
is deleted and rebuilt from storage.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

REPOS = ("model/a", "model/b", "model/c/deep")
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
SNAPSHOT = """{
  ImageList(repo: "", requestedPage: {sortBy: ALPHABETIC_ASC}) {
    Page { TotalCount ItemCount }
    Results {
      RepoName Tag Digest MediaType Size IsSigned SignatureInfo { Tool } LastUpdated
      Referrers { Digest ArtifactType }
      Manifests { Digest ConfigDigest Size Platform { Os Arch } Layers { Digest } }
    }
  }
  RepoListWithNewestImage(requestedPage: {sortBy: ALPHABETIC_ASC}) {
    Results { Name Size LastUpdated Platforms { Os Arch } NewestImage { Tag Digest } }
  }
}"""


def _sorted_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_sorted_lists(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


class Model:
    """Drives the registry through the API and remembers what it pushed."""

    def __init__(self, kit, reg, rng: random.Random) -> None:
        self.kit, self.reg, self.rng = kit, reg, rng
        self.layers = [kit.layer(f"model-{i}") for i in range(6)]
        self.counter = 0
        self.signatures: set[str] = set()  # digests of signature manifests

    def _image(self):
        self.counter += 1
        n = self.rng.randint(1, 3)
        layers = self.rng.sample(self.layers, n) if self.rng.random() < 0.5 else self.layers[:n]
        arch = self.rng.choice(["amd64", "arm64"])
        created = f"2024-0{self.rng.randint(1, 9)}-1{self.counter % 10}T00:00:00Z"
        return self.kit.image(layers, created=created, arch=arch,
                              annotations={f"{self.kit.ANNOTATION}title": f"n{self.counter}"})

    def tags(self, repo: str) -> dict[str, str]:
        """Tag -> digest as the distribution API serves them."""
        resp = self.reg.get(f"/v2/{repo}/tags/list", check=False)
        if resp.status_code != 200:
            return {}
        out = {}
        for tag in resp.get_json().get("tags") or []:
            head = self.reg.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
            out[tag] = head.headers["Docker-Content-Digest"]
        return out

    def step(self) -> None:
        repo = self.rng.choice(REPOS)
        tags = self.tags(repo)
        image_tags = {t: d for t, d in tags.items() if d not in self.signatures}
        action = self.rng.choice(["push", "push", "index", "untagged", "move", "delete_tag", "delete_digest",
                                  "referrer", "sign", "unsign"])
        kit = self.kit
        if action == "push" or (action in ("move", "delete_tag", "delete_digest", "referrer", "sign")
                                and not image_tags):
            kit.push(self.reg, repo, self._image(), f"t{self.rng.randint(0, 5)}")
        elif action == "index":
            kit.push(self.reg, repo, kit.index([self._image(), self._image()]), f"i{self.rng.randint(0, 2)}")
        elif action == "untagged":
            kit.push(self.reg, repo, self._image())
        elif action == "move":
            kit.push(self.reg, repo, self._image(), self.rng.choice(sorted(image_tags)))
        elif action == "delete_tag":
            tag = self.rng.choice(sorted(image_tags))
            assert self.reg.delete(f"/v2/{repo}/manifests/{tag}").status_code == 202
        elif action == "delete_digest":
            digest = self.rng.choice(sorted(set(image_tags.values())))
            assert self.reg.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
        elif action in ("referrer", "sign"):
            subject_digest = self.rng.choice(sorted(set(image_tags.values())))
            raw = self.reg.get(f"/v2/{repo}/manifests/{subject_digest}", headers={"Accept": ACCEPT})
            subject = _Subject(subject_digest, raw.get_data(), raw.headers["Content-Type"])
            if action == "referrer":
                sbom = kit.artifact({"f": str(self.counter).encode()}, artifact_type=kit.SBOM_TYPE,
                                    subject=subject.manifest.descriptor())
                kit.push(self.reg, repo, sbom)
                self.counter += 1
            else:
                kind = self.rng.choice(["tag", "cosign", "notation"])
                if kind == "tag":
                    tag, sig = kit.cosign_tag_signature(subject)
                    kit.push(self.reg, repo, sig, tag)
                else:
                    sig = kit.cosign_referrer_signature(subject) if kind == "cosign" else \
                        kit.notation_signature(subject)
                    kit.push(self.reg, repo, sig)
                self.signatures.add(sig.digest)
        elif action == "unsign" and self.signatures:
            digest = self.rng.choice(sorted(self.signatures))
            self.reg.delete(f"/v2/{repo}/manifests/{digest}", check=False)


class _Subject:
    """Just enough of helpers.layout.Image to be a subject: a manifest blob with its descriptor."""

    def __init__(self, digest: str, data: bytes, media_type: str) -> None:
        from helpers.layout import Blob

        self.manifest = Blob(media_type.split(";")[0], data)
        assert self.manifest.digest == digest
        self.digest = digest


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_storage_live_search_and_rebuilt_search_agree(tmp_path, kit, seed: int) -> None:
    root = tmp_path / "root"
    reg = kit.start_app(root)
    gql = kit.GraphQL(reg)
    model = Model(kit, reg, random.Random(seed))
    for _ in range(60):
        model.step()

    # Search lists exactly the tags storage serves, minus cosign signature tags.
    served = {(repo, tag): digest for repo in REPOS for tag, digest in model.tags(repo).items()
              if digest not in model.signatures}
    live = gql.data(SNAPSHOT)
    listed = {(r["RepoName"], r["Tag"]): r["Digest"] for r in live["ImageList"]["Results"]}
    assert listed == served

    # Referrers agree with the distribution API's referrers list (signatures aside).
    for (repo, _tag), digest in served.items():
        api = reg.get(f"/v2/{repo}/referrers/{digest}").get_json()["manifests"]
        expected = sorted(d["digest"] for d in api if d["digest"] not in model.signatures)
        query = "query($r: String!, $d: String!) { Referrers(repo: $r, digest: $d) { Digest } }"
        found = gql.data(query, {"r": repo, "d": digest})["Referrers"]
        got = sorted(r["Digest"] for r in found if r["Digest"] not in model.signatures)
        assert got == expected, (repo, digest)

    kit.delete_database(root)
    rebuilt = kit.GraphQL(kit.start_app(root)).data(SNAPSHOT)
    assert _sorted_lists(rebuilt) == _sorted_lists(live)
