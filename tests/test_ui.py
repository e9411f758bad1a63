"""The Dagster UI, tested for real (issue 7, item 6).

A cheap experiment (the imported German/Flattering reference study) is materialized into an
isolated instance — the experiment asset, its imported losses, three of its 49 prompt partitions
and its figures — then `inoc ui` (the code path a user types: `dagster dev` on 127.0.0.1, with
webserver and daemon) is started on a free port, and the test checks through the webserver's
GraphQL API that

- the experiment's asset group is listed with its assets,
- the prompt partitions exist with their materialization status (these three materialized, the
  rest missing),
- the figures asset's latest materialization shows its figures as small inline thumbnails, each
  linked to the full PNG in the artifact store, and names the figures it could not draw,
- the steps' log messages are in the run's event log, as the UI's run page shows them,

and takes screenshots of the group page, the prompt's partitions page and the figures asset's
events page with headless Chromium (Debian package `chromium`), checking that they show the real
content, not a loading spinner. Without Chromium the screenshots skip, unless
INOC_REQUIRE_CHROMIUM=1 (CI), where they fail. Screenshots are kept in the test's tmp folder and
copied to $INOC_UI_SCREENSHOT_DIR when that is set.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from inoc.settings import shared_dir

pytestmark = [pytest.mark.slow, pytest.mark.shared, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = "reference_gf_llama8b"
CONFIGS = ["reference_gf_llama8b.yaml", "german_flattering_llama8b.yaml"]  # the import and what it extends
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Runs in a fresh interpreter so the code location is imported with this test's settings (a module
# imported earlier in the pytest process would hold another experiments folder).
MATERIALIZE = r"""
import json, sys
from dagster import AssetKey, DagsterInstance
from inoc import settings
from inoc.config import load_experiment
from inoc_assets.partitions import prompt_partitions_name
from inoc_assets.runner import run_assets
from inoc_assets.sync import apply_sync, plan_sync

experiment = sys.argv[1]
settings.prepare_dagster_home()
with DagsterInstance.get() as instance:
    plan = plan_sync(instance, settings.experiments_dir())
    apply_sync(instance, plan)
    keys = instance.get_dynamic_partitions(prompt_partitions_name(experiment))
    configured = load_experiment(settings.experiments_dir() / f"{experiment}.yaml").prompt_keys
    # The losses (a 75 kB file) give the figures one panel with data.
    whole = run_assets(instance, [AssetKey([experiment, k]) for k in ("experiment", "imported_losses", "figures")], log_level="WARNING")
    # Three partitions in the middle (one single-run backfill): keys on both sides stay missing.
    part = run_assets(instance, [AssetKey([experiment, "prompt"])], partition_range=(keys[1], keys[3]), log_level="WARNING")
print(json.dumps({
    "errors": [str(e) for e in plan.errors], "keys": keys, "configured": list(configured), "materialized": keys[1:4],
    "runs": {"experiment_losses_figures": [whole.run_id, whole.success], "prompts": [part.run_id, part.success]},
}))
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


