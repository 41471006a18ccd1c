"""`ingest --append` from a bucket: an incoming prefix a loop passes every run. Objects the
dataset holds already, unchanged (size and etag), are not downloaded again; a rewritten
one is, and refused; the spans equal those appended from local files."""

from __future__ import annotations

import pytest

from mlstage import ingest
from mlstage.core import objstore as client
from mlstage.core.s3url import S3Url
from mlstage.errors import BadInput
from mlstage.stages.spans import append

from ..unit.test_spans import _day, _rows


@pytest.fixture
def downloads(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = client.download

    def counted(url, target):
        seen.append(str(url))
        return real(url, target)

    monkeypatch.setattr(client, "download", counted)
    return seen


def test_appending_a_prefix_downloads_only_what_is_new_or_changed(bucket, tmp_path, downloads):
    st = tmp_path / "store"
    days = [_day(tmp_path / f"2026-12-0{k + 1}.csv", k, rows=2_000) for k in range(4)]
    for at in ("d", "b"):
        ingest(days[:1], tmp_path / at, split={"train": 8, "eval": 2}, store=st)
    incoming = f"s3://{bucket}/incoming/"
    for f in days[1:3]:
        client.put(S3Url.parse(incoming + f.name), f)
    grown = append([incoming], tmp_path / "d", tmp_path / "d", store=st)
    assert sorted(downloads) == [incoming + f.name for f in days[1:3]]
    spans = grown.manifest["summary"]["spans"]
    assert [[s["path"] for s in span["sources"]] for span in spans[1:]] == [
        [incoming + f.name for f in days[1:3]]]  # fmt: skip
    assert all(s["etag"] for s in spans[1]["sources"])
    local = append(days[1:3], tmp_path / "b", tmp_path / "local", store=st)
    for split in ("train", "eval"):  # the same rows as appending the local files
        assert _rows(grown, split).equals(_rows(local, split))
    downloads.clear()
    again = append([incoming], tmp_path / "d", tmp_path / "d", store=st)
    assert again.up_to_date and downloads == []  # nothing downloaded to find nothing new
    client.put(S3Url.parse(incoming + days[3].name), days[3])
    week = append([incoming], tmp_path / "d", tmp_path / "d", window="2d", store=st)
    assert downloads == [incoming + days[3].name]
    # a span is dated by its latest file: the 2nd-and-3rd span (the 3rd) and the 4th are
    # within 2 days of the 4th; the base (the 1st) is dropped
    assert [span["sources"][0]["path"] for span in week.manifest["summary"]["spans"]] == [
        incoming + days[1].name, incoming + days[3].name]  # fmt: skip
    # a rewritten object is downloaded again, and refused: its old rows are in the dataset
    downloads.clear()
    client.put(S3Url.parse(incoming + days[2].name), days[0])
    with pytest.raises(BadInput, match="with other contents"):
        append([incoming], tmp_path / "d", tmp_path / "d", store=st)
    assert downloads == [incoming + days[2].name]
