// Orca dashboard (SPEC §6): one Server-Sent Events stream (/ui/stream) keeps the page live.
//
// Rules this file keeps:
// - Every string from the server is hostile: it reaches the page through textContent, attributes
//   and the canvas only, never as HTML.
// - Updates are batched: messages only record what changed; one requestAnimationFrame applies
//   them. Rows are keyed (data-service, data-node, data-instance) and updated in place, only the
//   cells whose text changed; a table is never rebuilt per event.
// - Everything kept is bounded: 500 log rows, 500 recoveries, the pending queues.

const MAX_LOG_ROWS = 500;
const MAX_RECOVERIES = 500;
const MAX_PENDING_EVENTS = MAX_LOG_ROWS;
const SERVICE_COLS = 8;

/** For measurements (tests, bench): when each service's row last changed, and how many row renders. */
const ui = { lastRenderAt: Object.create(null), rendered: 0, frames: 0, connected: false, snapshots: 0 };
window.__orcaUi = ui;

const $ = (id) => document.getElementById(id);
const els = {
  conn: $('conn'),
  summary: $('summary'),
  problems: $('problems'),
  problemsCount: $('problems-count'),
  allGood: $('all-good'),
  services: $('services'),
  servicesCount: $('services-count'),
  servicesEmpty: $('services-empty'),
  nodes: $('nodes'),
  nodesCount: $('nodes-count'),
  log: $('log'),
  chart: $('chart'),
  chartLegend: $('chart-legend'),
  toasts: $('toasts'),
  dialog: $('confirm'),
  dialogTitle: $('confirm-title'),
  dialogText: $('confirm-text'),
  dialogOk: $('confirm-ok'),
  logout: $('logout'),
};

// ---------------------------------------------------------------------------------------------
// Small helpers

const str = (v) => (typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v));
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const nowMs = () => performance.timeOrigin + performance.now();
/** A CSS class token from a server state word (anything else becomes "unknown"). */
const stateClass = (s) => 'st st-' + (/^[a-z][a-z-]{0,30}$/.test(s) ? s : 'unknown');

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Sets an element's text only when it differs from what this entry last set; true when changed. */
function setText(entry, key, node, value) {
  if (entry.v[key] === value) return false;
  entry.v[key] = value;
  node.textContent = value;
  return true;
}

function setBadge(entry, key, node, value) {
  if (entry.v[key] === value) return false;
  entry.v[key] = value;
  node.textContent = value;
  node.className = stateClass(value);
  return true;
}

/**
 * Keyed list: puts one element per item in `parent` in the given order, reusing the elements of
 * `cache` (key → entry with .el), creating missing ones and removing the rest. DOM moves happen
 * only where the order differs.
 */
function syncList(parent, items, cache, keyOf, create, update) {
  const seen = new Set();
  let prev = null;
  for (const item of items) {
    const k = keyOf(item);
    seen.add(k);
    let entry = cache.get(k);
    if (!entry) {
      entry = create(item, k);
      cache.set(k, entry);
    }
    update(entry, item);
    const want = prev ? prev.nextSibling : parent.firstChild;
    if (entry.el !== want) parent.insertBefore(entry.el, want);
    prev = entry.el;
  }
  for (const [k, entry] of cache) {
    if (!seen.has(k)) {
      entry.el.remove();
      cache.delete(k);
    }
  }
}

