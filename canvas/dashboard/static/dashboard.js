// canvas dashboard: one live snapshot over server-sent events, drawn into five tabs.
// No framework and no build step; every user-supplied string goes in as text, never as HTML.
"use strict";

const COLORS = JSON.parse(document.body.dataset.stateColors || "{}");
const STATES = Object.keys(COLORS);
const ACTION_HEADERS = { "Content-Type": "application/json", "X-Canvas-Dashboard": "1" };

let snap = null;            // the last snapshot
let skew = 0;               // server clock minus ours, seconds
let selected = null;        // the workflow whose graph is shown
let drawnVersion = null;    // the version of the graph on screen
let drawing = false;
let tasksSeen = -1;         // the events count the task list was fetched at
let lettersQueue = null;    // the queue whose dead letters are listed

// -- small helpers ---------------------------------------------------------------------------
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function stateBadge(state) {
  return el("span", { class: "state", style: `background:${COLORS[state] || "#fff9c4"}`,
                      dataset: { state } }, state || "?");
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.abs(seconds);
  const text = s < 60 ? `${s.toFixed(s < 10 ? 1 : 0)} s` : s < 3600 ? `${Math.round(s / 60)} min`
    : s < 86400 ? `${(s / 3600).toFixed(1)} h` : `${(s / 86400).toFixed(1)} d`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

const now = () => Date.now() / 1000 + skew;
const since = (epoch) => (epoch ? now() - epoch : null);
const sinceIso = (iso) => (iso ? now() - Date.parse(iso) / 1000 : null);

function toast(message, isError = false) {
  const box = $("#toast");
  box.textContent = message;
  box.className = isError ? "error" : "";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 4000);
}

async function api(path, body) {
  const options = body === undefined ? {} : { method: "POST", headers: ACTION_HEADERS,
                                               body: JSON.stringify(body) };
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error((data && data.error) || data || response.statusText);
  return data;
}

async function act(label, path, body) {
  try {
    const reply = await api(path, body);
    const replies = reply.replies ? ` (${reply.replies.length} worker(s) answered)` : "";
    toast(`${label}: done${replies}`);
    return reply;
  } catch (error) {
    toast(`${label}: ${error.message}`, true);
    return null;
  }
}

// -- tabs ------------------------------------------------------------------------------------
function showTab() {
  const [tab, arg] = (location.hash.slice(1) || "workflows").split("/");
  for (const section of document.querySelectorAll(".tab")) {
    section.hidden = section.id !== `tab-${tab}`;
  }
  for (const link of document.querySelectorAll("#tabs a")) {
    link.classList.toggle("active", link.dataset.tab === tab);
  }
  if (tab === "workflows" && arg && arg !== selected) select(arg);
  if (tab === "tasks") refreshTasks(true);
}

// -- the live stream -------------------------------------------------------------------------
function connect() {
  const source = new EventSource("api/stream");
  source.addEventListener("snapshot", (event) => {
    snap = JSON.parse(event.data);
    skew = snap.now - Date.now() / 1000;
    $("#live").dataset.state = "live";
    $("#live").textContent = "live";
    render();
  });
  source.addEventListener("error", () => {
    $("#live").dataset.state = "down";
    $("#live").textContent = "reconnecting…";
  });
}

function render() {
  renderEvents();
  renderWorkflows();
  renderWorkers();
  renderQueues();
  renderBeat();
  refreshTasks(false);
}

function renderEvents() {
  const known = Object.values(snap.tasks.by_state || {}).reduce((sum, n) => sum + n, 0);
  $("#count-tasks").textContent = known || "";
  const pill = $("#events");
  const events = snap.events;
  pill.dataset.state = events.on && !events.error ? "on" : "off";
  pill.textContent = !events.on ? "events off" : events.error ? "events: reconnecting"
    : `events ${events.seen}` + (events.lag !== null ? ` · lag ${events.lag.toFixed(2)} s` : "");
  pill.title = events.error || "worker events received";
}

