"""The demo's UI in a real browser: Playwright drives Debian's chromium against `dagster dev`.

From the asset catalog, one partition of a collector is materialised through the partitions
launch dialog; the test waits in the UI for the run's success, then reads the partition's
metadata (record count, sample table) and the Checks tab, and cross-checks each with what the
instance recorded (GraphQL) and what the audit sink wrote. Screenshots of every step are kept in
signals_dagster_tests/artifacts/<test>/ (see servers/browser.py).
"""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from signals_dagster_tests.servers.browser import DemoWebserver

if TYPE_CHECKING:
    from playwright.sync_api import Page

ASSET = "shop_orders_revenue_daily"
METRIC = "shop.orders.revenue"
PARTITION = "2026-06-10"
# The contract's check (collectors/metrics.yaml) and the collector's own (its `checks:`).
AT_LEAST_CHECKS = {"contract", "range", "day_over_day"}
SAMPLE_ROWS = 20  # signals_dagster.orchestration.factory.SAMPLE_ROWS
RUN_TIMEOUT_MS = 90_000  # queued, started and executed on a busy machine

_RUN = """
query ($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run {
    status tags { key value } assetSelection { path }
    eventConnection { events { __typename
        ... on MessageEvent { message }
        ... on ErrorEvent { error { message } } } } } } }
"""
_ASSET = """
query ($key: AssetKeyInput!, $partition: String!) { assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
        assetChecksOrError { ... on AssetChecks { checks { name } } }
        assetMaterializations(partitions: [$partition], limit: 1) { runId partition
            metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }
"""
_CHECK = """
query ($key: AssetKeyInput!, $check: String!) {
    assetCheckExecutions(assetKey: $key, checkName: $check, limit: 1) {
        runId status partition evaluation { success } } }
"""
KEY = {"path": [ASSET]}


def _run(server: DemoWebserver, run_id: str) -> dict[str, Any]:
    run = server.graphql(_RUN, runId=run_id)["runOrError"]
    assert run["__typename"] == "Run", run
    return dict(run)


def _run_problems(run: dict[str, Any]) -> str:
    lines = []
    for event in run["eventConnection"]["events"]:
        if "Failure" in event["__typename"] or event.get("error"):
            lines.append(f"{event['__typename']}: {event.get('message', '')}")
            if event.get("error"):
                lines.append(event["error"]["message"])
    return "\n".join(lines)


def _audit_records(audit: Path) -> list[dict[str, Any]]:
    """The records the file sink wrote for the partition."""
    lines = audit.read_text(encoding="utf-8").splitlines() if audit.exists() else []
    records = [json.loads(line) for line in lines if line.strip()]
    return [
        r
        for r in records
        if r["name"] == METRIC and r["grain_datetime"].startswith(f"{PARTITION}T")
    ]


