"""The explorer in a real headless Chromium, on a real devnet (four node processes, the daemon).

The network page shows the devnet's committee (names, URLs, shards) with every node healthy; a
blob stored through the page's upload box appears on its blob page as certified, and its download
link gives back the same bytes; a video (recorded in the page itself by Chromium's
MediaRecorder) stored the same way plays in the blob page's `<video>`, fetched with `Range`
requests; `walruspy explorer` serves the same page on its own; a node killed with SIGKILL shows
unhealthy on the network page within 10 s, without a reload.

Chromium is Debian's (`/usr/bin/chromium`, installed by `.ci/run`), driven by Playwright without
its own browsers. With `WALRUSPY_SCREENSHOTS=DIR` the tests save the README's screenshots of the
network and blob pages there (`docs/explorer-network.png`, `docs/explorer-blob.png`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import async_playwright

from tests.devnet.conftest import TEST_EPOCH_S
from walruspy.daemon import READY_PREFIX
from walruspy.devnet import Devnet, open_devnet

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Waits for what the page shows: a store and its certification take seconds on two cores.
PAGE_TIMEOUT_MS = 60_000
#: The acceptance bound for a killed node to show unhealthy.
UNHEALTHY_WITHIN_S = 10.0
SCREENSHOTS = os.environ.get("WALRUSPY_SCREENSHOTS")

#: A small PNG drawn by the page (a gradient and a caption), as a data: URL's base64.
DRAW_PNG = """() => {
  const c = document.createElement('canvas'); c.width = 320; c.height = 180;
  const g = c.getContext('2d');
  const grad = g.createLinearGradient(0, 0, 320, 180);
  grad.addColorStop(0, '#2563eb'); grad.addColorStop(1, '#13c2a3');
  g.fillStyle = grad; g.fillRect(0, 0, 320, 180);
  g.fillStyle = '#fff'; g.font = 'bold 28px sans-serif'; g.fillText('walruspy', 24, 100);
  return c.toDataURL('image/png').split(',')[1];
}"""
#: Two seconds of a changing canvas, recorded as WebM (VP8) by MediaRecorder, as base64.
RECORD_WEBM = """async () => {
  const c = document.createElement('canvas'); c.width = 160; c.height = 120;
  document.body.append(c);
  const g = c.getContext('2d');
  let i = 0;
  const timer = setInterval(() => {
    g.fillStyle = `hsl(${(i++ * 15) % 360}, 80%, 50%)`; g.fillRect(0, 0, 160, 120);
  }, 40);
  const recorder = new MediaRecorder(c.captureStream(25), {mimeType: 'video/webm;codecs=vp8'});
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start(100);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  recorder.stop(); await stopped; clearInterval(timer); c.remove();
  const data = new Uint8Array(await new Blob(chunks).arrayBuffer());
  let text = '';
  for (const byte of data) text += String.fromCharCode(byte);
  return btoa(text);
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("explorer")
    async with open_devnet(directory, n_nodes=4, n_shards=40, epoch_duration_s=TEST_EPOCH_S) as dn:
        yield dn


def chromium() -> str:
    """Debian's Chromium; the suite fails without it (CI installs it), it does not skip."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    return str(CHROMIUM)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = await context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    yield page
    await context.close()


def screenshot_path(name: str) -> str | None:
    """Where to save screenshot `name` (None: screenshots are off)."""
    if not SCREENSHOTS:
        return None
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    return str(Path(SCREENSHOTS) / name)


async def screenshot(page: Any, name: str) -> None:
    path = screenshot_path(name)
    if path is not None:
        await page.screenshot(path=path, full_page=True)


async def upload(page: Any, devnet: Devnet, name: str, mime: str, data: bytes) -> str:
    """Store `data` through the network page's upload box; the blob ID of the page it opens."""
    await page.goto(f"{devnet.aggregator_url}/")
    await page.set_input_files("#upload-file", {"name": name, "mimeType": mime, "buffer": data})
    await page.fill("#upload-epochs", "2")
    await page.click("#upload-button")
    await page.wait_for_url("**/blobs/*")
    await page.wait_for_selector("h1 [data-state=certified]")
    return str(page.url.rsplit("/", 1)[-1])


async def test_network_page_shows_the_committee(page: Any, devnet: Devnet) -> None:
    await page.goto(f"{devnet.aggregator_url}/")
    await page.wait_for_selector("#committee tbody tr[data-health=healthy] >> nth=3")
    rows = page.locator("#committee tbody tr")
    assert await rows.count() == len(devnet.nodes)
    urls = {await rows.nth(i).locator("td >> nth=2").inner_text() for i in range(len(devnet.nodes))}
    assert urls == {node.url for node in devnet.nodes}
    shards = [int(await rows.nth(i).locator(".shards").inner_text()) for i in range(4)]
    assert sum(shards) == 40
    names = [await rows.nth(i).locator(".name").inner_text() for i in range(4)]
    assert all(names)
    assert (await page.inner_text("#epoch")).isdecimal()
    assert "next change in" in await page.inner_text("#next-change")
    await page.click("header >> text=API")  # the OpenAPI document, rendered for a browser
    await page.wait_for_selector("section#get_blob h3")
    assert "/v1/blobs/{blob_id}" in await page.inner_text("section#get_blob h3")
    if (path := screenshot_path("explorer-api.png")) is not None:
        await page.screenshot(path=path)


async def test_a_blob_stored_through_the_upload_box(
    page: Any, devnet: Devnet, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await page.goto(f"{devnet.aggregator_url}/")
    data = base64.b64decode(await page.evaluate(DRAW_PNG))
    blob_id = await upload(page, devnet, "walruspy.png", "image/png", data)
    assert await page.inner_text("#blob-size") == f"{len(data) / 1024:.1f} KiB ({len(data)} bytes)"
    assert await page.inner_text("#blob-type") == "image/png"
    assert "0x" in await page.inner_text("#blob-owner")
    image = page.locator("#preview img")
    await page.wait_for_function("() => document.querySelector('#preview img')?.naturalWidth > 0")
    assert await image.evaluate("img => img.naturalWidth") == 320
    await page.wait_for_selector("#holding tbody tr[data-holds=yes] >> nth=3")
    async with page.expect_download() as download_info:
        await page.click("#download")
    download = await download_info.value
    target = tmp_path / "downloaded"
    await download.save_as(str(target))
    assert await asyncio.to_thread(target.read_bytes) == data
    async with http.get(f"{devnet.aggregator_url}/v1/blobs/{blob_id}") as response:
        assert await response.read() == data
    await screenshot(page, "explorer-blob.png")


async def test_a_video_plays_from_range_requests(page: Any, devnet: Devnet) -> None:
    await page.goto(f"{devnet.aggregator_url}/")
    data = base64.b64decode(await page.evaluate(RECORD_WEBM))
    assert data[:4] == b"\x1aE\xdf\xa3"
    ranges: list[tuple[str, int]] = []

    def seen(response: Any) -> None:
        if "/v1/blobs/" in response.url and "range" in response.request.headers:
            ranges.append((response.request.headers["range"], response.status))

    page.on("response", seen)
    await upload(page, devnet, "clip.webm", "video/webm", data)
    assert await page.inner_text("#blob-type") == "video/webm"
    video = page.locator("#preview video")
    await video.evaluate("v => { v.muted = true; return v.play(); }")
    await page.wait_for_function(
        "() => { const v = document.querySelector('#preview video');"
        " return v.readyState >= 2 && v.currentTime > 0.5; }"
    )
    assert await video.evaluate("v => v.error") is None
    assert ranges and all(status == 206 for _, status in ranges), ranges


async def test_the_explorer_command_serves_the_page_alone(page: Any, devnet: Devnet) -> None:
    """`walruspy explorer`: an aggregator with the page, uploading to the publisher it is given."""
    args = ["--bind-address", "127.0.0.1:0", "--config", str(devnet.client_config_path)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walruspy.cli.main", "explorer", *args,
        "--publisher-url", devnet.publisher_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            line = (await process.stdout.readline()).decode()
        assert line.startswith(READY_PREFIX) and line.rstrip().endswith("mode=aggregator")
        url = line.split()[4]
        await page.goto(f"{url}/")
        await page.wait_for_selector("#committee tbody tr[data-health=healthy] >> nth=3")
        assert await page.locator("#upload-file").count() == 1
        await page.wait_for_selector("#recent tbody tr >> nth=1")
        first = page.locator("#recent tbody tr a >> nth=0")
        await first.click()
        await page.wait_for_selector("h1 [data-state=certified]")
    finally:
        process.terminate()
        async with asyncio.timeout(30):
            assert await process.wait() == 0


async def test_a_killed_node_shows_unhealthy(page: Any, devnet: Devnet) -> None:
    await page.goto(f"{devnet.aggregator_url}/")
    await page.wait_for_selector("#committee tbody tr[data-health=healthy] >> nth=3")
    await page.wait_for_selector("#recent tbody tr >> nth=1")  # the image and the video
    await screenshot(page, "explorer-network.png")
    victim = devnet.nodes[-1]
    row = page.locator("#committee tbody tr", has_text=victim.url)
    assert await row.get_attribute("data-health") == "healthy"
    await victim.kill()
    killed_at = time.monotonic()
    await page.wait_for_selector(
        f"#committee tbody tr[data-node-id='{await row.get_attribute('data-node-id')}']"
        "[data-health=unhealthy]",
        timeout=UNHEALTHY_WITHIN_S * 1000,
    )
    assert time.monotonic() - killed_at < UNHEALTHY_WITHIN_S
    assert await page.locator("#committee tbody tr[data-health=healthy]").count() == 3