// -- workflows -------------------------------------------------------------------------------
function renderWorkflows() {
  const list = $("#workflow-list");
  const flows = snap.workflows;
  $("#count-workflows").textContent = flows.length || "";
  $("#workflow-empty").hidden = flows.length > 0;
  list.replaceChildren(...flows.map((flow) => {
    const share = flow.total ? (100 * flow.done) / flow.total : 0;
    return el("li", { class: flow.id === selected ? "selected" : null, dataset: { workflow: flow.id },
                      onclick: () => { location.hash = `workflows/${flow.id}`; } },
      el("div", { class: "label" }, flow.label || flow.id),
      el("div", { class: "meta" },
         el("span", { class: "mono" }, flow.id.slice(0, 8)),
         el("span", {}, `${flow.done}/${flow.total}`),
         stateBadge(flow.state)),
      el("div", { class: `progress${flow.failed ? " bad" : ""}` },
         el("div", { style: `width:${share.toFixed(1)}%` })),
      flow.error ? el("div", { class: "empty" }, flow.error) : null);
  }));
  const current = flows.find((flow) => flow.id === selected);
  if (current) {
    const share = current.total ? (100 * current.done) / current.total : 0;
    $("#graph-progress").hidden = false;
    $("#graph-progress").className = `progress${current.failed ? " bad" : ""}`;
    $("#graph-progress div").style.width = `${share.toFixed(1)}%`;
    $("#graph-title").replaceChildren(current.label || current.id, " ", stateBadge(current.state));
    $("#graph-actions").hidden = current.finished;
    if (current.version && current.version !== drawnVersion) draw(current.id);
  }
}

async function select(workflowId) {
  selected = workflowId;
  drawnVersion = null;
  $("#graph-actions").hidden = true;
  $("#graph").replaceChildren();
  $("#graph-title").textContent = workflowId;
  $("#graph").dataset.workflow = workflowId;
  if (!snap || !snap.workflows.some((flow) => flow.id === workflowId)) {
    try {
      await api("api/workflows", { id: workflowId });
    } catch (error) {
      toast(error.message, true);
      return;
    }
  }
  await draw(workflowId);
  if (snap) renderWorkflows();
}

async function draw(workflowId) {
  if (drawing) return;
  drawing = true;
  try {
    const response = await fetch(`api/workflows/${encodeURIComponent(workflowId)}/graph.svg`,
                                 { credentials: "same-origin" });
    if (!response.ok) throw new Error((await response.json()).error);
    const svg = safeSvg(await response.text());
    if (workflowId !== selected) return;
    $("#graph").replaceChildren(svg);
    drawnVersion = response.headers.get("X-Canvas-Version");
    $("#graph").dataset.version = drawnVersion;
  } catch (error) {
    toast(`drawing ${workflowId.slice(0, 8)}: ${error.message}`, true);
  } finally {
    drawing = false;
  }
}

// The picture is Graphviz's SVG of labels that include task arguments: keep it inert.
function safeSvg(text) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  for (const bad of doc.querySelectorAll("script, foreignObject")) bad.remove();
  for (const node of doc.querySelectorAll("*")) {
    for (const attr of [...node.attributes]) {
      const value = attr.value.trim().toLowerCase();
      if (attr.name.startsWith("on") || value.startsWith("javascript:")) node.removeAttribute(attr.name);
    }
  }
  return document.importNode(doc.documentElement, true);
}

// Revoking a workflow by its id revokes each of its tasks that has not finished.
function revokeWorkflow(terminate) {
  if (!selected || !confirm(`${terminate ? "Terminate" : "Revoke"} every unfinished task of ${selected}?`)) return;
  act(`${terminate ? "terminate" : "revoke"} workflow ${selected.slice(0, 8)}`,
      `api/tasks/${encodeURIComponent(selected)}/revoke`, { terminate, signal: "SIGTERM" });
}
$("#revoke-workflow").addEventListener("click", () => revokeWorkflow(false));
$("#terminate-workflow").addEventListener("click", () => revokeWorkflow(true));

$("#follow-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = $("#follow-id").value.trim();
  if (!id) return;
  try {
    const found = await api("api/workflows", { id });
    $("#follow-id").value = "";
    location.hash = `workflows/${found.id}`;
  } catch (error) {
    toast(error.message, true);
  }
});

