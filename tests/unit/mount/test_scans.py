"""ScanReadAhead: which files a scan's opens name for loading, in what order, each once."""

from __future__ import annotations

from airflow_hybrid.mount import scans
from airflow_hybrid.mount.scans import ScanFile, ScanReadAhead
from airflow_hybrid.stores.base import FileInfo


def files(n: int, prefix: str = "t/f") -> list[ScanFile]:
    return [ScanFile(f"{prefix}{i}", "hdfs", FileInfo(path=f"{prefix}{i}", size=10, mtime=0.0)) for i in range(n)]


def paths(named: list[ScanFile]) -> list[str]:
    return [f.path for f in named]


def test_opens_in_order_name_a_window_ahead_each_file_once():
    ahead = ScanReadAhead()
    ahead.record("m", "t/*", files(10))
    assert paths(ahead.opened("m", "t/f0", 3)) == ["t/f0", "t/f1", "t/f2", "t/f3"]
    assert paths(ahead.opened("m", "t/f1", 3)) == ["t/f4"]
    assert paths(ahead.opened("m", "t/f2", 3)) == ["t/f5"]
    assert paths(ahead.opened("m", "t/f3", 0)) == []  # a warm open: marked, nothing named
    assert paths(ahead.opened("m", "t/f4", 3)) == ["t/f6", "t/f7"]  # continues after the warm one
    assert paths(ahead.opened("m", "t/f9", 3)) == []  # a jump
    assert paths(ahead.opened("m", "t/f5", 3)) == ["t/f8"]  # 3 after it; f9 once f6 opens


def test_a_jump_names_nothing_until_the_next_file_follows_it():
    ahead = ScanReadAhead()
    ahead.record("m", "t/*", files(10))
    assert ahead.opened("m", "t/f5", 2) == []
    assert paths(ahead.opened("m", "t/f6", 2)) == ["t/f6", "t/f7", "t/f8"]
    assert ahead.opened("m", "other", 2) == [] and ahead.opened("n", "t/f7", 2) == []  # not globbed here


def test_old_globs_are_forgotten_and_a_glob_again_starts_afresh():
    ahead = ScanReadAhead()
    for i in range(scans.SCANS_KEPT + 1):
        ahead.record("m", f"d{i}/*", files(2, prefix=f"d{i}/f"))
    assert ahead.opened("m", "d0/f0", 1) == []  # the oldest glob is forgotten
    assert paths(ahead.opened("m", f"d{scans.SCANS_KEPT}/f0", 1)) == [f"d{scans.SCANS_KEPT}/f0", f"d{scans.SCANS_KEPT}/f1"]
    ahead.record("m", f"d{scans.SCANS_KEPT}/*", files(2, prefix=f"d{scans.SCANS_KEPT}/f"))
    assert len(ahead.opened("m", f"d{scans.SCANS_KEPT}/f0", 1)) == 2  # globbed again: named again


def test_a_glob_beyond_the_kept_size_reads_ahead_over_its_first_files(monkeypatch):
    monkeypatch.setattr(scans, "SCAN_FILES_KEPT", 3)
    ahead = ScanReadAhead()
    ahead.record("m", "t/*", files(5))
    assert paths(ahead.opened("m", "t/f2", 0) + ahead.opened("m", "t/f0", 9)) == ["t/f0", "t/f1", "t/f2"]
    assert ahead.opened("m", "t/f3", 9) == []
