// The walruspy explorer: one ES module, no framework, no build step.
// It reads the path: "/" shows the network, "/blobs/{blob ID or 0x object ID}" one blob.
// Data comes from the aggregator's /explorer/api/* (JSON, cached server-side for a second or two);
// blobs download and play from its /v1/blobs/{blob_id}.

const API = "/explorer/api";
const FROST_PER_WAL = 1e9;
const NETWORK_POLL_MS = 10_000;
const RECENT_POLL_MS = 5_000;
const BLOB_POLL_MS = 3_000;

const app = document.getElementById("app");
let network = null; // the last /network answer
let clockOffsetS = 0; // server time - local time, for the countdown

// --- small helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJson(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body?.error?.message ?? `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function wal(frost) {
  if (frost === null || frost === undefined) return "—";
  // Prices are often a small fraction of a WAL: below a thousandth, FROST say it exactly.
  if (frost !== 0 && Math.abs(frost) < FROST_PER_WAL / 1000) {
    return `${frost.toLocaleString()} FROST`;
  }
  const value = frost / FROST_PER_WAL;
  return `${value.toLocaleString(undefined, { maximumFractionDigits: 4 })} WAL`;
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

function short(id) {
  return id && id.length > 20 ? `${id.slice(0, 10)}…${id.slice(-6)}` : id ?? "";
}

function badge(word, attr) {
  return el("span", { class: `badge ${word}`, [attr]: word, text: word });
}

// When epoch `epoch` starts (estimated from the current one), as local time text.
function epochTime(epoch) {
  if (!network || epoch === null || epoch === undefined) return "";
  const at = network.epochStartedAt + (epoch - network.epoch) * network.epochDurationS;
  const when = new Date(at * 1000);
  const nowS = Date.now() / 1000 + clockOffsetS;
  const rel = at >= nowS ? `in ${duration(at - nowS)}` : `${duration(nowS - at)} ago`;
  return `${when.toLocaleString()} (${rel})`;
}

function card(label, value, sub, id) {
  return el(
    "div",
    { class: "card" },
    el("div", { class: "label", text: label }),
    el("div", { class: "value", id, text: value }),
    sub ? el("div", { class: "sub", text: sub }) : null,
  );
}

// --- the network page -----------------------------------------------------------------------

async function loadNetwork() {
  network = await getJson("/network");
  clockOffsetS = network.serverTime - Date.now() / 1000;
  return network;
}

function renderCountdown() {
  const target = document.getElementById("next-change");
  if (!target || !network) return;
  const left = network.nextEpochAt - (Date.now() / 1000 + clockOffsetS);
  target.textContent = left > 0 ? `next change in ${duration(left)}` : "epoch change due";
}

function networkCards(info) {
  const price = info.info.priceInfo;
  return el(
    "div",
    { class: "cards", id: "network-cards" },
    card("Epoch", String(info.epoch), "", "epoch"),
    card("Epoch duration", duration(info.epochDurationS), "", "epoch-duration"),
    card("Shards / nodes", `${info.nShards} / ${info.nNodes}`, ""),
    card("Storage price", wal(price.storagePricePerUnitSize), "per MiB and epoch"),
    card("Write price", wal(price.writePricePerUnitSize), "per MiB, once"),
    card("Max blob size", bytes(info.info.sizeInfo.maxBlobSize), ""),
  );
}

function committeeTable(info) {
  const rows = info.nodes.map((node) =>
    el(
      "tr",
      { "data-node-id": node.nodeId },
      el("td", { class: "name", text: node.name || "(no name)" }),
      el("td", {}, el("code", { title: node.nodeId, text: short(node.nodeId) })),
      el("td", {}, el("code", { text: node.url })),
      el("td", { class: "stake", text: node.stake === null ? "—" : wal(node.stake) }),
      el("td", { class: "shards", title: node.shards.join(", "), text: node.nShards }),
      el("td", { class: "health" }, el("span", { class: "muted", text: "…" })),
      el("td", { class: "node-status muted" }),
      el("td", { class: "version muted" }),
    ),
  );
  return el(
    "table",
    { id: "committee" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ["Name", "Node ID", "URL", "Stake", "Shards", "Health", "Status", "Version"].map((h) =>
          el("th", { text: h }),
        ),
      ),
    ),
    el("tbody", {}, rows),
  );
}

async function refreshHealth() {
  let answer;
  try {
    answer = await getJson("/health");
  } catch (error) {
    return;
  }
  for (const node of answer.nodes) {
    const row = document.querySelector(`tr[data-node-id="${node.nodeId}"]`);
    if (!row) continue;
    const word = node.healthy ? "healthy" : "unhealthy";
    const cell = row.querySelector(".health");
    cell.replaceChildren(badge(word, "data-health"));
    cell.title = node.error ?? `up ${duration(node.uptimeS)}, epoch ${node.epoch}`;
    row.dataset.health = word;
    row.querySelector(".node-status").textContent = node.healthy
      ? `${node.status}, ${node.shardsOwned} shards owned`
      : node.error;
    row.querySelector(".version").textContent = node.version ?? "—";
  }
}