// -- workers ---------------------------------------------------------------------------------
function renderWorkers() {
  const workers = snap.workers;
  $("#count-workers").textContent = workers.filter((w) => w.online).length || "";
  $("#workers-empty").hidden = workers.length > 0;
  // Rows are kept and updated in place: a rate typed into a row survives the next snapshot.
  const body = $("#workers-table tbody");
  const rows = new Map([...body.children].map((row) => [row.dataset.worker, row]));
  const wanted = workers.map((worker) => {
    const row = rows.get(worker.hostname) || workerRow(worker.hostname);
    const cells = [
      [worker.hostname, el("div", { class: "empty" }, worker.software)],
      worker.online ? "online" : "offline",
      ago(since(worker.heartbeat)),
      [worker.pool, worker.concurrency].filter((v) => v !== undefined && v !== null).join(" × ") || "–",
      (worker.loadavg || []).map((v) => Number(v).toFixed(2)).join(" ") || "–",
      worker.active ?? "–",
      worker.processed ?? "–",
      worker.failed,
    ];
    cells.forEach((value, index) => row.children[index].replaceChildren(...[value].flat()));
    row.dataset.online = worker.online;
    return row;
  });
  const same = wanted.length === body.children.length && wanted.every((row, i) => body.children[i] === row);
  if (!same) body.replaceChildren(...wanted);
}

function workerRow(hostname) {
  const host = encodeURIComponent(hostname);
  const task = el("input", { class: "task-name", placeholder: "task name", list: "task-names",
                             dataset: { field: "task" } });
  const rate = el("input", { placeholder: "10/m", dataset: { field: "rate" } });
  const cells = Array.from({ length: 8 }, (_, index) => el("td", { class: index ? null : "mono" }));
  return el("tr", { dataset: { worker: hostname } }, cells,
    el("td", {}, el("div", { class: "controls" },
      el("button", { class: "small", title: "shrink the pool by one process", dataset: { action: "shrink" },
                     onclick: () => act(`shrink ${hostname}`, `api/workers/${host}/pool`, { delta: -1 }) }, "−"),
      el("button", { class: "small", title: "grow the pool by one process", dataset: { action: "grow" },
                     onclick: () => act(`grow ${hostname}`, `api/workers/${host}/pool`, { delta: 1 }) }, "+"),
      task, rate,
      el("button", { class: "small", dataset: { action: "rate-limit" },
                     onclick: () => act(`rate limit ${task.value}`, `api/workers/${host}/rate-limit`,
                                        { task: task.value, rate: rate.value }) }, "rate limit"),
      el("button", { class: "small danger", dataset: { action: "shutdown" },
                     onclick: () => confirm(`Shut ${hostname} down?`) &&
                       act(`shutdown ${hostname}`, `api/workers/${host}/shutdown`, {}) },
         "shut down"))));
}

// -- tasks -----------------------------------------------------------------------------------
async function refreshTasks(force) {
  if ($("#tab-tasks").hidden) return;
  const seen = snap ? snap.events.seen : 0;
  if (!force && seen === tasksSeen) return;
  tasksSeen = seen;
  const params = new URLSearchParams({ q: $("#task-search").value.trim(),
                                       state: $("#task-state").value, limit: "200" });
  let found;
  try {
    found = (await api(`api/tasks?${params}`)).tasks;
  } catch (error) {
    toast(error.message, true);
    return;
  }
  $("#tasks-empty").hidden = found.length > 0;
  const names = new Set(found.map((t) => t.name).filter(Boolean));
  $("#task-names").replaceChildren(...[...names].sort().map((name) => el("option", { value: name })));
  $("#tasks-table tbody").replaceChildren(...found.map((task) => {
    const done = ["SUCCESS", "FAILURE", "REVOKED", "REJECTED"].includes(task.state);
    const id = encodeURIComponent(task.id);
    const args = [task.args, task.kwargs].filter((v) => v && v !== "{}" && v !== "()").join(" ");
    return el("tr", { dataset: { task: task.id } },
      el("td", { class: "mono", title: task.id }, task.id.slice(0, 8),
         task.workflow ? el("div", {}, el("a", { href: `#workflows/${task.workflow}` }, "workflow")) : null),
      el("td", {}, task.name || "?"),
      el("td", {}, stateBadge(task.state), task.exception ? el("div", { class: "empty" }, task.exception) : null),
      el("td", { class: "mono args" }, args || "–"),
      el("td", { class: "mono" }, task.worker || "–"),
      el("td", {}, ago(since(task.received))),
      el("td", {}, task.runtime !== null && task.runtime !== undefined ? `${Number(task.runtime).toFixed(3)} s` : "–"),
      el("td", {}, done ? null : el("div", { class: "controls" },
        el("button", { class: "small", dataset: { action: "revoke" },
                       onclick: () => act(`revoke ${task.id.slice(0, 8)}`, `api/tasks/${id}/revoke`, {}) },
           "revoke"),
        el("button", { class: "small danger", dataset: { action: "terminate" },
                       onclick: () => confirm(`Terminate ${task.name || ""} ${task.id}?`) &&
                         act(`terminate ${task.id.slice(0, 8)}`, `api/tasks/${id}/revoke`,
                             { terminate: true, signal: "SIGTERM" }) },
           "terminate"))));
  }));
}