function fmtMs(ms) {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

function fmtAge(ms) {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function fmtClock(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return str(iso).slice(0, 24);
  const d = new Date(t);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

// ---------------------------------------------------------------------------------------------
// State, and what the next frame has to draw

const model = {
  services: new Map(), // name → S
  nodes: new Map(), // name → N (in the server's order)
  servers: [], // V
  recoveries: [], // R, oldest first
  clockOffset: 0, // server's clock − ours, from the snapshot
};

const pending = {
  services: new Set(), // names changed or removed
  nodes: false,
  servers: false,
  events: [], // E, oldest first
  resetLog: false,
  chart: false,
};

let frameRequested = false;
function schedule() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(flush);
}

// ---------------------------------------------------------------------------------------------
// Services table: one <tbody> per service (its row, and its instances when expanded), kept in
// name order; a changed service touches its own cells only.

const serviceRows = new Map(); // name → ServiceRow
const sortedNames = []; // names in table order
const expanded = new Set();

function lowerBound(name) {
  let lo = 0;
  let hi = sortedNames.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sortedNames[mid] < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class ServiceRow {
  constructor(name) {
    this.name = name;
    this.v = {};
    this.el = el('tbody', 'svc');
    const tr = (this.tr = el('tr', 'row'));
    tr.setAttribute('data-testid', 'service-row');
    tr.dataset.service = name;
    const tdExp = el('td', 'c-exp');
    this.exp = el('button', 'exp', '▶');
    this.exp.type = 'button';
    this.exp.setAttribute('aria-expanded', 'false');
    this.exp.setAttribute('aria-label', 'show instances');
    this.exp.addEventListener('click', () => toggleExpanded(this.name));
    tdExp.append(this.exp);
    this.tdName = el('td', 'name', name);
    this.tdName.title = name;
    this.tdName.addEventListener('click', () => toggleExpanded(this.name));
    this.tdReady = el('td', 'num');
    const tdState = el('td');
    this.badge = el('span', 'st');
    tdState.append(this.badge);
    this.tdRev = el('td', 'num');
    this.tdRev.setAttribute('data-testid', 'revision');
    this.tdRestarts = el('td', 'num');
    this.tdReason = el('td', 'reason');
    const tdAct = el('td', 'c-act');
    this.rollback = el('button', 'btn btn-sm', 'Rollback');
    this.rollback.type = 'button';
    this.rollback.setAttribute('data-testid', 'rollback-btn');
    this.rollback.addEventListener('click', () => rollbackService(this.name, this.rollback));
    tdAct.append(this.rollback);
    tr.append(tdExp, this.tdName, this.tdReady, tdState, this.tdRev, this.tdRestarts, this.tdReason, tdAct);
    this.el.append(tr);
    this.instRow = null;
    this.instCache = new Map();
  }

  /** Applies S; true when anything visible in the row changed. */
  update(s) {
    const r = s.replicas || {};
    const desired = num(r.desired);
    const ready = num(r.ready);
    const state = str(s.state) || 'unknown';
    const instances = Array.isArray(s.instances) ? s.instances : [];
    let restarts = 0;
    for (const i of instances) restarts += num(i && i.restarts);
    const why = str(s.reason) || str(s.hint);
    let changed = false;
    changed = setText(this, 'ready', this.tdReady, `${ready}/${desired}`) || changed;
    if (this.v.readyBad !== (ready < desired)) {
      this.v.readyBad = ready < desired;
      this.tdReady.classList.toggle('ready-bad', ready < desired);
    }
    if (setBadge(this, 'state', this.badge, state)) {
      this.tr.dataset.state = state;
      changed = true;
    }
    changed = setText(this, 'rev', this.tdRev, String(num(s.revision))) || changed;
    changed = setText(this, 'restarts', this.tdRestarts, String(restarts)) || changed;
    if (setText(this, 'why', this.tdReason, why)) {
      this.tdReason.title = why;
      changed = true;
    }
    if (this.instRow) this.renderInstances(instances);
    return changed;
  }

  setExpanded(on, s) {
    this.exp.setAttribute('aria-expanded', on ? 'true' : 'false');
    this.exp.textContent = on ? '▼' : '▶';
    if (on && !this.instRow) {
      this.instRow = el('tr', 'instances');
      const td = el('td');
      td.colSpan = SERVICE_COLS;
      const table = el('table', 'inst');
      const head = el('thead');
      const hr = el('tr');
      for (const h of ['instance', 'state', 'ready', 'restarts', 'last exit', 'next retry', 'detail']) hr.append(el('th', '', h));
      head.append(hr);
      this.instBody = el('tbody');
      table.append(head, this.instBody);
      td.append(table);
      this.instRow.append(td);
      this.el.append(this.instRow);
      this.renderInstances(s && Array.isArray(s.instances) ? s.instances : []);
    } else if (!on && this.instRow) {
      this.instRow.remove();
      this.instRow = null;
      this.instBody = null;
      this.instCache.clear();
    }
  }

  /** Instances grouped by node, each keyed (data-instance), updated in place. */
  renderInstances(instances) {
    const byNode = new Map();
    instances.forEach((i, idx) => {
      if (!i || typeof i !== 'object') return;
      const node = str(i.node) || '-';
      if (!byNode.has(node)) byNode.set(node, []);
      byNode.get(node).push({ i, key: i.id ? `i:${str(i.id)}` : `p:${node}:${idx}` });
    });
    const items = [];
    for (const node of [...byNode.keys()].sort()) {
      const list = byNode.get(node);
      items.push({ group: node, count: list.length, key: `g:${node}` });
      list.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      items.push(...list);
    }
    syncList(this.instBody, items, this.instCache, (it) => it.key, createInstanceRow, updateInstanceRow);
  }
}

function createInstanceRow(item) {
  const entry = { v: {}, el: el('tr') };
  if (item.group !== undefined) {
    entry.el.className = 'node-group';
    entry.el.dataset.node = item.group;
    entry.cell = el('td');
    entry.cell.colSpan = 7;
    entry.el.append(entry.cell);
    return entry;
  }
  entry.el.dataset.instance = str(item.i.id);
  entry.el.dataset.node = str(item.i.node);
  entry.id = el('td', 'id');
  const st = el('td');
  entry.badge = el('span', 'st');
  st.append(entry.badge);
  entry.ready = el('td');
  entry.restarts = el('td', 'num');
  entry.exit = el('td');
  entry.retry = el('td', 'mono');
  entry.detail = el('td', 'reason');
  entry.el.append(entry.id, st, entry.ready, entry.restarts, entry.exit, entry.retry, entry.detail);
  return entry;
}

function updateInstanceRow(entry, item) {
  if (item.group !== undefined) {
    setText(entry, 'g', entry.cell, `node ${item.group} · ${item.count} instance${item.count === 1 ? '' : 's'}`);
    return;
  }
  const i = item.i;
  setText(entry, 'id', entry.id, str(i.id) || '(not placed)');
  setBadge(entry, 'state', entry.badge, str(i.state) || 'unknown');
  setText(entry, 'ready', entry.ready, i.ready ? 'yes' : 'no');
  setText(entry, 'restarts', entry.restarts, String(num(i.restarts)));
  const le = i.lastExit && typeof i.lastExit === 'object' ? i.lastExit : null;
  setText(entry, 'exit', entry.exit, le ? `${str(le.reason)} (${le.code === null || le.code === undefined ? 'no code' : str(le.code)})` : '–');
  setText(entry, 'retry', entry.retry, i.nextRetryAt ? fmtClock(str(i.nextRetryAt)) : '–');
  const detail = str(i.error) || str(i.probe);
  if (setText(entry, 'detail', entry.detail, detail)) entry.detail.title = detail;
}

function toggleExpanded(name) {
  const row = serviceRows.get(name);
  if (!row) return;
  const on = !expanded.has(name);
  if (on) expanded.add(name);
  else expanded.delete(name);
  row.setExpanded(on, model.services.get(name));
}

function addServiceRow(name) {
  const row = new ServiceRow(name);
  serviceRows.set(name, row);
  const at = lowerBound(name);
  const next = at < sortedNames.length ? serviceRows.get(sortedNames[at]) : null;
  sortedNames.splice(at, 0, name);
  els.services.insertBefore(row.el, next ? next.el : null);
  if (expanded.has(name)) row.setExpanded(true, model.services.get(name));
  return row;
}

function removeServiceRow(name) {
  const row = serviceRows.get(name);
  if (!row) return;
  row.el.remove();
  serviceRows.delete(name);
  const at = lowerBound(name);
  if (sortedNames[at] === name) sortedNames.splice(at, 1);
}

function flushServices(names) {
  const t = nowMs();
  // A first snapshot of many services: built off-document, in order, appended once.
  if (serviceRows.size === 0 && names.size > 50) {
    const fresh = [...names].filter((n) => model.services.has(n)).sort();
    const frag = document.createDocumentFragment();
    for (const name of fresh) {
      const row = new ServiceRow(name);
      serviceRows.set(name, row);
      sortedNames.push(name);
      row.update(model.services.get(name));
      frag.append(row.el);
      ui.lastRenderAt[name] = t;
      ui.rendered++;
    }
    els.services.append(frag);
    return;
  }
  for (const name of names) {
    const s = model.services.get(name);
    if (!s) {
      removeServiceRow(name);
      delete ui.lastRenderAt[name];
      continue;
    }
    const row = serviceRows.get(name) || addServiceRow(name);
    if (row.update(s)) {
      ui.lastRenderAt[name] = t;
      ui.rendered++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes table (small: the whole list, keyed)

const nodeCache = new Map();

function leaderInfo() {
  const roles = new Map();
  for (const v of model.servers) if (v && typeof v === 'object') roles.set(str(v.name), str(v.role) || (v.leader ? 'leader' : 'standby'));
  return roles;
}

function createNodeRow(n, name) {
  const e = { v: {}, el: el('tr', 'row') };
  e.el.setAttribute('data-testid', 'node-row');
  e.el.dataset.node = name;
  const tdName = el('td', 'name');
  e.nameText = el('span', '', name);
  e.role = el('span');
  tdName.append(e.nameText, e.role);
  const tdState = el('td');
  e.badge = el('span', 'st');
  tdState.append(e.badge);
  e.hb = el('td', 'num');
  e.inst = el('td', 'num');
  e.addr = el('td', 'mono');
  const act = el('td', 'c-act');
  e.drain = el('button', 'btn btn-sm', 'Drain');
  e.drain.type = 'button';
  e.drain.setAttribute('data-testid', 'drain-btn');
  e.drain.addEventListener('click', () => nodeAction(name, 'drain', e.drain));
  e.uncordon = el('button', 'btn btn-sm', 'Uncordon');
  e.uncordon.type = 'button';
  e.uncordon.setAttribute('data-testid', 'uncordon-btn');
  e.uncordon.addEventListener('click', () => nodeAction(name, 'uncordon', e.uncordon));
  act.append(e.drain, e.uncordon);
  e.el.append(tdName, tdState, e.hb, e.inst, e.addr, act);
  return e;
}

let roles = new Map();
function updateNodeRow(e, n) {
  const state = str(n.state) || 'unknown';
  if (setBadge(e, 'state', e.badge, state)) {
    e.el.dataset.state = state;
    e.drain.hidden = state === 'draining';
    e.uncordon.hidden = state !== 'draining';
  }
  const role = roles.get(str(n.name)) || '';
  if (e.v.role !== role) {
    e.v.role = role;
    e.role.className = role === 'leader' ? 'leader' : role ? 'standby' : '';
    e.role.textContent = role === 'leader' ? 'LEADER' : role ? 'server' : '';
    e.el.dataset.leader = role === 'leader' ? 'true' : 'false';
    e.role.title = role ? `control-plane server (${role})` : '';
  }
  e.hbAt = Date.parse(str(n.lastHeartbeat));
  setText(e, 'hb', e.hb, fmtAge(Date.now() + model.clockOffset - e.hbAt));
  setText(e, 'inst', e.inst, String(num(n.instances)));
  setText(e, 'addr', e.addr, str(n.address));
}

function flushNodes() {
  roles = leaderInfo();
  syncList(els.nodes, [...model.nodes.values()], nodeCache, (n) => str(n.name), createNodeRow, updateNodeRow);
}

/** Heartbeat ages move with time alone: once a second, only those cells. */
function tickAges() {
  const now = Date.now() + model.clockOffset;
  for (const e of nodeCache.values()) setText(e, 'hb', e.hb, fmtAge(now - e.hbAt));
}

// ---------------------------------------------------------------------------------------------
// Problems strip and the header summary

const PROBLEM_SERVICE = { crashloop: 2, 'rollout-failed': 2, degraded: 1 };
const PROBLEM_NODE = { down: 2, unreachable: 1 };
const problemServices = new Map(); // name → S, only services in a problem state
const problemCache = new Map();

function createProblem(p, key) {
  const e = { v: {}, el: el('li', 'problem') };
  e.el.dataset.problem = key;
  if (p.kind === 'service') e.el.dataset.service = p.name;
  else e.el.dataset.node = p.name;
  e.kind = el('span', 'p-kind', p.kind);
  e.name = el('span', 'p-name', p.name);
  e.badge = el('span', 'st');
  e.reason = el('span', 'p-reason');
  e.el.append(e.kind, e.name, e.badge, e.reason);
  e.el.addEventListener('click', () => {
    if (p.kind === 'service') {
      const row = serviceRows.get(p.name);
      if (row && !expanded.has(p.name)) toggleExpanded(p.name);
      if (row) row.el.scrollIntoView({ block: 'nearest' });
    } else {
      const n = nodeCache.get(p.name);
      if (n) n.el.scrollIntoView({ block: 'nearest' });
    }
  });
  return e;
}

function updateProblem(e, p) {
  setBadge(e, 'state', e.badge, p.state);
  e.el.dataset.state = p.state;
  if (e.v.sev !== p.sev) {
    e.v.sev = p.sev;
    e.el.classList.toggle('sev-bad', p.sev >= 2);
  }
  if (setText(e, 'reason', e.reason, p.reason)) e.reason.title = p.reason;
}

function flushProblems() {
  const list = [];
  for (const s of problemServices.values()) {
    const state = str(s.state);
    list.push({ kind: 'service', name: str(s.name), state, sev: PROBLEM_SERVICE[state] || 1, reason: str(s.reason) || `${num(s.replicas && s.replicas.ready)}/${num(s.replicas && s.replicas.desired)} ready` });
  }
  for (const n of model.nodes.values()) {
    const state = str(n.state);
    if (PROBLEM_NODE[state]) list.push({ kind: 'node', name: str(n.name), state, sev: PROBLEM_NODE[state], reason: `last heartbeat ${fmtAge(Date.now() + model.clockOffset - Date.parse(str(n.lastHeartbeat)))} ago` });
  }
  list.sort((a, b) => b.sev - a.sev || (a.kind < b.kind ? 1 : a.kind > b.kind ? -1 : 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  syncList(els.problems, list, problemCache, (p) => `${p.kind}:${p.name}`, createProblem, updateProblem);
  els.problems.dataset.count = String(list.length);
  els.problemsCount.textContent = String(list.length);
  els.problemsCount.parentElement.classList.toggle('has-problems', list.length > 0);
  els.allGood.hidden = list.length > 0 || model.services.size + model.nodes.size === 0;
}

const summaryCache = { v: {} };
function flushSummary() {
  const counts = { healthy: 0, problems: problemServices.size, other: 0 };
  for (const s of model.services.values()) if (str(s.state) === 'healthy') counts.healthy++;
  let ready = 0;
  for (const n of model.nodes.values()) if (str(n.state) === 'ready') ready++;
  const leader = model.servers.find((v) => v && (v.role === 'leader' || v.leader === true));
  const parts = [
    ['services', `${model.services.size}`],
    ['healthy', `${counts.healthy}`],
    ['failing', `${counts.problems}`],
    ['nodes ready', `${ready}/${model.nodes.size}`],
    ['leader', leader ? str(leader.name) : '–'],
  ];
  const text = JSON.stringify(parts);
  if (summaryCache.v.text === text) return;
  summaryCache.v.text = text;
  const frag = document.createDocumentFragment();
  for (const [label, value] of parts) {
    const span = el('span', label === 'failing' && counts.problems > 0 ? 'bad' : '');
    span.append(el('b', '', value), document.createTextNode(` ${label}`));
    frag.append(span);
  }
  els.summary.replaceChildren(frag);
  els.servicesCount.textContent = String(model.services.size);
  els.nodesCount.textContent = String(model.nodes.size);
  els.servicesEmpty.hidden = model.services.size > 0;
}

// ---------------------------------------------------------------------------------------------
// Reconciliation log: newest on top, at most MAX_LOG_ROWS rows.

function eventRow(e, fresh) {
  const tr = el('tr', fresh ? 'fresh' : '');
  tr.setAttribute('data-testid', 'event-row');
  const service = str(e.service);
  const outcome = str(e.outcome);
  if (service) tr.dataset.service = service;
  tr.dataset.outcome = outcome;
  const reason = e.message ? `${str(e.reason)} — ${str(e.message)}` : str(e.reason);
  const cells = [
    el('td', 'time', fmtClock(str(e.time))),
    el('td', '', str(e.reconciler)),
    el('td', 'mono', str(e.action)),
    el('td', 'mono', service || '–'),
    el('td', 'mono', str(e.instance) || '–'),
    el('td', '', str(e.node) || '–'),
    el('td', /^[a-z-]{1,20}$/.test(outcome) ? `out-${outcome}` : '', outcome),
    el('td', 'num', String(Math.round(num(e.durationMs)))),
    el('td', 'reason', reason),
  ];
  cells[8].title = reason;
  tr.append(...cells);
  return tr;
}

function flushLog() {
  if (pending.resetLog) {
    els.log.replaceChildren();
    pending.resetLog = false;
  }
  const batch = pending.events.length > MAX_LOG_ROWS ? pending.events.slice(-MAX_LOG_ROWS) : pending.events;
  pending.events = [];
  if (batch.length === 0) return;
  const fresh = batch.length <= 20 && ui.snapshots > 0;
  const frag = document.createDocumentFragment();
  for (let i = batch.length - 1; i >= 0; i--) frag.append(eventRow(batch[i], fresh));
  els.log.prepend(frag);
  let extra = els.log.childElementCount - MAX_LOG_ROWS;
  while (extra-- > 0) els.log.lastElementChild.remove();
}

// ---------------------------------------------------------------------------------------------
// Recovery chart: a canvas, redrawn at most once per frame and only when something changed.

const chart = { w: 0, h: 0, dpr: 1 };

function resizeChart() {
  const r = els.chart.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(r.width));
  const h = Math.max(1, Math.round(r.height));
  if (w === chart.w && h === chart.h && dpr === chart.dpr) return false;
  chart.w = w;
  chart.h = h;
  chart.dpr = dpr;
  els.chart.width = Math.round(w * dpr);
  els.chart.height = Math.round(h * dpr);
  return true;
}

/** A round upper bound for the y axis (1, 2, 5 × 10^n ms). */
function niceMax(v) {
  if (!(v > 0)) return 1000;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function drawChart() {
  resizeChart();
  const ctx = els.chart.getContext('2d');
  if (!ctx) return;
  const { w, h, dpr } = chart;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const data = model.recoveries;
  els.chart.dataset.count = String(data.length);
  const padL = 52;
  const padR = 8;
  const padT = 8;
  const padB = 18;
  const pw = Math.max(1, w - padL - padR);
  const ph = Math.max(1, h - padT - padB);
  const values = data.map((r) => num(r.ms));
  const sorted = [...values].sort((a, b) => a - b);
  const p50 = quantile(sorted, 0.5);
  const p95 = quantile(sorted, 0.95);
  // The axis covers p99 and a margin; the rare outliers above are drawn at the top edge.
  const top = niceMax(Math.max(quantile(sorted, 0.99) * 1.1 || 0, p95 * 1.2 || 0));
  ctx.font = '11px ui-monospace, "DejaVu Sans Mono", monospace';
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  ctx.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const y = Math.round(padT + ph - (ph * k) / 4) + 0.5;
    ctx.strokeStyle = '#222b36';
    ctx.beginPath();
    ctx.moveTo(padL, y);
    ctx.lineTo(padL + pw, y);
    ctx.stroke();
    ctx.fillStyle = '#8893a2';
    ctx.fillText(fmtMs((top * k) / 4), padL - 6, y);
  }
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.fillStyle = '#6e7681';
  ctx.fillText(data.length === 0 ? 'no recoveries yet' : `${data.length} recoveries, oldest left`, padL, h - 4);
  if (data.length === 0) {
    els.chartLegend.textContent = 'A recovery is a crashed instance replaced and ready again.';
    return;
  }
  const n = data.length;
  const xOf = (i) => padL + (n === 1 ? pw / 2 : (pw * i) / (n - 1));
  const yOf = (v) => padT + ph - (ph * Math.min(v, top)) / top;
  for (const [q, colour] of [[p50, '#58a6ff'], [p95, '#d29922']]) {
    const y = Math.round(yOf(q)) + 0.5;
    ctx.strokeStyle = colour;
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    ctx.moveTo(padL, y);
    ctx.lineTo(padL + pw, y);
    ctx.stroke();
  }
  ctx.setLineDash([]);
  const r = n > 200 ? 1.6 : 2.4;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    ctx.fillStyle = v > p95 ? '#f85149' : v > p50 ? '#d29922' : '#3fb950';
    ctx.beginPath();
    ctx.arc(xOf(i), yOf(v), r, 0, Math.PI * 2);
    ctx.fill();
  }
  const last = data[n - 1];
  els.chartLegend.textContent =
    `p50 ${fmtMs(p50)} · p95 ${fmtMs(p95)} · max ${fmtMs(sorted[n - 1])} · last ${str(last.service)}` +
    `${last.node ? ` on ${str(last.node)}` : ''} ${fmtMs(num(last.ms))}${last.reason ? ` (${str(last.reason)})` : ''}`;
}

if (typeof ResizeObserver === 'function') {
  new ResizeObserver(() => {
    pending.chart = true;
    schedule();
  }).observe(els.chart);
}

// ---------------------------------------------------------------------------------------------
// The frame: everything recorded since the last one, at once.

function flush() {
  frameRequested = false;
  ui.frames++;
  let problemsDirty = false;
  let summaryDirty = false;
  if (pending.services.size > 0) {
    const names = pending.services;
    pending.services = new Set();
    for (const name of names) {
      const s = model.services.get(name);
      const inProblem = s && PROBLEM_SERVICE[str(s.state)] !== undefined;
      if (inProblem) {
        problemServices.set(name, s);
        problemsDirty = true;
      } else if (problemServices.delete(name)) problemsDirty = true;
    }
    flushServices(names);
    summaryDirty = true;
  }
  if (pending.nodes || pending.servers) {
    pending.nodes = false;
    pending.servers = false;
    flushNodes();
    problemsDirty = true;
    summaryDirty = true;
  }
  if (problemsDirty) flushProblems();
  if (summaryDirty) flushSummary();
  if (pending.events.length > 0 || pending.resetLog) flushLog();
  if (pending.chart) {
    pending.chart = false;
    drawChart();
  }
}

// ---------------------------------------------------------------------------------------------
// The stream

function asArray(v) {
  return Array.isArray(v) ? v : [];
}

function takeServices(list) {
  for (const s of asArray(list)) {
    if (!s || typeof s !== 'object' || typeof s.name !== 'string') continue;
    model.services.set(s.name, s);
    pending.services.add(s.name);
  }
}

function takeNodes(list) {
  model.nodes = new Map();
  for (const n of asArray(list)) if (n && typeof n === 'object' && typeof n.name === 'string') model.nodes.set(n.name, n);
  pending.nodes = true;
}

function takeEvents(list) {
  for (const e of asArray(list)) if (e && typeof e === 'object') pending.events.push(e);
  if (pending.events.length > MAX_PENDING_EVENTS * 2) pending.events = pending.events.slice(-MAX_PENDING_EVENTS);
}

function takeRecoveries(list) {
  for (const r of asArray(list)) if (r && typeof r === 'object') model.recoveries.push(r);
  if (model.recoveries.length > MAX_RECOVERIES) model.recoveries.splice(0, model.recoveries.length - MAX_RECOVERIES);
  pending.chart = true;
}

const handlers = {
  snapshot(d) {
    ui.snapshots++;
    if (typeof d.now === 'number') model.clockOffset = d.now - Date.now();
    const fresh = new Set();
    for (const s of asArray(d.services)) if (s && typeof s.name === 'string') fresh.add(s.name);
    for (const name of model.services.keys()) {
      if (!fresh.has(name)) {
        model.services.delete(name);
        pending.services.add(name);
      }
    }
    takeServices(d.services);
    takeNodes(d.nodes);
    model.servers = asArray(d.servers);
    pending.servers = true;
    pending.events = [];
    pending.resetLog = true;
    takeEvents(d.events);
    model.recoveries = [];
    takeRecoveries(d.recoveries);
  },
  services(d) {
    takeServices(d.changed);
    for (const name of asArray(d.removed)) {
      if (typeof name !== 'string') continue;
      model.services.delete(name);
      pending.services.add(name);
    }
  },
  nodes(d) {
    takeNodes(d.nodes);
  },
  servers(d) {
    model.servers = asArray(d.servers);
    pending.servers = true;
  },
  event(d) {
    takeEvents([d]);
  },
  events(d) {
    takeEvents(d.events);
  },
  recovery(d) {
    takeRecoveries([d]);
  },
};

function setConnection(state, text) {
  els.conn.dataset.state = state;
  els.conn.className = `conn conn-${state}`;
  els.conn.textContent = text;
  ui.connected = state === 'live';
}

let source = null;
let retryMs = 1000;

function connect() {
  source = new EventSource('/ui/stream');
  source.onopen = () => {
    retryMs = 1000;
    setConnection('live', 'live');
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CONNECTING) {
      setConnection('reconnecting', 'reconnecting…');
      return;
    }
    // Closed for good (an answer that was not a stream: a lapsed session is 401). Signed out → the
    // sign-in page; anything else → try again with backoff.
    source.close();
    setConnection('reconnecting', 'reconnecting…');
    void checkSession().then((signedIn) => {
      if (!signedIn) return;
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15_000);
    });
  };
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!data || typeof data !== 'object') return;
      fn(data);
      schedule();
    });
  }
}

