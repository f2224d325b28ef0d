// depot's page: a client of the station API (same origin, relative paths, so it works at / and behind the
// NAS's proxy path). Every value reaches the page through textContent or an attribute: nothing is parsed as
// HTML. Downloads are pushed by the server (server-sent events), not polled.
"use strict";

const API = "api/v1/";
const $ = (sel) => document.querySelector(sel);

/** An element with attributes, then children (strings become text nodes). */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function size(n) {
  if (n === null || n === undefined || isNaN(n)) return "?";
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  n = Number(n);
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + u[i];
}

function duration(s) {
  if (!isFinite(s) || s < 0) return "";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function when(unix) {
  if (!unix) return "";
  return new Date(unix * 1000).toLocaleString();
}

let toastTimer;
function toast(text) {
  const t = $("#toast");
  t.textContent = text;
  t.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove("show"), 4000);
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** A station API call: JSON in and out; a 401 shows the login. */
async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(API + path, opts);
  } catch (e) {
    throw new ApiError(0, "depot does not answer (" + e.message + ")");
  }
  let v = null;
  const text = await r.text();
  try { v = text ? JSON.parse(text) : null; } catch (e) { v = null; }
  if (!r.ok) {
    const msg = (v && v.error && v.error.message) || text || r.statusText;
    // a 401 is the session's end, or a registry refusing credentials (saving a registry): ask which
    if (r.status === 401 && path !== "login" && path !== "login_refresh") {
      const still = await fetch(API + "login_refresh", { credentials: "same-origin" }).then((x) => x.ok, () => false);
      if (!still) showLogin();
    }
    const err = new ApiError(r.status, msg);
    err.retryAfter = Number(r.headers.get("retry-after")) || 0;
    throw err;
  }
  return v;
}

const enc = (s) => String(s).split("/").map(encodeURIComponent).join("/");

// ---- login ----

function showLogin() {
  $("#top").hidden = true;
  $("#view").hidden = true;
  $("#login").hidden = false;
  closeStream();
  $("#login-password").focus();
}

