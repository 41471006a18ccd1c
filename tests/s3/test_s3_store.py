"""The store, outputs and inputs in object storage."""

from __future__ import annotations

from ..conftest import SAMPLE, cli


def test_smoke(bucket, adult_small, tmp_path):
    store = f"s3://{bucket}/store"
    r = cli("ingest", str(adult_small), "--null", "?", "--split", "train=8", "--split", "eval=2",
            "-o", f"s3://{bucket}/data/adult", "--store", store, "--debug")
    print(r.stdout, r.stderr)
    assert r.exit_code == 0
    r = cli("stats", f"s3://{bucket}/data/adult", "-o", f"s3://{bucket}/stats/adult", "--store", store, "--debug")
    print(r.stdout, r.stderr)
    assert r.exit_code == 0
    r = cli("stats", f"s3://{bucket}/data/adult", "-o", f"s3://{bucket}/stats/adult", "--store", store, "--debug")
    print(r.stdout, r.stderr)
    assert "up to date" in r.stderr
    r = cli("log", "--store", store, "--debug")
    print(r.stdout, r.stderr)
    assert 0