function recentTable(blobs) {
  if (!blobs.length) return el("p", { class: "muted", id: "recent", text: "No blobs yet." });
  return el(
    "table",
    { id: "recent" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ["Blob ID", "Object", "Size", "State", "Registered", "End epoch"].map((h) =>
          el("th", { text: h }),
        ),
      ),
    ),
    el(
      "tbody",
      {},
      blobs.map((blob) =>
        el(
          "tr",
          { "data-blob-id": blob.blobId },
          el("td", {}, el("a", { href: `/blobs/${blob.blobId}` }, el("code", { text: blob.blobId }))),
          el("td", {}, el("a", { href: `/blobs/${blob.objectId}`, title: blob.objectId }, short(blob.objectId))),
          el("td", { text: bytes(blob.size) }),
          el("td", {}, badge(blob.state, "data-state")),
          el("td", { text: `epoch ${blob.epoch}` }),
          el("td", { text: blob.endEpoch, title: epochTime(blob.endEpoch) }),
        ),
      ),
    ),
  );
}

async function refreshRecent() {
  const target = document.getElementById("recent");
  if (!target) return;
  try {
    const answer = await getJson("/recent");
    target.replaceWith(recentTable(answer.blobs));
  } catch (error) {
    target.replaceWith(el("p", { id: "recent", class: "error", text: error.message }));
  }
}