async function login(ev) {
  ev.preventDefault();
  const err = $("#login-error");
  err.textContent = "";
  const button = ev.target.querySelector("button");
  button.disabled = true;
  try {
    const who = await api("POST", "login", { username: $("#login-user").value, password: $("#login-password").value });
    $("#login-password").value = "";
    start(who);
  } catch (e) {
    if (e.status === 429) {
      err.textContent = "Too many failed attempts: wait " + (e.retryAfter || "a few") + " seconds, then try again.";
    } else if (e.status === 401) {
      err.textContent = "Wrong user name or password.";
    } else {
      err.textContent = e.message;
    }
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  try { await api("PUT", "logout"); } catch (e) { /* gone already */ }
  showLogin();
}

// ---- space ----

async function refreshSpace() {
  try {
    const s = await api("GET", "storage");
    const box = $("#space");
    const used = s.total - s.free;
    const pDepot = s.total ? (100 * s.depot) / s.total : 0;
    const pOther = s.total ? (100 * Math.max(0, used - s.depot)) / s.total : 0;
    box.replaceChildren(
      el("div", {}, size(s.free) + " free of " + size(s.total) + " · depot uses " + size(s.depot)),
      el("div", { class: "meter", role: "img", "aria-label": "depot " + size(s.depot) + ", free " + size(s.free) },
        el("span", { class: "depot", style: null, "data-w": pDepot }),
        el("span", { class: "other", "data-w": pOther })));
    for (const span of box.querySelectorAll(".meter span")) span.style.width = span.dataset.w + "%";
  } catch (e) { /* the header just stays as it was */ }
}

// ---- views ----

const views = { images: viewImages, get: viewGet, downloads: viewDownloads, registries: viewRegistries, events: viewEvents };

function route() {
  const name = (location.hash || "#images").slice(1);
  const view = views[name] ? name : "images";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const main = $("#view");
  main.replaceChildren();
  views[view](main).catch((e) => main.append(el("p", { class: "error", role: "alert" }, e.message)));
}

function confirmDialog(text, ok) {
  return new Promise((resolve) => {
    const d = $("#confirm");
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = ok || "Delete";
    d.returnValue = "";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
  });
}

async function viewImages(main) {
  const filter = el("input", { type: "search", placeholder: "Filter by name", "aria-label": "Filter by name" });
  const kind = el("select", { "aria-label": "Kind" },
    el("option", { value: "" }, "Docker images and LXC templates"),
    el("option", { value: "docker" }, "Docker images"),
    el("option", { value: "lxc" }, "LXC templates"));
  const body = el("tbody");
  const bundle = el("input", { type: "file", accept: ".tar,application/x-tar", "aria-label": "Import a bundle" });
  const loaded = el("progress", { max: 1, value: 0, hidden: true, "aria-label": "Bundle import" });
  bundle.addEventListener("change", () => bundle.files[0] && importBundle(bundle.files[0], loaded, () => route()));
  main.append(el("h2", {}, "Images and templates"),
    el("div", { class: "toolbar" }, el("label", {}, "Name", filter), el("label", {}, "Kind", kind),
      el("label", {}, "Import a bundle", bundle), loaded),
    el("table", { class: "stack" },
      el("thead", {}, el("tr", {}, ["Kind", "Name", "Tag", "Size", "Created", "Architecture", ""].map((h) => el("th", {}, h)))),
      body));
  const v = await api("GET", "image?category=local");
  const rows = [];
  for (const item of v.results) {
    item.tags.forEach((tag, i) => rows.push({ item, tag, size: item.size[i], created: (item.created || [])[i], arch: (item.architecture || [])[i] || item.arch, pinned: (item.pinned_by || [])[i] || [], signed: (item.signed_by || [])[i] || [] }));
  }
  function draw() {
    const needle = filter.value.toLowerCase();
    body.replaceChildren();
    const shown = rows.filter((r) => (!kind.value || r.item.type === kind.value) && r.item.name.toLowerCase().includes(needle));
    if (!shown.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, rows.length ? "Nothing matches." : "Nothing here yet: find something to get.")));
    for (const r of shown) {
      const del = el("button", { type: "button", class: "danger", onclick: () => remove(r) }, "Delete");
      del.setAttribute("aria-label", "Delete " + r.item.name + ":" + r.tag);
      body.append(el("tr", {},
        el("td", { "data-label": "Kind" }, el("span", { class: "kind" }, r.item.type === "lxc" ? "LXC" : "Docker")),
        el("td", { "data-label": "Name" }, r.item.name,
          r.pinned.length ? el("span", { class: "muted pinned" }, " kept by " + r.pinned.join(", ")) : null,
          r.signed.length ? el("span", { class: "muted signed" }, " signed by " + r.signed.join(", ")) : null),
        el("td", { "data-label": "Tag" }, el("span", { class: "tag" }, r.tag)),
        el("td", { "data-label": "Size" }, size(r.size)),
        el("td", { "data-label": "Created" }, when(r.created)),
        el("td", { "data-label": "Architecture" }, r.arch || ""),
        el("td", {}, del)));
    }
  }
  async function remove(r) {
    const what = r.item.type === "lxc" ? "the LXC template " + r.item.name + "/" + r.tag : r.item.name + ":" + r.tag;
    const freed = r.item.type === "lxc"
      ? "This frees " + size(r.size) + "."
      : "This frees up to " + size(r.size) + " (layers other images share stay).";
    const kept = r.pinned.length
      ? " It is kept by " + r.pinned.join(", ") + ": the delete is refused until " + (r.pinned.length > 1 ? "they release it" : "it releases it") + " (depot pin rm)."
      : "";
    if (!(await confirmDialog("Delete " + what + "? " + freed + kept))) return;
    try {
      await api("DELETE", "image/local/" + r.item.type + "/" + enc(r.item.name) + "/" + enc(r.tag));
      toast("Deleted " + what);
      refreshSpace();
      route();
    } catch (e) { toast(e.message); }
  }
  filter.addEventListener("input", draw);
  kind.addEventListener("change", draw);
  draw();
}

/** Upload an offline bundle (depot bundle create's file) with its progress; depot verifies every blob and the
 * signature policy before anything is visible, then answers JSON lines, the last of which says how it ended. */
