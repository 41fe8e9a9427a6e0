// vultus web UI: plain JavaScript, no build step, no external code.
// Every string that came from a user or the API reaches the page through
// textContent (the el() helper) or canvas fillText, never through innerHTML.
"use strict";

const KEY_STORE = "vultus.key";
const COLLECTION_STORE = "vultus.collection";
const PAGES = ["verify", "identify", "people", "analyze", "system"];
// Colours for boxes: known people get a stable colour, unknown faces grey.
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b"];
const UNKNOWN_COLOUR = "#7f7f7f";

// ---------------------------------------------------------------- helpers

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function fmt(x, digits = 3) {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "–";
}

/** A false-match rate as people read it: 0.001 -> "0.001 (1 in 1,000)". */
function fmtRate(rate) {
  if (typeof rate !== "number" || !(rate > 0)) return "–";
  const oneIn = Math.round(1 / rate);
  return `${rate.toPrecision(2).replace(/\.?0+$/, "")} (1 in ${oneIn.toLocaleString("en")})`;
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** An ISO time as "2026-11-29 14:48 UTC" (the service stores UTC). */
function fmtTime(iso) {
  if (typeof iso !== "string") return "–";
  const m = iso.match(/^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}

/** A probability as a percentage people can read: 0.0139 -> "1.4%". */
function fmtChance(p) {
  if (typeof p !== "number") return "–";
  const pct = 100 * p;
  return `${pct >= 1 ? pct.toFixed(1) : pct.toPrecision(2)}%`;
}

function facts(dl, pairs) {
  clear(dl);
  for (const [term, value] of pairs) {
    if (value === undefined) continue;
    dl.append(el("dt", { text: term }), el("dd", { text: value === null ? "–" : String(value) }));
  }
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function collection() {
  return sessionStorage.getItem(COLLECTION_STORE) || "";
}

/** Call the API; resolves to the parsed JSON (or a Blob), rejects with ApiError
 * built from the service's JSON error body {"error": {code, message, details}}. */
async function api(method, path, { json, form, query, blob } = {}) {
  let url = "v1" + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const qs = params.toString();
    if (qs) url += "?" + qs;
  }
  const headers = { Accept: blob ? "*/*" : "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = "Bearer " + key;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "omit", cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "network", "The service cannot be reached: " + err.message);
  }
  if (response.ok) {
    if (response.status === 204) return null;
    return blob ? response.blob() : response.json();
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch (_) {
    // Not JSON (e.g. a proxy's error page): fall back to the status line.
  }
  const err = payload && payload.error;
  if (err && typeof err === "object") {
    throw new ApiError(response.status, err.code || "error", err.message || response.statusText, err.details);
  }
  throw new ApiError(response.status, "http_" + response.status, `${response.status} ${response.statusText}`);
}

function collectionPath(suffix = "") {
  return "/collections/" + encodeURIComponent(collection()) + suffix;
}

/** Show an error in a page's alert region: the API's message, its code and details. */
function showError(region, err) {
  clear(region);
  if (!err) return;
  if (!(err instanceof ApiError)) {
    region.append(el("strong", { text: "Error: " }), String(err && err.message ? err.message : err));
    return;
  }
  region.append(el("strong", { text: err.message }));
  const extra = [];
  if (err.code) extra.push("code " + err.code);
  if (err.status) extra.push("HTTP " + err.status);
  region.append(el("div", { class: "note", text: extra.join(" · ") }));
  const details = Object.entries(err.details || {});
  if (details.length) {
    const dl = el("dl", { class: "facts" });
    for (const [k, v] of details) {
      dl.append(el("dt", { text: k }), el("dd", { text: typeof v === "object" ? JSON.stringify(v) : String(v) }));
    }
    region.append(dl);
  }
  if (err.status === 401 && region !== $("key-error")) {
    // The key stopped working (revoked?): ask for another, saying why.
    sessionStorage.removeItem(KEY_STORE);
    whoami = null;
    $("key-badge").textContent = "no key";
    showKeyPanel();
    showError($("key-error"), err);
  }
}

/** Run an async form action with its button disabled and errors shown. */
async function busy(form, region, action) {
  const buttons = form ? form.querySelectorAll("button") : [];
  buttons.forEach((b) => { b.disabled = true; });
  form && form.setAttribute("aria-busy", "true");
  showError(region, null);
  try {
    return await action();
  } catch (err) {
    showError(region, err);
    return undefined;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    form && form.removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------- drawing

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error("the browser cannot show this image")); };
    img.src = url;
  });
}

