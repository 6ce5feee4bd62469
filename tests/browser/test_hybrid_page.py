"""The "Hybrid lake" page in the UI (Browse > Hybrid lake): a mount's members and its cache figures, checked
against the mount's cache catalog.

The mount is made here: members over local directories, one tier ``SSD`` with a SQLite catalog, files cached by
a prefetch, one pinned, and reads through the mount (hits on cached files, a miss that caches one more). Its
connection is created through the REST API as the UI user, and the API server reads the same catalog file. A
migration policy on the mount, never run, shows as a card with its DAG and no runs.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from airflow_hybrid.cache import ops
from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.cache.schema import READY
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.values import format_bytes
from tests.mounts import local_mount_extra

MOUNT = "browser_lake"
TIER = "SSD"
FILES = {"sales/big.bin": 300_000, "sales/mid.bin": 120_000, "sales/small.bin": 40_000, "sales/cold.bin": 10_000}
PREFETCHED = ["sales/big.bin", "sales/mid.bin", "sales/small.bin"]
PINNED = ["sales/mid.bin"]
#: Reads through the mount: three of cached files (hits), one of a file not cached (a miss that caches it).
READS = ["sales/big.bin", "sales/big.bin", "sales/small.bin", "sales/cold.bin"]
POLICY = "browser_sales_to_s3"


@pytest.fixture(scope="module")
def lake(tmp_path_factory, airflow_ui) -> dict[str, Any]:
    """The mount's connection extra, after its cache was filled, and its connection in the deployment."""
    root = tmp_path_factory.mktemp("browser-lake")
    for rel, size in FILES.items():
        target = root / "hdfs" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(size))
    (root / "s3").mkdir()
    extra = local_mount_extra(root, "hdfs,s3", "s3", {TIER: "1MB"})
    with HybridMount.from_options(MOUNT, extra) as mount:
        ops.prefetch(mount, PREFETCHED)
        ops.pin(mount, PINNED)
        for rel in READS:
            with mount.open_read(rel) as stream:
                stream.read()
    # the policies file the page reads by default (hybrid_policies.yaml in the deployment's DAGs folder)
    policies = airflow_ui.deployment.home / "dags" / "hybrid_policies.yaml"
    policies.parent.mkdir(exist_ok=True)
    policies.write_text(json.dumps({"policies": [
        {"name": POLICY, "mount": MOUNT, "path": "/sales", "schedule": None,
         "policy": "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"},
    ]}))
    airflow_ui.api("POST", "/connections", json={"connection_id": MOUNT, "conn_type": "hybrid_mount",
                                                 "extra": json.dumps(extra)})
    return extra


def catalog_figures(extra: dict[str, Any]) -> tuple[Any, list[tuple[str, int, bool]]]:
    """The tier's usage row and the ready entries ``(path, size, pinned)``, read from the catalog itself."""
    with Catalog(extra["cache"]["catalog_url"], read_only=True) as catalog:
        (usage,) = [u for u in catalog.usage(MOUNT) if u.alias == TIER]
        entries = catalog.t.entries
        with catalog.read() as conn:
            rows = conn.execute(sa.select(entries.c.path, entries.c.size, entries.c.pinned)
                                .where(entries.c.mount == MOUNT, entries.c.state == READY)).all()
    return usage, [(path, int(size), bool(pinned)) for path, size, pinned in rows]