function uploadBox(info) {
  if (!info.upload) {
    return el("p", { class: "muted", text: "This aggregator has no publisher: no uploads here." });
  }
  const file = el("input", { type: "file", id: "upload-file" });
  const epochs = el("input", {
    type: "number", id: "upload-epochs", min: 1, value: 1, style: "width: 5em",
  });
  const permanent = el("input", { type: "checkbox", id: "upload-permanent" });
  const button = el("button", { id: "upload-button", type: "submit", text: "Store" });
  const result = el("div", { class: "result", id: "upload-result" });
  const form = el(
    "form",
    { class: "upload card", id: "upload" },
    file,
    el("label", {}, "epochs ", epochs),
    el("label", {}, permanent, " permanent"),
    button,
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) {
      result.textContent = "Choose a file first.";
      return;
    }
    button.disabled = true;
    result.className = "result muted";
    result.textContent = `Storing ${chosen.name} (${bytes(chosen.size)})…`;
    const query = new URLSearchParams({ epochs: epochs.value });
    if (permanent.checked) query.set("permanent", "true");
    try {
      const response = await fetch(`${info.upload.url}/v1/blobs?${query}`, {
        method: "PUT",
        body: chosen,
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
      const blobId = body.newlyCreated?.blobObject?.blobId ?? body.alreadyCertified?.blobId;
      result.className = "result";
      result.replaceChildren("Stored: ", el("a", { href: `/blobs/${blobId}`, id: "upload-link" }, blobId));
      window.location.assign(`/blobs/${blobId}`);
    } catch (error) {
      result.className = "result error";
      result.textContent = `Upload failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function showNetwork() {
  document.title = "Network · walruspy explorer";
  const info = await loadNetwork();
  app.replaceChildren(
    el("h1", {}, "Network ", el("span", { class: "muted", id: "next-change" })),
    networkCards(info),
    el("h2", { text: "Committee" }),
    committeeTable(info),
    el("h2", { text: "Store a blob" }),
    uploadBox(info),
    el("h2", { text: "Recent blobs" }),
    el("p", { id: "recent", class: "muted", text: "Loading…" }),
  );
  renderCountdown();
  setInterval(renderCountdown, 1000);
  refreshHealth();
  setInterval(refreshHealth, (info.healthPollS ?? 2) * 1000);
  refreshRecent();
  setInterval(refreshRecent, RECENT_POLL_MS);
  setInterval(async () => {
    try {
      const fresh = await loadNetwork();
      document.getElementById("network-cards")?.replaceWith(networkCards(fresh));
    } catch (error) {
      /* keep the last figures */
    }
  }, NETWORK_POLL_MS);
}

// --- the blob page ----------------------------------------------------------------------------

function facts(pairs) {
  return el(
    "dl",
    { class: "facts", id: "blob-facts" },
    pairs.flatMap(([label, value, id]) => [
      el("dt", { text: label }),
      el("dd", { id }, value ?? "—"),
    ]),
  );
}

function preview(blob) {
  const url = `/v1/blobs/${blob.blobId}`;
  const type = blob.contentType ?? "";
  if (type.startsWith("image/")) return el("img", { src: url, alt: "preview" });
  if (type.startsWith("video/") || type.startsWith("audio/")) {
    return el("video", { src: url, controls: true, muted: true, preload: "metadata", id: "video" });
  }
  if (blob.text !== null && blob.text !== undefined) {
    const more = blob.size > blob.text.length ? "\n…" : "";
    return el("pre", { id: "text-preview", text: blob.text + more });
  }
  if (blob.previewError) return el("p", { class: "error", text: blob.previewError });
  return el("p", { class: "muted", text: `No preview for ${type || "this blob"}.` });
}

function holdingTable(blob) {
  const names = new Map((network?.nodes ?? []).map((n) => [n.nodeId, n.name]));
  return el(
    "table",
    { id: "holding" },
    el(
      "thead",
      {},
      el("tr", {}, ["Node", "URL", "Metadata", "Sliver", "Holds it"].map((h) => el("th", { text: h }))),
    ),
    el(
      "tbody",
      {},
      blob.holding.map((node) =>
        el(
          "tr",
          { "data-node-id": node.nodeId, "data-holds": node.holds ? "yes" : "no" },
          el("td", { title: node.nodeId }, names.get(node.nodeId) || short(node.nodeId)),
          el("td", {}, el("code", { text: node.url })),
          el("td", {}, node.metadata ? badge(node.metadata, "data-metadata") : el("span", { class: "error", text: node.error })),
          el("td", {}, node.sliver ? badge(node.sliver, "data-sliver") : "—"),
          el("td", {}, badge(node.holds ? "stored" : "bad", "data-holds-badge")),
        ),
      ),
    ),
  );
}

function renderBlob(blob, key) {
  const owners = [...new Set(blob.objects.map((o) => o.owner))];
  const download = el(
    "a",
    { href: `/v1/blobs/${blob.blobId}`, id: "download", download: `${blob.blobId}` },
    "Download",
  );
  const holds = blob.holding.filter((n) => n.holds).length;
  app.replaceChildren(
    el("h1", {}, "Blob ", badge(blob.state, "data-state")),
    facts([
      ["Blob ID", el("code", { text: blob.blobId }), "blob-id"],
      ["Status", blob.statusText, "blob-status"],
      ["Size", blob.size === null ? null : `${bytes(blob.size)} (${blob.size} bytes)`, "blob-size"],
      ["Content type", blob.contentType, "blob-type"],
      ["Certified epoch", blob.certifiedEpoch === null ? null : `${blob.certifiedEpoch} — ${epochTime(blob.certifiedEpoch)}`, "blob-certified"],
      ["End epoch", blob.endEpoch === null ? null : `${blob.endEpoch} — ${epochTime(blob.endEpoch)}`, "blob-end"],
      ["Owner", owners.length ? el("code", { text: owners.join(", ") }) : null, "blob-owner"],
      [
        "Objects",
        blob.objects.length
          ? el("span", {}, blob.objects.map((o) => [el("a", { href: `/blobs/${o.objectId}` }, el("code", { text: o.objectId })), o.deletable ? " (deletable) " : " (permanent) "]))
          : null,
        "blob-objects",
      ],
      ["Download", download, "blob-download"],
    ]),
    el("h2", { text: "Preview" }),
    el("div", { class: "preview", id: "preview" }, blob.state === "certified" ? preview(blob) : el("p", { class: "muted", text: "Not certified yet." })),
    el("h2", {}, `Held by ${holds} of ${blob.holding.length} nodes right now`),
    holdingTable(blob),
  );
  document.title = `Blob ${short(blob.blobId)} · walruspy explorer`;
  app.dataset.key = key;
}

async function showBlob(key) {
  await loadNetwork().catch(() => null);
  let shownState = null;
  const refresh = async () => {
    let blob;
    try {
      blob = await getJson(`/blobs/${encodeURIComponent(key)}`);
    } catch (error) {
      if (shownState === null) {
        app.replaceChildren(el("h1", { text: "Blob" }), el("p", { class: "error", id: "blob-error", text: error.message }));
      }
      return;
    }
    if (shownState === blob.state && document.getElementById("holding")) {
      // Keep the preview (a playing video) and refresh only who holds the blob.
      document.getElementById("holding").replaceWith(holdingTable(blob));
      return;
    }
    shownState = blob.state;
    renderBlob(blob, key);
  };
  await refresh();
  setInterval(refresh, BLOB_POLL_MS);
}

// --- routing ----------------------------------------------------------------------------------

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = document.getElementById("search-key").value.trim();
  if (key) window.location.assign(`/blobs/${encodeURIComponent(key)}`);
});

const path = window.location.pathname;
const blobMatch = path.match(/^\/blobs\/([^/]+)\/?$/);
const shown = blobMatch ? showBlob(decodeURIComponent(blobMatch[1])) : showNetwork();
shown.catch((error) => {
  app.replaceChildren(el("p", { class: "error", id: "load-error", text: `Could not load: ${error.message}` }));
});