class UI:
    """A running `inoc ui` and what was materialized before it started."""

    def __init__(self, url: str, setup: dict, log: Path, tmp: Path):
        self.url, self.setup, self.log, self.tmp = url, setup, log, tmp
        self.location = self.repository = None

    def graphql(self, query: str, **variables) -> dict:
        r = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        r.raise_for_status()
        body = r.json()
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]

    def asset_node(self, name: str, fields: str, params: str = "", **variables) -> dict:
        """`fields` of the experiment's asset `name`; `params` declares extra query variables (", $x: T")."""
        data = self.graphql(
            f"query($key: AssetKeyInput!{params}) {{ assetNodeOrError(assetKey: $key) {{ __typename ... on AssetNode {{ {fields} }} }} }}",
            key={"path": [EXPERIMENT, name]},
            **variables,
        )
        node = data["assetNodeOrError"]
        assert node["__typename"] == "AssetNode", node
        return node


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[UI]:
    shared = shared_dir()
    if shared is None:
        pytest.skip(
            "reference data not found (inoc.settings.shared_dir() is None): set INOC_SHARED_DIR to the folder holding reference/"
        )
    tmp = tmp_path_factory.mktemp("ui")
    home, experiments = tmp / "inoc_home", tmp / "experiments"
    experiments.mkdir()
    for name in CONFIGS:
        shutil.copy(REPO / "experiments" / name, experiments / name)
    env = {k: v for k, v in os.environ.items() if k not in ("INOC_ARTIFACT_ROOT", "INOC_EXPERIMENTS")}
    env.update(
        INOC_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        INOC_EXPERIMENTS_DIR=str(experiments),
        INOC_SHARED_DIR=str(shared),
        PYTHONUNBUFFERED="1",
    )

    # 1. Register the prompt partitions and materialize through the persistent instance.
    proc = subprocess.run(
        [sys.executable, "-c", MATERIALIZE, EXPERIMENT], env=env, cwd=tmp, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    setup = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not setup["errors"], setup["errors"]
    for what, (run_id, ok) in setup["runs"].items():
        assert ok, f"run {run_id} ({what}) failed:\n{proc.stderr[-6000:]}"

    # 2. `inoc ui` on a free port, in its own process group (dagster dev, its webserver, daemon, code server).
    port = _free_port()
    log = tmp / "inoc_ui.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "inoc.cli", "ui", "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A shell's background job inherits SIGINT ignored; Ctrl-C must reach `dagster dev`.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        handle = UI(f"http://127.0.0.1:{port}", setup, log, tmp)
        _wait_until_ready(handle, server)
        yield handle
    finally:
        _stop(server)


def _wait_until_ready(ui: UI, server: subprocess.Popen, timeout: float = 150) -> None:
    """Until /server_info answers and the workspace has loaded the code location."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"inoc ui exited with {server.returncode}:\n{_tail(ui.log)}")
        try:
            info = requests.get(f"{ui.url}/server_info", timeout=5)
            if info.ok and "dagster_webserver_version" in info.json():
                data = ui.graphql(
                    """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                         locationOrLoadError { __typename ... on RepositoryLocation { name repositories { name } }
                                               ... on PythonError { message } } } } } }"""
                )
                entries = data["workspaceOrError"]["locationEntries"]
                loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
                errors = [
                    e["locationOrLoadError"] for e in loaded if e["locationOrLoadError"]["__typename"] == "PythonError"
                ]
                assert not errors, f"the code location failed to load: {errors}"
                if entries and len(loaded) == len(entries):
                    location = loaded[0]["locationOrLoadError"]
                    ui.location, ui.repository = location["name"], location["repositories"][0]["name"]
                    return
                last = entries
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"the UI was not ready within {timeout:.0f} s (last: {last}):\n{_tail(ui.log)}")


def _stop(server: subprocess.Popen) -> None:
    """Stop the whole process group: SIGINT (Ctrl-C, what a user does), then SIGKILL."""
    pgid = server.pid  # start_new_session: the leader's pid is the group id
    for sig, grace in ((signal.SIGINT, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            server.poll()
            try:
                os.killpg(pgid, 0)  # anyone left in the group?
            except ProcessLookupError:
                return
            time.sleep(0.2)
    server.wait(timeout=10)


# --- GraphQL -----------------------------------------------------------------------------------


def test_the_experiment_group_lists_its_assets(ui: UI):
    data = ui.graphql(
        """query($repo: RepositorySelector!) { repositoryOrError(repositorySelector: $repo) {
             __typename ... on Repository { assetGroups { groupName assetKeys { path } } } } }""",
        repo={"repositoryName": ui.repository, "repositoryLocationName": ui.location},
    )
    groups = {
        g["groupName"]: {"/".join(k["path"]) for k in g["assetKeys"]} for g in data["repositoryOrError"]["assetGroups"]
    }
    # One group per experiment `inoc ui` loads by default (`local`): the import, but not the cloud GPU
    # study it extends (that one takes `--experiment`), plus the cross-experiment slides.
    assert {EXPERIMENT, "slides"} <= set(groups) and "german_flattering_llama8b" not in groups, groups.keys()
    expected = {
        f"{EXPERIMENT}/{a}"
        for a in ("experiment", "prompt", "rephrasings", "imported_scores", "suppression", "figures")
    }
    assert expected <= groups[EXPERIMENT], groups[EXPERIMENT]

    nodes = ui.graphql(
        """query($group: AssetGroupSelector!) { assetNodes(group: $group) { assetKey { path } groupName isPartitioned } }""",
        group={"groupName": EXPERIMENT, "repositoryName": ui.repository, "repositoryLocationName": ui.location},
    )["assetNodes"]
    assert {"/".join(n["assetKey"]["path"]) for n in nodes} == groups[EXPERIMENT]
    assert {n["groupName"] for n in nodes} == {EXPERIMENT}
    partitioned = {n["assetKey"]["path"][-1] for n in nodes if n["isPartitioned"]}
    assert {"prompt", "rephrasings"} <= partitioned and "figures" not in partitioned


def test_prompt_partitions_show_their_materialization_status(ui: UI):
    keys, done = ui.setup["keys"], ui.setup["materialized"]
    # 49 prompts: the study's 48 and helpful_assistant of the production runs, in the YAML's order.
    assert keys == ui.setup["configured"] and len(keys) > 5 and len(done) == 3
    probe = [keys[0], *done, keys[4], keys[-1]]
    node = ui.asset_node(
        "prompt",
        """isPartitioned partitionKeys
           partitionStats { numMaterialized numPartitions numFailed numMaterializing }
           assetPartitionStatuses { __typename ... on DefaultPartitionStatuses {
             materializedPartitions unmaterializedPartitions failedPartitions materializingPartitions } }
           latestMaterializationByPartition(partitions: $parts) { partition runId }""",
        params=", $parts: [String!]",
        parts=probe,
    )
    assert node["isPartitioned"] and node["partitionKeys"] == keys
    assert node["partitionStats"] == {
        "numMaterialized": 3,
        "numPartitions": len(keys),
        "numFailed": 0,
        "numMaterializing": 0,
    }
    status = node["assetPartitionStatuses"]
    assert status["__typename"] == "DefaultPartitionStatuses"
    assert sorted(status["materializedPartitions"]) == sorted(done)
    assert sorted(status["unmaterializedPartitions"]) == sorted(set(keys) - set(done))
    assert status["failedPartitions"] == status["materializingPartitions"] == []
    latest = node["latestMaterializationByPartition"]
    run_id = ui.setup["runs"]["prompts"][0]
    assert [m and (m["partition"], m["runId"]) for m in latest] == [None, *[(k, run_id) for k in done], None, None]

    # The downstream per-prompt asset has the same partitions, none materialized.
    reph = ui.asset_node("rephrasings", "partitionKeys partitionStats { numMaterialized numPartitions }")
    assert reph["partitionKeys"] == keys and reph["partitionStats"] == {
        "numMaterialized": 0,
        "numPartitions": len(keys),
    }


def _figures(ui: UI) -> tuple[dict, dict[str, bytes], dict]:
    """The figures asset's latest materialization, its decoded PNGs by label, and its other entries."""
    node = ui.asset_node(
        "figures",
        """assetMaterializations(limit: 1) { runId partition metadataEntries { __typename label
             ... on MarkdownMetadataEntry { mdStr } ... on PathMetadataEntry { path } ... on IntMetadataEntry { intValue }
             ... on TextMetadataEntry { text } } }""",
    )
    assert len(node["assetMaterializations"]) == 1, "the figures asset has no materialization"
    event = node["assetMaterializations"][0]
    pngs, other = {}, {}
    for entry in event["metadataEntries"]:
        md = entry.get("mdStr") or ""
        m = re.fullmatch(r"!\[(?P<alt>[^\]]*)\]\(data:image/png;base64,(?P<b64>[A-Za-z0-9+/=]+)\)", md.strip())
        if entry["__typename"] == "MarkdownMetadataEntry" and m:
            pngs[entry["label"]] = base64.b64decode(m["b64"], validate=True)
        else:
            other[entry["label"]] = entry
    return event, pngs, other