function importBundle(file, bar, done) {
  const x = new XMLHttpRequest();
  x.open("POST", API + "bundle/import?size=" + file.size);
  x.setRequestHeader("content-type", "application/x-tar");
  bar.hidden = false;
  bar.value = 0;
  x.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
  x.onerror = () => { bar.hidden = true; toast("The upload broke off: nothing of the bundle is visible."); };
  x.onload = () => {
    bar.hidden = true;
    const lines = x.responseText.split("\n").filter((l) => l.trim());
    let last = null;
    try { last = JSON.parse(lines[lines.length - 1] || "null"); } catch (e) { last = null; }
    if (x.status === 200 && last && last.status === "imported") {
      const what = last.images.concat(last.templates);
      toast("Imported " + (what.length ? what.join(", ") : "nothing new") + ".");
      done();
    } else {
      const msg = (last && (last.message || (last.error && last.error.message))) || x.statusText;
      toast("The bundle was not imported: " + msg);
    }
  };
  x.send(file);
}

async function viewGet(main) {
  const source = el("select", { "aria-label": "Where to look" },
    el("option", { value: "dockerhub" }, "Docker Hub"),
    el("option", { value: "catalog" }, "The vendor catalog"),
    el("option", { value: "lxc" }, "LXC image servers"));
  try {
    for (const r of (await api("GET", "registry/")).objects) source.append(el("option", { value: "registry:" + r.name }, "Registry " + r.name + " (" + r.host + ")"));
  } catch (e) { /* no registries */ }
  const term = el("input", { type: "search", placeholder: "e.g. nginx, debian", "aria-label": "Search" });
  const go = el("button", { type: "submit", class: "primary" }, "Search");
  const results = el("div", { class: "results", "aria-live": "polite" });
  const form = el("form", { class: "toolbar" }, el("label", {}, "Where", source), el("label", {}, "What", term), go);
  main.append(el("h2", {}, "Find and get"), form, results);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    results.replaceChildren(el("p", { class: "muted" }, "Looking…"));
    go.disabled = true;
    try { await search(source.value, term.value.trim(), results); }
    catch (e) { results.replaceChildren(el("p", { class: "error", role: "alert" }, e.message)); }
    finally { go.disabled = false; }
  });
}

async function search(where, q, results) {
  results.replaceChildren();
  if (where.startsWith("registry:")) {
    const name = where.slice(9);
    const reg = (await api("GET", "registry/")).objects.find((r) => r.name === name);
    if (!q) throw new Error("Type the repository's name in that registry.");
    results.append(dockerPicker(reg.host + "/" + q, { registry: name, label: q }));
    return;
  }
  if (where === "lxc") {
    const v = await api("GET", "image?category=lxc&filter_text=" + encodeURIComponent(q));
    if (!v.results.length) results.append(el("p", { class: "muted" }, "No template for this NAS matches."));
    for (const t of v.results) {
      const dl = el("button", { type: "button", class: "primary" }, t.installed ? "Get again" : "Download");
      dl.addEventListener("click", () => start_download("image/" + enc(t.repository) + "/lxc/" + enc(t.name) + "/" + enc(t.tags[0]) + "/download", t.name + "/" + t.tags[0], dl));
      results.append(el("div", { class: "result card" },
        el("div", { class: "what" }, el("strong", {}, t.name + "/" + t.tags[0]), " ", el("span", { class: "kind" }, "LXC"),
          el("div", { class: "muted" }, (t.title || "") + " · build " + t.build + " · from " + t.repository)),
        el("span", {}, t.size ? size(t.size) : "size published with the file"),
        t.installed ? el("span", { class: "ok" }, "kept") : null, dl));
    }
    return;
  }
  if (where === "catalog") {
    const v = await api("GET", "image?category=qnap&filter_text=" + encodeURIComponent(q));
    if (!v.results.length) results.append(el("p", { class: "muted" }, "Nothing in the catalog for this NAS matches."));
    for (const e of v.results) {
      if (e.type === "docker") {
        results.append(dockerPicker(e.name, { label: e.title || e.name, description: e.description, version: e.version }));
      } else if (e.type === "lxc") {
        const dl = el("button", { type: "button", class: "primary" }, "Download");
        const name = e.name + "/" + (e.version || "latest") + "/" + e.arch;
        dl.addEventListener("click", () => start_download("image/qnap/lxc/" + enc(name) + "/default/download", name, dl));
        results.append(el("div", { class: "result card" },
          el("div", { class: "what" }, el("strong", {}, e.title || e.name), " ", el("span", { class: "kind" }, "LXC"),
            el("div", { class: "muted" }, e.description || "")), dl));
      }
    }
    return;
  }
  if (!q) throw new Error("Type something to search for.");
  const v = await api("GET", "image?category=dockerhub&filter_text=" + encodeURIComponent(q));
  if (!v.results.length) results.append(el("p", { class: "muted" }, "Nothing found."));
  for (const h of v.results) results.append(dockerPicker(h.name, { label: h.name, description: h.description, official: h.is_official, stars: h.star_count }));
}

