"""Table definitions of the metadata database: an index derived from storage, rebuilt from it.

Only portable peewee features are used (no SQLite-only types, no foreign-key cascades, no JSON
operators), so the same definitions run on PostgreSQL.  Tables refer to each other by key columns
rather than ``ForeignKeyField`` so that :func:`zotpy.meta.db.bound_model` can bind them per
database.  Structured values (annotations, history, layers) are JSON text decoded on read.
"""

from __future__ import annotations

import peewee

from zotpy.meta.db import bound_model

__all__ = [
    "ALL_MODELS",
    "ImageLayer",
    "ImageMeta",
    "IndexChild",
    "MetaState",
    "Repo",
    "RepoManifest",
    "Signature",
    "Tables",
    "Tag",
    "UserBookmark",
    "UserGroup",
    "UserStar",
]


class Repo(peewee.Model):
    """A repository holding at least an OCI layout; ``fingerprint`` is its index.json identity."""

    id = peewee.AutoField()
    name = peewee.TextField(unique=True)
    fingerprint = peewee.TextField(null=True)

    class Meta:
        table_name = "meta_repo"


class ImageMeta(peewee.Model):
    """A manifest or index by digest, with the parts of its config search needs (content-addressed)."""

    digest = peewee.TextField(primary_key=True)
    media_type = peewee.TextField()
    size = peewee.BigIntegerField()
    total_size = peewee.BigIntegerField(default=0)
    config_digest = peewee.TextField(null=True, index=True)
    config_media_type = peewee.TextField(null=True)
    config_size = peewee.BigIntegerField(default=0)
    artifact_type = peewee.TextField(null=True)
    subject = peewee.TextField(null=True, index=True)
    os = peewee.TextField(null=True)
    arch = peewee.TextField(null=True)
    variant = peewee.TextField(null=True)
    created = peewee.DoubleField(null=True)
    vendor = peewee.TextField(null=True)
    annotations = peewee.TextField(null=True)
    labels = peewee.TextField(null=True)
    history = peewee.TextField(null=True)
    layers = peewee.TextField(null=True)
    first_layer = peewee.TextField(null=True, index=True)
    children = peewee.TextField(null=True)

    class Meta:
        table_name = "meta_image"


class ImageLayer(peewee.Model):
    """Layer digest → the manifests using it (ImageListForDigest)."""

    layer = peewee.TextField()
    image = peewee.TextField(index=True)

    class Meta:
        table_name = "meta_image_layer"
        primary_key = peewee.CompositeKey("layer", "image")


class IndexChild(peewee.Model):
    """An index and one manifest it lists."""

    parent = peewee.TextField()
    child = peewee.TextField(index=True)
    position = peewee.IntegerField(default=0)

    class Meta:
        table_name = "meta_index_child"
        primary_key = peewee.CompositeKey("parent", "child")


class RepoManifest(peewee.Model):
    """A manifest listed in a repository's index.json, with its push and pull statistics."""

    id = peewee.AutoField()
    repo = peewee.IntegerField()
    digest = peewee.TextField(index=True)
    media_type = peewee.TextField()
    pushed = peewee.DoubleField()
    pushed_by = peewee.TextField(null=True)
    downloads = peewee.BigIntegerField(default=0)
    last_pull = peewee.DoubleField(null=True)

    class Meta:
        table_name = "meta_repo_manifest"
        indexes = ((("repo", "digest"), True),)


class Tag(peewee.Model):
    id = peewee.AutoField()
    repo = peewee.IntegerField()
    name = peewee.TextField()
    digest = peewee.TextField(index=True)
    media_type = peewee.TextField()
    tagged = peewee.DoubleField()

    class Meta:
        table_name = "meta_tag"
        indexes = ((("repo", "name"), True),)


class Signature(peewee.Model):
    """A signature on ``subject`` in a repository: cosign (tag scheme or referrer) or notation."""

    id = peewee.AutoField()
    repo = peewee.IntegerField()
    subject = peewee.TextField()
    digest = peewee.TextField()
    tool = peewee.TextField()
    tag = peewee.TextField(null=True)

    class Meta:
        table_name = "meta_signature"
        indexes = ((("repo", "subject", "digest"), True), (("repo", "digest"), False))


class UserStar(peewee.Model):
    user = peewee.TextField()
    repo = peewee.TextField(index=True)

    class Meta:
        table_name = "meta_user_star"
        primary_key = peewee.CompositeKey("user", "repo")


class UserBookmark(peewee.Model):
    user = peewee.TextField()
    repo = peewee.TextField()

    class Meta:
        table_name = "meta_user_bookmark"
        primary_key = peewee.CompositeKey("user", "repo")


class UserGroup(peewee.Model):
    user = peewee.TextField()
    group = peewee.TextField()

    class Meta:
        table_name = "meta_user_group"
        primary_key = peewee.CompositeKey("user", "group")


class MetaState(peewee.Model):
    """Small named values: the rebuild stamp."""

    key = peewee.TextField(primary_key=True)
    value = peewee.TextField()

    class Meta:
        table_name = "meta_state"


ALL_MODELS: tuple[type[peewee.Model], ...] = (
    Repo, ImageMeta, ImageLayer, IndexChild, RepoManifest, Tag, Signature,
    UserStar, UserBookmark, UserGroup, MetaState,
)


class Tables:
    """The models bound to one database."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        self.repo = bound_model(Repo, db)
        self.image = bound_model(ImageMeta, db)
        self.layer = bound_model(ImageLayer, db)
        self.child = bound_model(IndexChild, db)
        self.manifest = bound_model(RepoManifest, db)
        self.tag = bound_model(Tag, db)
        self.signature = bound_model(Signature, db)
        self.star = bound_model(UserStar, db)
        self.bookmark = bound_model(UserBookmark, db)
        self.group = bound_model(UserGroup, db)
        self.state = bound_model(MetaState, db)

    def all(self) -> list[type[peewee.Model]]:
        return [self.repo, self.image, self.layer, self.child, self.manifest, self.tag, self.signature,
                self.star, self.bookmark, self.group, self.state]
