"""Location: one path-like API over local folders and pyarrow URIs."""

from __future__ import annotations

import pytest

from deepnets.errors import ConfigError
from deepnets.storage import Location, check_location


@pytest.mark.parametrize("as_uri", [False, True], ids=["local", "file-uri"])
def test_write_read_list_delete(tmp_path, as_uri):
    root = Location(f"file://{tmp_path}" if as_uri else tmp_path)
    target = root / "a" / "b.json"
    assert not target.exists()
    target.write_text("one")
    target.write_text("two")  # replaced whole
    assert target.exists() and target.read_text() == "two"
    assert [c.name for c in (root / "a").children()] == ["b.json"]
    assert target.name == "b.json" and target.parent == root / "a"
    assert list((tmp_path / "a").iterdir()) == [tmp_path / "a" / "b.json"]  # no temp files left
    target.delete()
    assert not target.exists() and (root / "missing").children() == []


def test_unknown_scheme_is_refused():
    assert check_location("s3://bucket/runs", "output_dir") == "s3://bucket/runs"
    with pytest.raises(ConfigError, match=r"output_dir: unknown storage scheme 'ftp://'"):
        check_location("ftp://host/runs", "output_dir")


def test_local_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Location("runs").local_path == tmp_path / "runs"
    with pytest.raises(ValueError):
        _ = Location("s3://bucket/x").local_path