/** A Docker repository: pick a tag (the registry's list, installed ones marked), see its size, download. */
function dockerPicker(name, o) {
  const pick = el("div", { class: "pick" });
  const open = el("button", { type: "button" }, "Choose a tag");
  const card = el("div", { class: "result card" },
    el("div", { class: "what" }, el("strong", {}, o.label || name), o.official ? el("span", { class: "tag" }, "official") : null,
      el("div", { class: "muted" }, [o.description, o.stars !== undefined ? "★ " + o.stars : null].filter(Boolean).join(" · "))),
    open, pick);
  open.addEventListener("click", async () => {
    open.disabled = true;
    pick.replaceChildren(el("span", { class: "muted" }, "Reading the tags…"));
    let tags = [], installed = [];
    try {
      if (o.registry) {
        tags = o.version ? [o.version] : ["latest"];
      } else {
        const official = name.includes("/") ? "0" : "1";
        const t = await api("GET", "image/dockerhub/docker/" + official + "/" + enc(name) + "/tags");
        tags = t.tags; installed = t.installed;
      }
    } catch (e) { tags = [o.version || "latest"]; }
    const sel = el("select", { "aria-label": "Tag" }, tags.map((t) => el("option", { value: t }, t + (installed.includes(t) ? " (installed)" : ""))));
    if (tags.includes(o.version || "latest")) sel.value = o.version || "latest";
    // a registry of the owner's does not say its tags here: typed
    const custom = o.registry ? el("input", { value: o.version || "", placeholder: "tag", "aria-label": "Tag" }) : null;
    const info = el("span", { class: "muted" });
    const dl = el("button", { type: "button", class: "primary" }, "Download");
    const tag = () => (custom ? custom.value.trim() : sel.value);
    async function sizeOf() {
      if (!tag()) {
        info.textContent = "Type a tag.";
        dl.disabled = true;
        return;
      }
      dl.disabled = false;
      info.textContent = "Reading the size…";
      try {
        const r = await api("GET", "image/docker/" + enc(name) + "/" + enc(tag()) + "/remote_inspect");
        info.textContent = size(r.size) + " to download (" + r.platform + ")";
      } catch (e) { info.textContent = e.message; }
    }
    sel.addEventListener("change", sizeOf);
    if (custom) custom.addEventListener("change", sizeOf);
    dl.addEventListener("click", () => {
      const q = o.registry ? "?registry_name=" + encodeURIComponent(o.registry) : "";
      const repo = o.registry ? "private" : "dockerhub";
      const n = o.registry ? name.slice(name.indexOf("/") + 1) : name;
      start_download("image/" + repo + "/docker/" + enc(n) + "/" + enc(tag()) + "/download" + q, name + ":" + tag(), dl);
    });
    pick.replaceChildren(el("div", { class: "toolbar" }, el("label", {}, "Tag", custom || sel), dl, info));
    sizeOf();
  });
  return card;
}

async function start_download(path, what, button) {
  button.disabled = true;
  try {
    await api("POST", path, {});
    toast("Downloading " + what);
    location.hash = "#downloads";
  } catch (e) {
    toast(e.message);
    const p = button.parentElement && button.parentElement.querySelector(".error");
    if (p) p.textContent = e.message;
    else button.after(el("p", { class: "error", role: "alert" }, e.message));
  } finally {
    button.disabled = false;
  }
}