/** False (and off to the sign-in page) when the session is gone; true otherwise. */
async function checkSession() {
  try {
    const res = await fetch('/ui', { method: 'GET', credentials: 'same-origin', redirect: 'manual', cache: 'no-store' });
    if (res.type === 'opaqueredirect' || res.status === 401) {
      window.location.replace('/ui/login');
      return false;
    }
  } catch {
    /* server away: keep trying */
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Actions: the existing API, same origin, JSON, behind a confirmation.

function toast(text, isError) {
  const t = el('div', isError ? 'toast err' : 'toast', text);
  t.setAttribute('data-testid', isError ? 'action-error' : 'action-result');
  els.toasts.append(t);
  while (els.toasts.childElementCount > 4) els.toasts.firstElementChild.remove();
  setTimeout(() => t.remove(), isError ? 12_000 : 6_000);
}

function confirmAction(title, text, okLabel) {
  return new Promise((resolve) => {
    els.dialogTitle.textContent = title;
    els.dialogText.textContent = text;
    els.dialogOk.textContent = okLabel;
    els.dialog.returnValue = '';
    els.dialog.addEventListener('close', () => resolve(els.dialog.returnValue === 'ok'), { once: true });
    els.dialog.showModal();
  });
}

async function postJson(path) {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: '{}',
  });
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (res.status === 401) {
    await checkSession();
  }
  if (!res.ok) throw new Error(body && typeof body.message === 'string' ? body.message.slice(0, 500) : `HTTP ${res.status}`);
  return body || {};
}