def test_the_figures_materialization_carries_its_figures(ui: UI):
    from PIL import Image

    from inoc.figures import THUMBNAIL_PX

    event, pngs, other = _figures(ui)
    assert event["runId"] == ui.setup["runs"]["experiment_losses_figures"][0] and event["partition"] is None
    # The loss curves have data and are shown; the grids have none here, so they are not drawn and say why.
    assert "loss_curves" in pngs and not {"lls_grid", "fixed_vs_mix_grid"} & set(pngs), (set(pngs), set(other))
    for name in ("lls_grid", "fixed_vs_mix_grid"):
        assert other[f"{name}_not_drawn"]["__typename"] == "TextMetadataEntry", other.get(f"{name}_not_drawn")
    folder = Path(other["folder"]["path"])
    assert other["folder"]["__typename"] == "PathMetadataEntry" and folder.is_dir()
    for label, png in pngs.items():  # a small inline thumbnail of the full PNG the event links to
        assert png[:8] == PNG_MAGIC, (label, png[:16])
        with Image.open(io.BytesIO(png)) as img:
            img.load()
            assert img.format == "PNG" and 200 <= img.width <= THUMBNAIL_PX, (label, img.format, img.size)
            assert len(img.convert("RGB").getcolors(maxcolors=img.width * img.height)) > 20, f"{label}: a blank image"
            thumb = img.size
        full = Path(other[f"{label}_file"]["path"])
        assert full == folder / f"{label}.png" and full.read_bytes()[:8] == PNG_MAGIC
        with Image.open(full) as img:
            assert img.width > thumb[0] and abs(img.width / img.height - thumb[0] / thumb[1]) < 0.02, (
                label,
                img.size,
                thumb,
            )