def test_the_hybrid_lake_page_shows_the_mount_and_the_figures_of_its_cache_catalog(browser, lake):
    usage, entries = catalog_figures(lake)
    # what the set-up did, as the catalog has it (else the page would be checked against the wrong figures)
    assert sorted(path for path, _, _ in entries) == sorted(FILES), entries
    assert (usage.hits, usage.misses, usage.pinned_bytes) == (3, 1, FILES["sales/mid.bin"]), usage

    seen = browser.run("hybrid_page", navLabel="Hybrid lake", waitFor=f"mount-{MOUNT}")
    page = {node["testid"]: node for node in seen["testids"]}
    shot = seen["screenshots"][-1]

    assert urlsplit(seen["frameUrl"]).path == "/hybrid/", (
        f"expected Browse > Hybrid lake to show the package's page /hybrid/, it shows {seen['frameUrl']}; {shot}"
    )
    assert f"mount-errors-{MOUNT}" not in page, f"the page shows errors: {page[f'mount-errors-{MOUNT}']['text']}"
    for rank, member in enumerate(["hdfs", "s3"], start=1):
        row = page.get(f"member-{MOUNT}-{member}")
        assert row is not None, f"expected a row of member {member}; the page's test ids: {sorted(page)}; {shot}"
        assert lake["members"][member]["uri"] in row["text"] and f"read #{rank}" in row["text"], (
            f"expected member {member} with {lake['members'][member]['uri']} read #{rank}, the row says {row['text']!r}"
        )
    assert "new files" in page[f"member-{MOUNT}-s3"]["text"], page[f"member-{MOUNT}-s3"]["text"]

    tier = page.get(f"tier-usage-{MOUNT}-{TIER}")
    assert tier is not None, f"expected the usage of tier {TIER}; the page's test ids: {sorted(page)}; {shot}"
    capacity, used, pinned = usage.quota, usage.reserved, usage.pinned_bytes
    shown = {key: int(tier["data"][key]) for key in ("capacityBytes", "usedBytes", "pinnedBytes", "freeBytes")}
    expected = {"capacityBytes": capacity, "usedBytes": used, "pinnedBytes": pinned, "freeBytes": capacity - used}
    assert shown == expected, f"expected the tier's figures {expected} (the catalog's), the page has {shown}; {shot}"
    for text in (f"{format_bytes(used)} of {format_bytes(capacity)} used ({100 * used / capacity:.1f}%)",
                 f"pinned {format_bytes(pinned)} ({100 * pinned / capacity:.1f}%)",
                 f"free {format_bytes(capacity - used)}"):
        assert text in tier["text"], f"expected {text!r} in the tier's usage, it reads {tier['text']!r}; {shot}"

    ratio = usage.hits / (usage.hits + usage.misses)
    hit_ratio = page[f"hit-ratio-{MOUNT}-{TIER}"]
    assert float(hit_ratio["data"]["hitRatio"]) == pytest.approx(ratio), hit_ratio
    for text in (f"{100 * ratio:.1f}%", f"{usage.hits} hits, {usage.misses} misses"):
        assert text in hit_ratio["text"], f"expected {text!r} in the hit ratio, it reads {hit_ratio['text']!r}"

    by_size = sorted(entries, key=lambda e: (-e[1], e[0]))
    largest = [(item["data"]["path"], int(item["data"]["sizeBytes"])) for item in page[f"largest-{MOUNT}"]["items"]]
    assert largest == [(path, size) for path, size, _ in by_size], (
        f"expected the largest entries {[(p, s) for p, s, _ in by_size]} (the catalog's, by size), "
        f"the page lists {largest}; {shot}"
    )
    for item, (path, size, is_pinned) in zip(page[f"largest-{MOUNT}"]["items"], by_size, strict=True):
        assert format_bytes(size) in item["text"], f"expected {format_bytes(size)} for {path}: {item['text']!r}"
        assert ("pinned" in item["text"]) == is_pinned, f"{path} pinned={is_pinned}, the row says {item['text']!r}"
    pinned_rows = [(item["data"]["path"], int(item["data"]["sizeBytes"])) for item in page[f"pinned-{MOUNT}"]["items"]]
    assert pinned_rows == [(path, size) for path, size, is_pinned in by_size if is_pinned], (
        f"expected the pinned entries {[(p, s) for p, s, pin in by_size if pin]}, the page lists {pinned_rows}; {shot}"
    )

    policy = page.get(f"policy-{POLICY}")
    assert policy is not None, f"expected the card of policy {POLICY}; the page's test ids: {sorted(page)}; {shot}"
    for text in (f"{MOUNT}:sales", f"hybrid_migrate_{POLICY}", "unknown until the first plan"):
        assert text in policy["text"], f"expected {text!r} in the card of {POLICY}, it reads {policy['text']!r}"
    assert f"no-runs-{POLICY}" in page, f"expected the explained 'No runs yet' of {POLICY}: {policy['text']!r}"


def test_opening_the_page_without_a_session_goes_through_the_login_page_and_back(browser, lake):
    seen = browser.run("hybrid_page", path="/hybrid/", waitFor=f"mount-{MOUNT}")

    assert urlsplit(seen["loginUrl"]).path == "/auth/login", (
        f"expected /hybrid/ without a session to show Airflow's login page, it showed {seen['loginUrl']}"
    )
    assert urlsplit(seen["url"]).path == "/hybrid/" and seen["frameUrl"] == seen["url"], (
        f"expected the login to return to /hybrid/ itself, the browser is on {seen['url']}"
    )
    page = {node["testid"]: node for node in seen["testids"]}
    usage, _ = catalog_figures(lake)
    assert int(page[f"tier-usage-{MOUNT}-{TIER}"]["data"]["usedBytes"]) == usage.reserved, page.get(
        f"tier-usage-{MOUNT}-{TIER}")