/**
 * Draw a photo and labelled boxes. `boxes`: [{box: [x1,y1,x2,y2], label, colour}],
 * in the pixels of the image the service decoded (`width`/`height` when it says so).
 */
async function drawFaces(canvas, file, boxes, size) {
  let img;
  try {
    img = await loadImage(file);
  } catch (_) {
    img = null;
  }
  const srcW = (size && size.width) || (img && img.naturalWidth) || 640;
  const srcH = (size && size.height) || (img && img.naturalHeight) || 480;
  const maxSide = 1400;
  const scale = Math.min(1, maxSide / Math.max(srcW, srcH));
  canvas.width = Math.round(srcW * scale);
  canvas.height = Math.round(srcH * scale);
  const ctx = canvas.getContext("2d");
  if (img) ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  // Lines and labels keep the same size on screen whatever the photo's size: the canvas
  // is shown scaled to fit its container's width and 80% of the window's height (style.css).
  const room = (canvas.parentElement && canvas.parentElement.clientWidth) || canvas.width;
  const shownScale = Math.min(1, room / canvas.width, (0.8 * window.innerHeight) / canvas.height);
  const perCssPixel = 1 / Math.max(0.01, shownScale);
  const line = Math.max(2, Math.round(2.5 * perCssPixel));
  const fontPx = Math.round(15 * perCssPixel);
  ctx.font = `600 ${fontPx}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const { box, label, colour } of boxes) {
    if (!box) continue;
    const [x1, y1, x2, y2] = box.map((v) => v * scale);
    ctx.lineWidth = line;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    if (label) {
      const pad = Math.round(fontPx / 4);
      const w = ctx.measureText(label).width + 2 * pad;
      const h = fontPx + 2 * pad;
      const ty = y1 - h >= 0 ? y1 - h : y2;  // above the box, or below it at the top edge
      const tx = Math.min(Math.max(0, x1 - line / 2), Math.max(0, canvas.width - w));
      ctx.fillStyle = colour;
      ctx.fillRect(tx, ty, w, h);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(label, tx + pad, ty + pad);
    }
  }
  if (img) URL.revokeObjectURL(img.src);
  canvas.dataset.labels = JSON.stringify(boxes.map((b) => b.label || ""));
}

function colourFor(name, known) {
  if (name === null || name === undefined || name === "unknown") return UNKNOWN_COLOUR;
  let index = known.indexOf(name);
  if (index < 0) { known.push(name); index = known.length - 1; }
  return PALETTE[index % PALETTE.length];
}

// ---------------------------------------------------------------- key and session

let whoami = null;
// Whether this page has shown anything under a key: a new key then starts from a fresh page,
// so nothing seen with the old key (people, photos, results) stays on screen.
let pageUsed = false;

function showKeyPanel(message) {
  $("key-panel").hidden = false;
  for (const page of PAGES) $("page-" + page).hidden = true;
  clear($("key-error"));
  if (message) $("key-error").textContent = message;
  $("key-input").focus();
}

async function useKey(key) {
  sessionStorage.setItem(KEY_STORE, key);
  try {
    whoami = await api("GET", "/keys/me");
  } catch (err) {
    sessionStorage.removeItem(KEY_STORE);
    whoami = null;
    $("key-badge").textContent = "no key";
    throw err;
  }
  $("key-badge").textContent = `${whoami.name || whoami.id} (${whoami.role})`;
  await loadCollections();
}

async function loadCollections() {
  const select = $("collection-select");
  let items = [];
  try {
    const data = await api("GET", "/collections");
    items = data.collections || data.items || data;
  } catch (err) {
    showError($("system-error"), err);
  }
  clear(select);
  for (const c of items) select.append(el("option", { value: c.name, text: c.name }));
  if (!items.length) select.append(el("option", { value: "", text: "(no collection)" }));
  select.disabled = !items.length;
  const saved = collection();
  const names = items.map((c) => c.name);
  const pick = names.includes(saved) ? saved : names[0] || "";
  select.value = pick;
  sessionStorage.setItem(COLLECTION_STORE, pick);
  return items;
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  const ok = await busy($("key-form"), $("key-error"), async () => { await useKey(key); return true; });
  if (ok) {
    $("key-input").value = "";
    if (pageUsed) {
      location.reload();
      return;
    }
    $("key-panel").hidden = true;
    route();
  }
});

$("key-change").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORE);
  whoami = null;
  $("key-badge").textContent = "no key";
  showKeyPanel();
});

$("collection-select").addEventListener("change", (event) => {
  sessionStorage.setItem(COLLECTION_STORE, event.target.value);
  resetPersonPane();
  route();
});

// ---------------------------------------------------------------- routing

function currentPage() {
  const name = location.hash.replace(/^#/, "");
  return PAGES.includes(name) ? name : "identify";
}

function route() {
  if (!whoami) { showKeyPanel(); return; }
  $("key-panel").hidden = true;
  pageUsed = true;
  const page = currentPage();
  for (const p of PAGES) $("page-" + p).hidden = p !== page;
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · vultus`;
  if (page === "people") loadPeople(true);
  if (page === "system") loadSystem();
}