// ---- downloads, pushed ----

let stream = null;
let latest = [];
const listeners = new Set();

function openStream() {
  if (stream) return;
  stream = new EventSource(API + "image/downloads/events");
  stream.addEventListener("downloads", (ev) => {
    try { latest = JSON.parse(ev.data); } catch (e) { return; }
    const active = latest.filter((d) => d.status === "downloading" || d.status === "waiting").length;
    const badge = $("#active-count");
    badge.hidden = active === 0;
    badge.textContent = active;
    for (const f of listeners) f(latest);
  });
  stream.addEventListener("space", () => refreshSpace());
  // EventSource reconnects by itself (a daemon restart); a refused session ends it
  stream.onerror = async () => {
    if (stream && stream.readyState === EventSource.CLOSED) {
      stream = null;
      try { await api("GET", "login_refresh"); openStream(); } catch (e) { /* showLogin ran */ }
    }
  };
}

function closeStream() {
  if (stream) stream.close();
  stream = null;
}

async function viewDownloads(main) {
  const list = el("div", { class: "card", "aria-live": "polite", style: null });
  list.style.padding = "0";
  main.append(el("h2", {}, "Downloads"), list);
  const rows = new Map();
  function draw(items) {
    if (!main.isConnected) { listeners.delete(draw); return; }
    if (!items.length) { list.replaceChildren(el("p", { class: "muted", style: null }, "No downloads yet.")); rows.clear(); return; }
    const seen = new Set();
    for (const d of items) {
      seen.add(d.id);
      let r = rows.get(d.id);
      if (!r) { r = downloadRow(d); rows.set(d.id, r); }
      r.update(d);
    }
    for (const [id, r] of rows) if (!seen.has(id)) { r.node.remove(); rows.delete(id); }
    list.replaceChildren(...items.map((d) => rows.get(d.id).node));
  }
  listeners.add(draw);
  draw(latest);
  openStream();
}

function downloadRow(d) {
  const name = el("div", { class: "name" });
  const status = el("span", { class: "status" });
  const bar = el("progress", { max: 100 });
  const facts = el("div", { class: "facts" });
  const buttons = el("div", { class: "row-actions" });
  const node = el("div", { class: "dl", "data-id": d.id }, el("div", {}, name, " ", el("span", { class: "kind" }, d.type === "lxc" ? "LXC" : "Docker")), status, bar, facts, buttons);
  let shown = "";
  function act(label, method, path, aria) {
    const b = el("button", { type: "button", "aria-label": aria }, label);
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await api(method, path, method === "POST" ? {} : undefined); } catch (e) { toast(e.message); }
      finally { b.disabled = false; }
    });
    return b;
  }
  function update(d) {
    const what = d.type === "lxc" ? d.name + "/" + d.tag : d.name + ":" + d.tag;
    name.textContent = what;
    status.textContent = d.status;
    status.className = "status " + d.status;
    if (d.percent === null || d.percent === undefined) bar.removeAttribute("value"); else bar.value = d.percent;
    bar.setAttribute("aria-label", what + " " + (d.percent === null ? "starting" : d.percent + "%"));
    const left = d.rate > 0 && d.bytes_total ? (d.bytes_total - d.bytes_done) / d.rate : NaN;
    facts.textContent = [
      (d.percent !== null && d.percent !== undefined ? d.percent + "% · " : "") + size(d.bytes_done) + " of " + (d.bytes_total ? size(d.bytes_total) : "?"),
      d.status === "downloading" && d.rate ? size(d.rate) + "/s" : null,
      d.status === "downloading" && isFinite(left) ? duration(left) + " left" : null,
      d.message,
    ].filter(Boolean).join(" · ");
    if (shown === d.status) return;
    shown = d.status;
    const label = (verb) => verb + " " + what;
    const kids = [];
    if (d.status === "downloading" || d.status === "waiting") kids.push(act("Pause", "PUT", "image/downloads/" + d.id + "/pause", label("Pause")));
    if (d.status === "paused") kids.push(act("Resume", "PUT", "image/downloads/" + d.id + "/resume", label("Resume")));
    if (d.status !== "complete" && d.status !== "failed") kids.push(act("Cancel", "DELETE", "image/downloads/" + d.id, label("Cancel")));
    if (d.status === "failed") {
      const path = d.type === "lxc"
        ? "image/any/lxc/" + enc(d.name) + "/" + enc(d.tag) + "/download"
        : "image/dockerhub/docker/" + enc(d.name) + "/" + enc(d.tag) + "/download";
      kids.push(act("Retry", "POST", path, label("Retry")));
    }
    buttons.replaceChildren(...kids);
  }
  return { node, update };
}

