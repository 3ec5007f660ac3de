"""The search middleware yields to the event loop during long answers."""

from __future__ import annotations

from typing import Any

import pytest

from zotpy.extensions.search import views


def test_yields_every_n_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(views.time, "sleep", sleeps.append)
    middleware = views.yielding(every=10)

    def resolver(root: Any, info: Any, **kwargs: Any) -> Any:
        return (root, kwargs)

    results = [middleware(resolver, i, None, x=i) for i in range(35)]
    assert results[7] == (7, {"x": 7})
    assert sleeps == [0, 0, 0]