@pytest.mark.timeout(240)
def test_materialise_a_partition_from_the_ui(
    demo_webserver: DemoWebserver, browser_page: "Page", shot: Callable[[str], Path]
) -> None:
    from playwright.sync_api import expect

    page, server = browser_page, demo_webserver

    # The asset catalog lists the demo's collectors; open one.
    page.goto(f"{server.url}/assets")
    link = page.get_by_role("link", name=ASSET)
    expect(link).to_be_visible()
    shot("catalog")
    link.click()
    expect(page).to_have_url(re.compile(rf"/assets/{ASSET}(\?|$)"))
    materialize = page.get_by_role("button", name="Materialize…")  # its icon: "materialization"
    expect(materialize).to_be_enabled()
    expect(page.get_by_text("Never materialized", exact=True)).to_be_visible()  # a fresh instance
    shot("asset")

    # The partitions launch dialog: one partition, one run.
    materialize.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Launch runs to materialize {ASSET}")
    partitions = dialog.get_by_role("textbox")
    expect(partitions).to_be_visible()
    show_all = dialog.get_by_role("button", name="Show all partitions")
    if show_all.is_visible():  # more than 90 partitions: the dialog shows the last 90 days
        show_all.click()
    partitions.fill(PARTITION)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    shot("launch-dialog")
    launch.click()

    # The toast names the run and links to it.
    view = page.get_by_role("link", name="View", exact=True)
    expect(view).to_have_attribute("href", re.compile(r"^/runs/[0-9a-f-]{36}$"))
    run_id = str(view.get_attribute("href")).rsplit("/", 1)[1]
    shot("launched")
    launched = _run(server, run_id)
    tags = {t["key"]: t["value"] for t in launched["tags"]}
    assert tags.get("dagster/partition") == PARTITION, tags
    assert launched["assetSelection"] == [{"path": [ASSET]}]

    # The run's page, until the run ends.
    view.click()
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}"))
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(status).to_be_visible(timeout=RUN_TIMEOUT_MS)
    shot("run")
    ended = _run(server, run_id)
    assert status.inner_text() == "Success", f"{ended['status']}:\n{_run_problems(ended)}"
    assert ended["status"] == "SUCCESS", _run_problems(ended)

    # What the instance recorded for the partition, and what the audit sink wrote.
    node = server.graphql(_ASSET, key=KEY, partition=PARTITION)["assetNodeOrError"]
    (materialization,) = node["assetMaterializations"]
    assert materialization["runId"] == run_id
    assert materialization["partition"] == PARTITION
    recorded = {e["label"]: e.get("intValue") for e in materialization["metadataEntries"]}
    record_count = recorded["record_count"]
    assert isinstance(record_count, int)
    assert record_count > 0
    written = _audit_records(server.audit)
    assert len(written) == record_count

    # The partition's metadata in the UI: record_count and the sample table.
    page.goto(f"{server.url}/assets/{ASSET}")
    page.get_by_role("tab", name="Partitions").click()
    page.get_by_placeholder(re.compile(r"^Filter by name")).fill(PARTITION)
    page.get_by_text(PARTITION, exact=True).first.click()
    expect(page).to_have_url(re.compile(rf"partition={PARTITION}"))
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    rows = page.get_by_role("row")
    count_row = rows.filter(has=page.get_by_text("record_count", exact=True))
    expect(count_row.get_by_role("cell").nth(1)).to_have_text(str(record_count))
    sample = rows.filter(has=page.get_by_text("sample", exact=True)).get_by_role("table")
    expect(sample).to_be_visible()
    sample_rows = sample.get_by_role("row")
    expect(sample_rows.first).to_contain_text("uuid")
    expect(sample_rows.first).to_contain_text("grain_datetime")
    expect(sample_rows).to_have_count(1 + min(record_count, SAMPLE_ROWS))
    shown = [row.inner_text() for row in sample_rows.all()[1:]]
    assert all(f"{PARTITION}T00:00:00Z" in text for text in shown), shown
    assert {text.split()[0] for text in shown} <= {r["uuid"] for r in written}
    sample.scroll_into_view_if_needed()
    shot("partition-metadata")

    # The Checks tab: every check of the asset, passed on the partition.
    names = [c["name"] for c in node["assetChecksOrError"]["checks"]]
    assert set(names) >= AT_LEAST_CHECKS, names
    page.get_by_role("tab", name="Checks").click()
    expect(page.get_by_text(f"Checks ({len(names)})", exact=True)).to_be_visible()
    shot("checks")
    for name in names:
        item = page.get_by_title(name, exact=True).first
        expect(item.locator("xpath=..")).to_contain_text("Succeeded")
        item.click()
        expect(page).to_have_url(re.compile(rf"checkDetail={name}(&|$)"))
        header = page.get_by_role("img", name="asset_check", exact=True).locator("xpath=..")
        expect(header).to_have_text(name)
        result = page.get_by_text("Evaluation result", exact=True).locator("xpath=..")
        expect(result).to_contain_text("Passed")
        partition = page.get_by_text("Partition", exact=True).locator("xpath=..")
        expect(partition).to_contain_text(PARTITION)
        executed = page.get_by_text("Timestamp", exact=True).locator("xpath=..").get_by_role("link")
        expect(executed).to_have_attribute("href", re.compile(rf"^/runs/{run_id}\b"))
        shot(f"check-{name}")
        (execution,) = server.graphql(_CHECK, key=KEY, check=name)["assetCheckExecutions"]
        assert execution["runId"] == run_id, (name, execution)
        assert execution["status"] == "SUCCEEDED", (name, execution)
        assert execution["partition"] == PARTITION, (name, execution)
        assert execution["evaluation"]["success"] is True, (name, execution)