window.addEventListener("hashchange", () => {
  route();
  const heading = document.querySelector(".page:not([hidden]) h1");
  if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
});

// ---------------------------------------------------------------- Verify

$("verify-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  busy(form, $("verify-error"), async () => {
    $("verify-result").hidden = true;  // an old answer must not stand beside a new error
    const fileA = $("verify-a").files[0];
    const fileB = $("verify-b").files[0];
    const body = new FormData();
    body.append("image_a", fileA);
    body.append("image_b", fileB);
    const query = { fmr: $("verify-fmr").value, largest: $("verify-largest").checked ? "true" : "" };
    const r = await api("POST", "/verify", { form: body, query });
    const verdict = $("verify-verdict");
    verdict.textContent = r.same ? "Same person" : "Different people";
    verdict.className = "verdict " + (r.same ? "same" : "different");
    facts($("verify-facts"), [
      ["Similarity", `${fmt(r.similarity)} ${r.same ? "≥" : "<"} threshold ${fmt(r.threshold)}`],
      ["False-match rate at this threshold", fmtRate(r.false_match_rate)],
      ["Model", r.model],
    ]);
    const faces = r.faces || [];
    const colour = r.same ? "#17753a" : "#b3261e";
    $("verify-result").hidden = false;
    await Promise.all([
      drawFaces($("verify-canvas-a"), fileA, faces[0] ? [{ box: faces[0].box, label: "A", colour }] : []),
      drawFaces($("verify-canvas-b"), fileB, faces[1] ? [{ box: faces[1].box, label: "B", colour }] : []),
    ]);
    $("verify-canvas-a").setAttribute("aria-label", "First photo, its face boxed");
    $("verify-canvas-b").setAttribute("aria-label", "Second photo, its face boxed");
  });
});

// ---------------------------------------------------------------- Identify