// ---- registries ----

async function viewRegistries(main) {
  const list = el("tbody");
  const form = registryForm(null);
  const mirror = el("input", { type: "url", placeholder: "https://mirror.example:5000", "aria-label": "Docker Hub mirror" });
  const mirrorSave = el("button", { type: "submit" }, "Save");
  const mirrorForm = el("form", { class: "toolbar card" }, el("label", {}, "Docker Hub mirrors (comma-separated URLs, tried before Docker Hub)", mirror), mirrorSave);
  main.append(el("h2", {}, "Registries"),
    el("table", { class: "stack" }, el("thead", {}, el("tr", {}, ["Name", "URL", "User", "Insecure", ""].map((h) => el("th", {}, h)))), list),
    el("h2", {}, "Add a registry"), form, el("h2", {}, "Docker Hub mirror"), mirrorForm,
    el("h2", {}, "This NAS as the LAN's registry"), lanCard());
  try {
    const m = await api("GET", "registry/mirrors");
    mirror.value = m.mirrors.join(", ");
  } catch (e) { mirrorForm.append(el("p", { class: "error" }, e.message)); }
  mirrorForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const m = await api("PUT", "registry/mirrors", { mirrors: mirror.value.split(",").map((s) => s.trim()).filter(Boolean) });
      mirror.value = m.mirrors.join(", ");
      toast("Mirrors saved");
    } catch (e) { toast(e.message); }
  });
  const regs = (await api("GET", "registry/")).objects;
  if (!regs.length) list.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No private registry yet.")));
  for (const r of regs) {
    const edit = el("button", { type: "button" }, "Edit");
    const del = el("button", { type: "button", class: "danger" }, "Delete");
    const row = el("tr", {},
      el("td", { "data-label": "Name" }, r.name), el("td", { "data-label": "URL" }, r.url),
      el("td", { "data-label": "User" }, r.username || "", r.has_password ? el("span", { class: "muted" }, " (password kept)") : null),
      el("td", { "data-label": "Insecure" }, r.insecure ? "yes" : "no"),
      el("td", {}, el("div", { class: "row-actions" }, edit, del)));
    edit.addEventListener("click", () => { row.after(el("tr", {}, el("td", { colspan: 5 }, registryForm(r)))); edit.disabled = true; });
    del.addEventListener("click", async () => {
      if (!(await confirmDialog("Delete the registry " + r.name + "? Its stored password goes with it; images pulled from it stay."))) return;
      try { await api("DELETE", "registry/" + r.id + "/"); toast("Deleted " + r.name); route(); } catch (e) { toast(e.message); }
    });
    list.append(row);
  }
}