def test_step_logs_are_in_the_runs_event_log(ui: UI):
    """What the UI's run page shows: each step's `context.log` messages, in the run's event log."""
    _, pngs, _ = _figures(ui)
    messages, events = {}, {}
    for what, (run_id, _) in ui.setup["runs"].items():
        data = ui.graphql(
            """query($runId: ID!) { logsForRun(runId: $runId, limit: 1000) { __typename
                 ... on EventConnection { events { __typename ... on MessageEvent { message level stepKey }
                                                   ... on MaterializationEvent { partition } } } } }""",
            runId=run_id,
        )["logsForRun"]
        assert data["__typename"] == "EventConnection", data
        events[what] = data["events"]
        messages[what] = [e for e in data["events"] if e["__typename"] == "LogMessageEvent"]
    wrote = [
        e
        for e in messages["experiment_losses_figures"]
        if e["message"].startswith(f"{EXPERIMENT}: wrote {len(pngs)} figures; not drawn: ")
    ]
    assert wrote and wrote[0]["level"] == "INFO" and wrote[0]["stepKey"] == f"{EXPERIMENT}__figures", messages
    assert any(
        re.fullmatch(rf"{EXPERIMENT}: {len(ui.setup['keys'])} prompts in \d+ groups, model .+", e["message"])
        for e in messages["experiment_losses_figures"]
    )
    # The prompt run: one materialization event per partition of its single-run backfill.
    parts = [e["partition"] for e in events["prompts"] if e["__typename"] == "MaterializationEvent"]
    assert sorted(parts) == sorted(ui.setup["materialized"]), parts


# --- Screenshots -------------------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    reason = "headless Chromium not installed (Debian: apt-get update && apt-get install -y chromium)"
    if os.environ.get("INOC_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"INOC_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(reason)


def _page_text(dom: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))


def _screenshot(ui: UI, chromium: str, route: str, name: str, expect: list[str]) -> Path:
    """Screenshot a UI route once it shows every `expect`ed text (the app renders client-side)."""
    out = ui.tmp / "screenshots"
    out.mkdir(exist_ok=True)
    png = out / f"{name}.png"
    text = ""
    for budget in (10_000, 20_000, 40_000):  # virtual ms: the page's timers and fetches, without waiting that long
        png.unlink(missing_ok=True)
        proc = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                f"--user-data-dir={ui.tmp / 'chromium-profile'}",
                "--window-size=1400,1000",
                f"--virtual-time-budget={budget}",
                f"--screenshot={png}",
                "--dump-dom",
                f"{ui.url}{route}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0 and png.is_file(), f"chromium failed on {route}:\n{proc.stderr[-3000:]}"
        text = _page_text(proc.stdout)
        if all(e in text for e in expect):
            break
    missing = [e for e in expect if e not in text]
    assert not missing, f"{route} never showed {missing}; the page read: {text[:2000]}"
    assert "Join the Dagster community" not in text  # the first-visit dialog would hide the page
    return png


def _assert_not_blank(png: Path) -> None:
    from PIL import Image

    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC, png
    with Image.open(png) as img:
        assert img.size == (1400, 1000), img.size
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24)
    background = max(count for count, _ in colours)
    covered = 1 - background / (1400 * 1000)
    # A loading page is a small spinner on white: few colours, almost all background.
    assert len(colours) > 200 and covered > 0.01, (
        f"{png}: looks blank ({len(colours)} colours, {covered:.1%} non-background)"
    )


def test_screenshots_show_the_group_partitions_and_figures(ui: UI):
    chromium = _chromium()
    ui.graphql("mutation { setNuxSeen }")  # what "Skip" on the first-visit dialog does
    keys, done = ui.setup["keys"], ui.setup["materialized"]
    _, pngs, _ = _figures(ui)
    run_id = ui.setup["runs"]["experiment_losses_figures"][0]
    shots = [
        _screenshot(
            ui,
            chromium,
            f"/locations/{ui.location}/asset-groups/{EXPERIMENT}",
            "asset_group",
            [
                EXPERIMENT,
                "experiment",
                "prompt",
                "figures",
                "imported_scores",
                "prompt_geometry",
            ],  # at the group's zoom the lineage renders node names only: statuses are on the next page
        ),
        _screenshot(
            ui,
            chromium,
            f"/assets/{EXPERIMENT}/prompt?view=partitions",
            "prompt_partitions",
            [f"Materialized ({len(done)})", f"Missing ({len(keys) - len(done)})", *done, keys[0]],
        ),
        _screenshot(
            ui,
            chromium,
            f"/assets/{EXPERIMENT}/figures?view=events",
            "figures_materialization",
            ["Materialized in run", run_id[:8], *pngs, "folder"],
        ),
    ]
    for png in shots:
        _assert_not_blank(png)
    if target := os.environ.get("INOC_UI_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        for png in shots:
            shutil.copy(png, Path(target) / png.name)