$("identify-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy(event.target, $("identify-error"), async () => {
    $("identify-result").hidden = true;  // an old answer must not stand beside a new error
    if (!collection()) throw new Error("no collection: create one first (System page lists them)");
    const file = $("identify-image").files[0];
    const body = new FormData();
    body.append("images", file, file.name);
    const r = await api("POST", collectionPath("/identify"), { form: body });
    const image = (r.images && r.images[0]) || r;
    const faces = image.faces || [];
    const known = [];
    const boxes = faces.map((f, i) => ({
      box: f.box, label: `${i + 1} ${f.person}`, colour: colourFor(f.person, known),
    }));
    $("identify-result").hidden = false;
    await drawFaces($("identify-canvas"), file, boxes, image);
    $("identify-canvas").setAttribute("aria-label",
      faces.length ? "Photo with faces: " + faces.map((f) => f.person).join(", ") : "Photo, no face found");
    const tbody = $("identify-table").querySelector("tbody");
    clear(tbody);
    faces.forEach((f, i) => {
      // For a named face the runner-up; for an unknown one the closest person, who fell short.
      const next = (f.matches || []).find((m) => m.person !== f.person);
      tbody.append(el("tr", {},
        el("td", { class: "num", text: i + 1 }),
        el("td", { class: f.person === "unknown" ? "unknown" : "person", text: f.person }),
        el("td", { class: "num", text: fmt(f.similarity) }),
        el("td", { text: next ? `${f.person === "unknown" ? "closest: " : ""}${next.person} ${fmt(next.similarity)}`
          : "–" })));
    });
    if (!faces.length) tbody.append(el("tr", {}, el("td", { colspan: 4, text: "No face found." })));
    const d = image.decision || r.decision;
    $("identify-decision").textContent = d
      ? `A face is named when its similarity to someone is at least ${fmt(d.threshold)}, otherwise it is unknown. ` +
        `At this threshold two different people match at a rate of ${fmtRate(d.false_match_rate)} per ` +
        `comparison, as measured on ${d.source}. Against everyone in this collection, a face of someone not ` +
        `enrolled is wrongly named with a chance of about ${fmtChance(d.expected_false_positive_identification_rate)}.`
      : "";
  });
});

// ---------------------------------------------------------------- People

// `listing` counts list loads: an answer that arrives after a newer load began is dropped,
// so two loads in flight (a page change and a form's refresh) cannot both fill the list.
const personState = { cursor: null, selected: null, query: "", listing: 0 };

function resetPersonPane() {
  personState.selected = null;
  $("person-card").hidden = true;
  $("person-gate").hidden = true;
  $("forget-proof").hidden = true;
  $("person-empty").hidden = false;
  $("person-empty").textContent = "Pick a person from the list, or add one.";
}

async function loadPeople(reset) {
  if (!collection()) {
    showError($("people-error"), new Error("no collection: create one first"));
    return;
  }
  const listing = reset ? ++personState.listing : personState.listing;
  await busy(null, $("people-error"), async () => {
    const page = await api("GET", collectionPath("/people"), {
      query: { q: personState.query, cursor: reset ? null : personState.cursor, limit: 50 },
    });
    if (listing !== personState.listing) return;
    if (reset) {
      clear($("people-items"));
      clear($("people-names"));
    }
    const items = page.people || [];
    for (const p of items) {
      const button = el("button", { type: "button", "data-person": p.id },
        el("span", { text: p.name }), el("span", { class: "count", text: plural(p.faces ?? 0, "face", "faces") }));
      if (personState.selected && personState.selected.id === p.id) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => selectPerson(p.id));
      $("people-items").append(el("li", {}, button));
      $("people-names").append(el("option", { value: p.name }));
    }
    personState.cursor = page.next_cursor || null;
    $("people-more").hidden = !personState.cursor;
    const shown = $("people-items").children.length;
    $("people-count").textContent = shown ? `${shown} shown${personState.cursor ? ", more available" : ""}`
      : (personState.query ? "Nobody matches this search." : "Nobody enrolled yet.");
  });
}

$("people-search").addEventListener("submit", (event) => {
  event.preventDefault();
  personState.query = $("people-q").value.trim();
  loadPeople(true);
});
$("people-more").addEventListener("click", () => loadPeople(false));