async function rollbackService(name, button) {
  const s = model.services.get(name);
  const rev = s ? num(s.revision) : 0;
  const ok = await confirmAction(
    `Roll back ${name}?`,
    `Service ${name} is at revision ${rev}. Rolling back writes the previous revision's spec as a new revision and rolls it out.`,
    'Roll back',
  );
  if (!ok) return;
  button.disabled = true;
  try {
    const r = await postJson(`/v1/services/${encodeURIComponent(name)}/rollback`);
    if (r.action === 'unchanged') toast(`service/${name} unchanged (revision ${num(r.from)} is what runs already)`);
    else toast(`service/${name} rolled back to revision ${num(r.from)} as revision ${num(r.revision)}`);
  } catch (err) {
    toast(`rollback of ${name} failed: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

async function nodeAction(name, verb, button) {
  const ok = await confirmAction(
    verb === 'drain' ? `Drain node ${name}?` : `Uncordon node ${name}?`,
    verb === 'drain'
      ? `Its instances move to other nodes (start-first) and it takes no new ones until uncordoned.`
      : `Node ${name} takes new instances again. Nothing moves back by itself (orca rebalance does that).`,
    verb === 'drain' ? 'Drain' : 'Uncordon',
  );
  if (!ok) return;
  button.disabled = true;
  try {
    const r = await postJson(`/v1/nodes/${encodeURIComponent(name)}/${verb}`);
    toast(`node/${name} ${verb === 'drain' ? 'drained' : 'uncordoned'} (now ${str(r.state) || 'unknown'})`);
  } catch (err) {
    toast(`${verb} of ${name} failed: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

els.logout.addEventListener('click', async () => {
  try {
    await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  } finally {
    window.location.replace('/ui/login');
  }
});

setInterval(tickAges, 1000);
pending.chart = true;
schedule();
connect();