let searchTimer = null;
$("#task-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => refreshTasks(true), 200);
});
$("#task-state").addEventListener("change", () => refreshTasks(true));
$("#task-form").addEventListener("submit", (event) => { event.preventDefault(); refreshTasks(true); });
$("#task-state").append(...STATES.map((state) => el("option", { value: state }, state)));
document.body.append(el("datalist", { id: "task-names" }));

// -- queues ----------------------------------------------------------------------------------
function renderQueues() {
  const found = snap.queues;
  $("#count-queues").textContent = found.length || "";
  $("#queues-table tbody").replaceChildren(...found.map((queue) =>
    el("tr", { dataset: { queue: queue.name } },
      el("td", { class: "mono" }, queue.name),
      el("td", {}, queue.depth ?? "?"),
      el("td", { class: "mono" }, queue.dead_letter_queue),
      el("td", {}, queue.dead_letters ?? "?"),
      el("td", {}, queue.dead_letters ? el("button", { class: "small",
                                                       onclick: () => showLetters(queue.name) },
                                            "dead letters") : null))));
}

async function showLetters(queue) {
  lettersQueue = queue;
  let found;
  try {
    found = await api(`api/queues/${encodeURIComponent(queue)}/dead-letters`);
  } catch (error) {
    toast(error.message, true);
    return;
  }
  $("#letters").hidden = false;
  const more = found.total - found.letters.length;
  $("#letters-title").textContent = `${found.queue}: ${found.total} dead letter(s)` +
    (more > 0 ? `, ${more} not shown` : "");
  $("#letters-table tbody").replaceChildren(...found.letters.map((letter) =>
    el("tr", { dataset: { letter: letter.id } },
      el("td", { class: "mono" }, letter.id || "?"),
      el("td", {}, letter.task || "?"),
      el("td", {}, letter.size),
      el("td", {}, letter.reason),
      el("td", {}, letter.id ? el("button", { class: "small",
                                              onclick: () => replay(queue, [letter.id], false) },
                                  "replay") : null))));
}

async function replay(queue, ids, all) {
  const reply = await act(`replay from ${queue}`, `api/queues/${encodeURIComponent(queue)}/replay`,
                          { ids, all });
  if (reply && reply.refused.length) {
    toast(`replayed ${reply.replayed}; refused ${reply.refused.map((r) => `${r.id}: ${r.reason}`).join("; ")}`, true);
  }
  await showLetters(queue);
}

$("#replay-all").addEventListener("click", () => {
  if (lettersQueue && confirm(`Replay every dead letter of ${lettersQueue}?`)) replay(lettersQueue, [], true);
});

// -- beat ------------------------------------------------------------------------------------
function renderBeat() {
  const entries = snap.beat;
  $("#count-beat").textContent = entries.length || "";
  $("#beat-empty").hidden = entries.length > 0;
  $("#beat-table tbody").replaceChildren(...entries.map((entry) =>
    el("tr", { dataset: { entry: entry.name } },
      el("td", {}, entry.name),
      el("td", { class: "mono" }, entry.task),
      el("td", { class: "mono" }, entry.schedule),
      el("td", { title: entry.last_run || "" }, entry.last_run ? ago(sinceIso(entry.last_run)) : "never"),
      el("td", { title: entry.next_run || "" },
         entry.error ? el("span", { class: "empty" }, entry.error) : untilNext(entry.next_run)))));
}

// A slot that passed since the last refresh is due, not "s ago": beat sends it on its next tick.
function untilNext(iso) {
  const seconds = sinceIso(iso);
  return seconds !== null && seconds >= 0 ? "due now" : ago(seconds);
}

// -- start -----------------------------------------------------------------------------------
window.addEventListener("hashchange", showTab);
setInterval(() => { if (snap) { renderWorkers(); renderBeat(); } }, 1000);
showTab();
connect();