/** The id of the person with exactly this name (the merge form takes a name). */
async function personIdByName(name) {
  const page = await api("GET", collectionPath("/people"), { query: { q: name, limit: 100 } });
  const hit = (page.people || []).find((p) => p.name === name);
  if (!hit) throw new Error(`nobody is called "${name}" in this collection`);
  return hit.id;
}

function personPath(id, suffix = "") {
  return collectionPath("/people/" + encodeURIComponent(id) + suffix);
}

async function selectPerson(id) {
  $("forget-proof").hidden = true;
  for (const b of $("people-items").querySelectorAll("button[data-person]")) {
    if (b.dataset.person === String(id)) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  await busy(null, $("people-error"), async () => {
    const person = await api("GET", personPath(id));
    personState.selected = person;
    $("person-empty").hidden = true;
    $("person-card").hidden = false;
    $("person-gate").hidden = true;
    $("person-name").textContent = person.name;
    $("person-meta").textContent = `${plural(person.faces ?? 0, "enrolled face", "enrolled faces")} · ` +
      `added ${fmtTime(person.created_at)} · id ${person.id}`;
    $("person-rename-name").value = person.name;
    await loadFaces(person, person.face_list || []);
  });
}

const thumbUrls = [];

async function loadFaces(person, faces) {
  const list = $("person-faces");
  clear(list);
  while (thumbUrls.length) URL.revokeObjectURL(thumbUrls.pop());
  if (!faces.length) list.append(el("li", { text: "none yet" }));
  // Crops are biometric data: the service shows them to manage and admin keys only.
  const mayViewCrops = whoami && whoami.role !== "identify";
  for (const f of faces) {
    const caption = `face ${f.id}` + (f.quality && typeof f.quality.score === "number"
      ? ` · q ${fmt(f.quality.score, 2)}` : "");
    const item = el("li", {});
    list.append(item);
    if (f.crop_kept === false || !mayViewCrops) {
      item.append(el("div", { class: "nocrop", text: f.crop_kept === false ? "no crop kept" : "needs a manage key" }),
        caption);
      continue;
    }
    try {
      const blob = await api("GET", collectionPath("/faces/" + encodeURIComponent(f.id) + "/crop"), { blob: true });
      const url = URL.createObjectURL(blob);
      thumbUrls.push(url);
      item.append(el("img", { src: url, alt: `${person.name}, face ${f.id}` }), caption);
    } catch (_) {
      item.append(el("div", { class: "nocrop", text: "no crop" }), caption);
    }
  }
}

function showGate(report) {
  const tbody = $("person-gate").querySelector("tbody");
  clear(tbody);
  for (const o of report.images || []) {
    tbody.append(el("tr", {},
      el("td", { class: "mono", text: o.image ?? o.path }),
      el("td", { class: "status-" + o.status, text: o.status }),
      el("td", { text: o.reason || (o.face_id ? `face ${o.face_id}` : "") })));
  }
  const warnings = $("person-gate-warnings");
  clear(warnings);
  for (const w of report.warnings || []) {
    warnings.append(el("li", {
      text: `${w.image ?? w.path}: closer to ${w.closest_person} (${fmt(w.closest_similarity)}) than to ${w.person}` +
        (w.own_similarity === null ? " (no other face yet)" : ` (${fmt(w.own_similarity)})`) + "; check the label",
    }));
  }
  $("person-gate").hidden = false;
}

function filesForm(input) {
  const body = new FormData();
  for (const file of input.files) body.append("images", file, file.name);
  return body;
}

$("person-enroll").addEventListener("submit", (event) => {
  event.preventDefault();
  const person = personState.selected;
  if (!person) return;
  busy(event.target, $("people-error"), async () => {
    const report = await api("POST", personPath(person.id, "/faces"), { form: filesForm($("person-enroll-images")) });
    $("person-enroll-images").value = "";
    await selectPerson(person.id);
    showGate(report);
    await loadPeople(true);
  });
});

$("person-new").addEventListener("submit", (event) => {
  event.preventDefault();
  busy(event.target, $("people-error"), async () => {
    const body = filesForm($("person-new-images"));
    body.append("name", $("person-new-name").value.trim());
    const report = await api("POST", collectionPath("/people"), { form: body });
    event.target.reset();
    await loadPeople(true);
    if (report.person) {
      await selectPerson(report.person.id);
    } else {
      // Every photo was refused: nobody was created; the verdicts say why.
      personState.selected = null;
      $("person-card").hidden = true;
      $("person-empty").hidden = false;
      $("person-empty").textContent = "Nobody was added: no photo passed the enrollment gate (the verdicts are above).";
    }
    showGate(report);
  });
});

$("person-rename").addEventListener("submit", (event) => {
  event.preventDefault();
  const person = personState.selected;
  if (!person) return;
  busy(event.target, $("people-error"), async () => {
    await api("PATCH", personPath(person.id), { json: { name: $("person-rename-name").value.trim() } });
    await loadPeople(true);
    await selectPerson(person.id);
  });
});

$("person-merge").addEventListener("submit", (event) => {
  event.preventDefault();
  const person = personState.selected;
  if (!person) return;
  busy(event.target, $("people-error"), async () => {
    const intoName = $("person-merge-into").value.trim();
    const into = await personIdByName(intoName);
    const result = await api("POST", personPath(person.id, "/merge"), { json: { into } });
    event.target.reset();
    const target = (result && result.person) || null;
    await loadPeople(true);
    if (target && target.id !== undefined) await selectPerson(target.id);
    else { $("person-card").hidden = true; $("person-empty").hidden = false; }
  });
});

$("person-forget").addEventListener("submit", (event) => {
  event.preventDefault();
  const person = personState.selected;
  if (!person || !$("person-forget-confirm").checked) return;
  busy(event.target, $("people-error"), async () => {
    const proof = await api("DELETE", personPath(person.id));
    event.target.reset();
    personState.selected = null;
    $("person-card").hidden = true;
    $("person-gate").hidden = true;
    const p = proof.proof || {};
    const lookalikes = (p.lookalikes || []).map((m) => `${m.person} ${fmt(m.similarity)}`);
    facts($("forget-facts"), [
      ["Person", proof.person],
      ["Faces removed", proof.faces_removed],
      ["Embeddings removed", proof.embeddings_removed],
      ["Crops removed", proof.crops_removed],
      ["Index entries removed", proof.index_entries_removed],
      ["Rows or index entries still referring to them", `${p.rows_remaining} rows, ${p.index_entries_remaining} entries`],
      ["Their own faces searched again", `${p.checked_faces} faces; came back as them ${p.search_hits} times`],
      ["Verified: the person is gone", proof.verified
        ? "yes: no row, index entry or search returns them, and the index file holds none of their vectors"
        : "NO: something of theirs remains (see the counts above)"],
      ["Look-alikes (a warning, not a failure)", lookalikes.length
        ? `${lookalikes.join(", ")} at the strict threshold ${fmt(p.strict_threshold)} `
          + `(false-match rate ${p.false_match_rate}): the same person enrolled under another name?`
        : `none at the strict threshold ${fmt(p.strict_threshold)}`],
    ]);
    $("forget-proof").hidden = false;
    $("forget-proof").classList.toggle("danger", !proof.verified);
    await loadPeople(true);
  });
});

// ---------------------------------------------------------------- Analyze

$("analyze-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy(event.target, $("analyze-error"), async () => {
    $("analyze-result").hidden = true;  // an old answer must not stand beside a new error
    const file = $("analyze-image").files[0];
    const body = new FormData();
    body.append("images", file, file.name);
    const r = await api("POST", "/analyze", { form: body });
    const image = (r.images && r.images[0]) || r;
    const faces = image.faces || [];
    $("analyze-result").hidden = false;
    await drawFaces($("analyze-canvas"), file,
      faces.map((f, i) => ({ box: f.box, label: String(i + 1), colour: PALETTE[i % PALETTE.length] })), image);
    const tbody = $("analyze-table").querySelector("tbody");
    clear(tbody);
    faces.forEach((f, i) => {
      const age = f.age ? `${fmt(f.age.years, 0)} years` : "–";
      const gender = f.gender ? `${f.gender.label} (${fmt(f.gender.confidence ?? f.gender.probability, 2)})` : "–";
      const emotion = f.emotion ? `${f.emotion.label}` : "–";
      const pose = f.pose ? `${fmt(f.pose.yaw, 0)}°, ${fmt(f.pose.pitch, 0)}°, ${fmt(f.pose.roll, 0)}°` : "–";
      const quality = f.quality ? fmt(f.quality.score, 2) : "–";
      tbody.append(el("tr", {}, el("td", { class: "num", text: i + 1 }), el("td", { text: age }),
        el("td", { text: gender }), el("td", { text: emotion }), el("td", { text: pose }),
        el("td", { class: "num", text: quality })));
    });
    if (!faces.length) tbody.append(el("tr", {}, el("td", { colspan: 6, text: "No face found." })));
  });
});