// The LAN registry's switch: what depot holds (and pulls through) served to the machines of the LAN.
function lanCard() {
  const on = el("input", { type: "checkbox", "aria-label": "Serve images to the LAN" });
  const info = el("div", { class: "muted lan-info" });
  const card = el("div", { class: "card" }, el("label", { class: "check" }, on, " Serve images to the LAN (read-only registry, pulling through what it lacks)"), info);
  const show = (s) => {
    on.checked = s.enabled;
    const host = s.address.replace(/^0\.0\.0\.0:|^\[::\]:/, location.hostname + ":");
    // the address LAN machines use (put together here: the page itself loads nothing from elsewhere)
    const url = [s.scheme, "//" + host].join(":");
    const kids = [];
    if (s.enabled) {
      kids.push(el("p", {}, "Serving at ", el("code", {}, url), s.anonymous ? " to anyone on the LAN." : " to holders of an API token (as the password)."));
      if (s.ca_fingerprint) {
        kids.push(el("p", {}, "LAN machines trust its certificate authority: ",
          el("a", { href: "/api/v1/lan-registry/ca.crt", download: "depot-registry-ca.crt" }, "download the CA"),
          " (SHA-256 ", el("code", {}, s.ca_fingerprint), ")."));
      }
      kids.push(el("p", {}, "docker: ", el("code", {}, '{"registry-mirrors": ["' + url + '"]}'), " in daemon.json; skopeo: ",
        el("code", {}, "skopeo copy " + ["docker", "//" + host].join(":") + "/library/alpine:latest …")));
    } else {
      kids.push(el("p", {}, "Off. It would listen at " + url + "."));
    }
    info.replaceChildren(...kids);
  };
  api("GET", "lan-registry").then(show, (e) => info.replaceChildren(el("p", { class: "error" }, e.message)));
  on.addEventListener("change", async () => {
    on.disabled = true;
    try {
      const s = await api("PUT", "lan-registry", { enabled: on.checked });
      show(s);
      toast(s.enabled ? "The LAN registry is on" : "The LAN registry is off");
    } catch (e) { on.checked = !on.checked; toast(e.message); }
    on.disabled = false;
  });
  return card;
}

function registryForm(r) {
  const f = {
    name: el("input", { required: true, value: r ? r.name : "", "aria-label": "Name" }),
    url: el("input", { required: true, type: "url", value: r ? r.url : "", placeholder: "https://registry.example:5000", "aria-label": "URL" }),
    username: el("input", { value: r ? r.username || "" : "", autocomplete: "off", "aria-label": "User" }),
    password: el("input", { type: "password", autocomplete: "new-password", placeholder: r && r.has_password ? "unchanged" : "", "aria-label": "Password" }),
    insecure: el("input", { type: "checkbox", checked: r ? r.insecure : false }),
  };
  const err = el("p", { class: "error", role: "alert" });
  const save = el("button", { type: "submit", class: "primary" }, r ? "Verify and save" : "Verify and add");
  const form = el("form", { class: "card grid2" },
    el("label", {}, "Name", f.name), el("label", {}, "URL", f.url), el("label", {}, "User", f.username),
    el("label", {}, "Password (never shown again)", f.password),
    el("label", { class: "check" }, f.insecure, "Plain HTTP or an unverified certificate"), el("div", {}, save), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    save.disabled = true;
    const body = { name: f.name.value.trim(), url: f.url.value.trim(), username: f.username.value.trim(), insecure: f.insecure.checked };
    if (f.password.value) body.password = f.password.value;
    try {
      await api(r ? "PATCH" : "POST", r ? "registry/" + r.id + "/" : "registry/", body);
      toast((r ? "Saved " : "Added ") + body.name);
      route();
    } catch (e) { err.textContent = e.message; }
    finally { save.disabled = false; }
  });
  return form;
}

// ---- activity ----

async function viewEvents(main) {
  const list = el("ul", { class: "events card" });
  main.append(el("h2", {}, "Recent activity"), list);
  const v = await api("GET", "event?index=0&offset=1000000");
  const items = v.messages.slice(-100).reverse();
  if (!items.length) list.append(el("li", { class: "muted" }, "Nothing happened yet."));
  for (const m of items) {
    // Category:User:Timestamp:JSON
    const parts = m.split(":");
    const t = Number(parts[2]);
    let ev = {};
    try { ev = JSON.parse(parts.slice(3).join(":")); } catch (e) { ev = {}; }
    const what = [ev.action, ev.name || ev.image, ev.state, ev.message].filter(Boolean).join(" · ");
    list.append(el("li", {}, el("span", { class: "muted" }, when(t) + " "), what || m));
  }
}

// ---- start ----

function start(who) {
  $("#login").hidden = true;
  $("#top").hidden = false;
  $("#view").hidden = false;
  $("#user").textContent = who.username;
  openStream();
  refreshSpace();
  route();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  try {
    start(await api("GET", "login_refresh"));
  } catch (e) {
    showLogin();
  }
});