// ---------------------------------------------------------------- System

async function loadSystem() {
  const region = $("system-error");
  showError(region, null);
  if (whoami) {
    facts($("system-key"), [
      ["Id", whoami.id],
      ["Name", whoami.name || "–"],
      ["Role", whoami.role],
      ["Collections", whoami.collections && whoami.collections.length ? whoami.collections.join(", ") : "all"],
      ["Created", fmtTime(whoami.created_at)],
    ]);
  }
  try {
    let ready;
    try {
      ready = await api("GET", "/ready");
    } catch (err) {
      ready = { ready: false, error: err.message };
    }
    const pool = ready.inference || {};
    facts($("system-status"), [
      ["Ready", ready.ready ? "yes" : "no" + (ready.error ? ": " + ready.error : "")],
      ["Gallery", ready.gallery],
      ["Models loaded", (ready.models || []).join(", ") || "–"],
      ["Inference", pool.threads === undefined ? undefined
        : `${pool.running} running, ${pool.admitted} admitted, ${pool.threads} threads, room for ${pool.capacity}`],
    ]);
    const models = await api("GET", "/models");
    const mbody = $("system-models").querySelector("tbody");
    clear(mbody);
    for (const m of models.models || []) {
      const checksum = el("td", {},
        el("span", { class: m.verified ? "status-enrolled" : "status-refused", text: m.status }));
      for (const f of m.files || []) {
        checksum.append(el("div", { class: "mono", text: f.file }),
          el("div", { class: "mono sha", text: "sha256 " + f.sha256 }));
      }
      mbody.append(el("tr", {}, el("td", { text: m.name }), el("td", { text: m.task }),
        el("td", { text: m.license }), el("td", { text: `${m.source} (${m.version})` }), checksum));
    }
    const items = await loadCollections();
    const cbody = $("system-collections").querySelector("tbody");
    clear(cbody);
    for (const c of items) {
      const d = c.decision || {};
      cbody.append(el("tr", {}, el("td", { text: c.name }),
        el("td", { text: `${c.embedder.name} ${c.embedder.version} (${c.embedder.dim}-d)` }),
        el("td", { class: "num", text: c.decision ? fmt(d.threshold, 4) : (c.decision_error || "–") }),
        el("td", { text: fmtRate(c.decision ? d.false_match_rate : c.target_fmr) }),
        el("td", { class: "num", text: c.people ?? "–" }), el("td", { class: "num", text: c.faces ?? "–" })));
    }
    if (!items.length) cbody.append(el("tr", {}, el("td", { colspan: 6, text: "No collection this key can see." })));
  } catch (err) {
    showError(region, err);
  }
}

// ---------------------------------------------------------------- start

async function start() {
  const key = apiKey();
  if (key) {
    try {
      await useKey(key);
    } catch (err) {
      showKeyPanel(err.message);
      return;
    }
  }
  route();
}

start();
