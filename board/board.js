// rt-relay board: lists tickets (GET /tickets, cursor paging), creates them (POST /tickets
// with an Idempotency-Key) and follows the live feed (the WebSocket API), resuming after a
// drop with `since` and catching up with GET /notifications. Plain script, no build step,
// no third-party code; everything it talks to is this origin and the WebSocket API.
"use strict";

(function () {
  const KEY_STORAGE = "rt-relay-board-key";
  const PAGE_SIZE = 20;
  const PING_EVERY_MS = 5 * 60 * 1000; // under API Gateway's 10-minute idle limit
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 8000;
  const CATCH_UP_PAGES = 10;
  const SETTLE_MS = 6000; // the feed's settle horizon (5 s) plus a margin
  const SEEN_LIMIT = 5000;

  const $ = (id) => document.getElementById(id);
  const el = {
    connection: $("connection"),
    forget: $("forget-key"),
    keySection: $("key-section"),
    keyForm: $("key-form"),
    keyInput: $("api-key"),
    keyError: $("key-error"),
    board: $("board"),
    createForm: $("create-form"),
    createSubmit: $("create-submit"),
    createError: $("create-error"),
    createStatus: $("create-status"),
    filterForm: $("filter-form"),
    filterQueue: $("filter-queue"),
    filterStatus: $("filter-status"),
    listError: $("list-error"),
    caption: $("list-caption"),
    rows: $("ticket-rows"),
    empty: $("list-empty"),
    more: $("load-more"),
    announcer: $("announcer"),
  };
  const fields = {
    title: $("new-title"),
    description: $("new-description"),
    queue: $("new-queue"),
  };

  const state = {
    key: null,
    websocketUrl: null,
    filters: { queue: "", status: "" },
    tickets: new Map(), // id -> ticket as last seen
    nextCursor: null,
    seen: new Set(), // notification ids applied (at-least-once delivery: dedupe)
    lastId: null, // the newest notification id applied, the `since` of the next connect
    lastAt: "",
    socket: null,
    socketSerial: 0,
    attempt: 0,
    reconnectTimer: null,
    pingTimer: null,
    resume: null, // {since, openedAt, missed} while a reconnect is catching up
    createKey: null, // the Idempotency-Key of the form's current request
    creating: false,
  };

  // ------------------------------------------------------------------ helpers

  function announce(text) {
    el.announcer.textContent = "";
    window.setTimeout(() => { el.announcer.textContent = text; }, 50);
  }

  function setConnection(kind, text) {
    el.connection.dataset.state = kind;
    el.connection.textContent = text;
  }

  function newIdempotencyKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return "board-" + window.crypto.randomUUID();
    }
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "board-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function age(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "";
    const s = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    if (s < 86400) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  async function api(method, path, body, headers) {
    const init = {
      method,
      headers: Object.assign({ authorization: "Bearer " + state.key }, headers || {}),
      cache: "no-store",
    };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    let json = null;
    try { json = await resp.json(); } catch (_) { json = null; }
    return { status: resp.status, body: json };
  }

  function errorText(res) {
    const refused = res.body && res.body.error && res.body.error.code === "queue_forbidden";
    if (res.status === 401 || (res.status === 403 && !refused)) {
      return "The API key was refused (" + res.status + "): it may be revoked or lack a scope.";
    }
    const e = res.body && res.body.error;
    if (e && e.message) return e.message + " (" + e.code + ")";
    if (res.body && res.body.message) return res.body.message + " (" + res.status + ")";
    return "The API answered " + res.status + ".";
  }

  function matchesFilters(ticket) {
    if (state.filters.queue && ticket.queue !== state.filters.queue) return false;
    if (state.filters.status && ticket.status !== state.filters.status) return false;
    return true;
  }

  // Whether the live feed, narrowed by the filters, sends `n`: the relay's own rule (a
  // status filter also hears a ticket entering or leaving the status, so its row can go).
  function liveFeedSends(n) {
    const f = state.filters;
    if (f.queue && n.ticket.queue !== f.queue) return false;
    if (!f.status || n.ticket.status === f.status) return true;
    const c = n.change || {};
    return n.type === "ticket.status_changed" && c.field === "status" &&
      (c.old === f.status || c.new === f.status);
  }

  // The WebSocket subscription for the filters: `{queue: [...], status: [...]}`.
  function subscription() {
    const sub = {};
    if (state.filters.queue) sub.queue = [state.filters.queue];
    if (state.filters.status) sub.status = [state.filters.status];
    return sub;
  }

  // Says, under the list, what the live feed is narrowed to (as the relay confirmed it).
  function showLiveFilter(sub) {
    const parts = [];
    if (sub && sub.queue && sub.queue.length) parts.push("queue " + sub.queue.join(", "));
    if (sub && sub.status && sub.status.length) parts.push("status " + sub.status.join(", "));
    el.caption.textContent = "Newest first; rows update live" +
      (parts.length ? " (live feed: " + parts.join(", ") + ")." : ".");
    el.caption.dataset.liveFilter = parts.join("; ");
  }

  // ------------------------------------------------------------------ rows

  function cell(row, label, className) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fillRow(row, t, eventText) {
    row.textContent = "";
    row.dataset.ticketId = String(t.id);
    row.dataset.status = t.status;
    cell(row, "#", "id").textContent = String(t.id);
    const title = cell(row, "Title", "title");
    if (t.rt_url) {
      const a = document.createElement("a");
      a.href = t.rt_url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = t.title;
      a.setAttribute("aria-label", t.title + " (ticket " + t.id + " in RT, opens a new tab)");
      title.appendChild(a);
    } else {
      title.textContent = t.title;
    }
    const status = document.createElement("span");
    status.className = "status status-" + String(t.status).replace(/[^a-z]/g, "");
    status.textContent = t.status;
    cell(row, "Status", "status-cell").appendChild(status);
    cell(row, "Queue", "queue").textContent = t.queue;
    const when = cell(row, "Age", "age");
    when.textContent = age(t.created_at);
    if (t.created_at) when.title = t.created_at;
    cell(row, "Last event", "event").textContent = eventText || t.lastEvent || "";
  }

  function rowOf(id) {
    return el.rows.querySelector('tr[data-ticket-id="' + String(id) + '"]');
  }

  function flash(row) {
    row.classList.remove("flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("flash");
  }

  // Puts a ticket's row where its id belongs (newest first); returns the row.
  function placeRow(t, eventText, highlight) {
    let row = rowOf(t.id);
    if (!row) {
      row = document.createElement("tr");
      let before = null;
      for (const other of el.rows.children) {
        if (Number(other.dataset.ticketId) < t.id) { before = other; break; }
      }
      el.rows.insertBefore(row, before);
    }
    fillRow(row, t, eventText);
    if (highlight) flash(row);
    el.empty.hidden = el.rows.children.length > 0;
    return row;
  }

  function removeRow(id) {
    const row = rowOf(id);
    if (row) row.remove();
    el.empty.hidden = el.rows.children.length > 0;
  }

  function describe(n) {
    switch (n.type) {
      case "ticket.created": return "created";
      case "ticket.status_changed":
      case "ticket.updated": {
        const c = n.change || {};
        return (c.field || "field") + ": " + (c.old ?? "—") + " → " + (c.new ?? "—");
      }
      case "ticket.replied": return "reply" + (n.excerpt ? ": " + n.excerpt : "");
      case "ticket.commented": return "comment" + (n.excerpt ? ": " + n.excerpt : "");
      default: return n.type;
    }
  }

  // ------------------------------------------------------------------ notifications

  function remember(id) {
    state.seen.add(id);
    if (state.seen.size > SEEN_LIMIT) {
      const oldest = state.seen.values().next().value;
      state.seen.delete(oldest);
    }
  }

  // Applies one notification once (by id); returns whether it was new.
  function applyNotification(n) {
    if (!n || typeof n.id !== "string" || !n.ticket || state.seen.has(n.id)) return false;
    remember(n.id);
    if (!state.lastAt || (n.created_at || "") >= state.lastAt) {
      state.lastId = n.id;
      state.lastAt = n.created_at || state.lastAt;
    }
    // A catch-up over HTTP reads every notification of the key's queues: only those the
    // filtered live feed would have sent count as missed.
    if (state.resume && liveFeedSends(n) &&
        (!n.created_at || Date.parse(n.created_at) < state.resume.openedAt)) {
      state.resume.missed += 1;
      showResumed();
    }
    const known = state.tickets.get(n.ticket.id) || {};
    const t = Object.assign({}, known, n.ticket);
    if (!t.created_at) t.created_at = n.type === "ticket.created" ? n.created_at : known.created_at;
    t.lastEvent = describe(n);
    state.tickets.set(t.id, t);
    if (matchesFilters(t)) {
      placeRow(t, t.lastEvent, true);
      announce("Ticket " + t.id + ": " + t.lastEvent);
    } else {
      removeRow(t.id);
    }
    return true;
  }

  function showResumed() {
    const n = state.resume ? state.resume.missed : 0;
    setConnection("resumed", "Resumed, " + n + " missed event" + (n === 1 ? "" : "s"));
  }

  // Catches up after a reconnect: GET /notifications?since=<id> (oldest first) where the
  // API has it; an API without `since` answers its newest-first list instead, which is
  // read back to the last id seen. Either way each notification is applied once.
  async function catchUp(since) {
    let cursor = null;
    for (let page = 0; page < CATCH_UP_PAGES; page += 1) {
      const q = new URLSearchParams({ since, limit: "100" });
      if (cursor) q.set("cursor", cursor);
      const res = await api("GET", "notifications?" + q.toString());
      if (res.status === 410) { await resync("position_expired"); return; }
      if (res.status === 400 && page === 0) { await catchUpNewestFirst(since); return; }
      if (res.status !== 200 || !res.body) return;
      const items = res.body.items || [];
      const at = items.findIndex((n) => n.id === since);
      const descending = items.length > 1 && items[0].created_at > items[items.length - 1].created_at;
      if (page === 0 && (at >= 0 || descending)) {
        // `since` was not applied: this is the newest-first list.
        await catchUpNewestFirst(since, res.body);
        return;
      }
      items.forEach(applyNotification);
      cursor = res.body.next_cursor;
      if (!cursor) return;
    }
  }

  async function catchUpNewestFirst(since, firstPage) {
    const newer = [];
    let body = firstPage;
    for (let page = 0; page < CATCH_UP_PAGES; page += 1) {
      if (!body) {
        const q = new URLSearchParams({ limit: "100" });
        const res = await api("GET", "notifications?" + q.toString());
        if (res.status !== 200 || !res.body) return;
        body = res.body;
      }
      const items = body.items || [];
      const at = items.findIndex((n) => n.id === since);
      newer.push(...(at >= 0 ? items.slice(0, at) : items));
      if (at >= 0 || !body.next_cursor) break;
      const q = new URLSearchParams({ limit: "100", cursor: body.next_cursor });
      const res = await api("GET", "notifications?" + q.toString());
      if (res.status !== 200 || !res.body) break;
      body = res.body;
    }
    newer.reverse().forEach(applyNotification);
  }

  async function resync(reason) {
    announce("The live feed asked for a resync (" + reason + "); reloading the list.");
    await loadTickets(true);
    await seedPosition();
  }

  // The newest notification id, so even a board that has heard nothing yet resumes from
  // where it started.
  async function seedPosition() {
    const res = await api("GET", "notifications?limit=1");
    if (res.status === 200 && res.body && res.body.items && res.body.items[0]) {
      const n = res.body.items[0];
      remember(n.id);
      state.lastId = n.id;
      state.lastAt = n.created_at || "";
    }
  }

  // ------------------------------------------------------------------ the socket

  function socketUrl() {
    const url = new URL(state.websocketUrl, window.location.href);
    url.searchParams.set("api_key", state.key);
    if (state.lastId) url.searchParams.set("since", state.lastId);
    const sub = subscription();
    for (const [kind, values] of Object.entries(sub)) {
      for (const v of values) url.searchParams.append(kind, v);
    }
    return url.toString();
  }

  // Narrows an open socket to the filters (answered `subscribed`, or `error`).
  function subscribe(socket) {
    const sub = subscription();
    socket.filter = JSON.stringify(sub);
    socket.send(JSON.stringify(Object.assign({ action: "subscribe" }, sub)));
  }

  function connect(resuming) {
    window.clearTimeout(state.reconnectTimer);
    if (!state.websocketUrl) {
      setConnection("offline", "No WebSocket URL configured");
      return;
    }
    const since = state.lastId;
    const serial = ++state.socketSerial;
    const previous = state.socket;
    setConnection(resuming ? "reconnecting" : "connecting",
      resuming ? "Reconnecting (attempt " + state.attempt + ")…" : "Connecting…");
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (_) {
      scheduleReconnect();
      return;
    }
    // The handshake carries the filters: the socket is narrowed from its first message
    // (and its `since` replay with it).
    socket.filter = JSON.stringify(subscription());
    state.socket = socket;
    socket.onopen = () => {
      if (serial !== state.socketSerial) return;
      // A `reconnect` message leaves the old socket open until the new one is up.
      if (previous && previous !== socket) closeQuietly(previous);
      state.attempt = 0;
      // The filters changed while it was connecting.
      if (socket.filter !== JSON.stringify(subscription())) subscribe(socket);
      else showLiveFilter(JSON.parse(socket.filter));
      window.clearInterval(state.pingTimer);
      state.pingTimer = window.setInterval(ping, PING_EVERY_MS);
      if (resuming && since) {
        state.resume = { since, openedAt: Date.now(), missed: 0 };
        showResumed();
        catchUp(since)
          .then(() => window.setTimeout(() => {
            // Notifications younger than the settle horizon reach a `since` page late.
            if (serial === state.socketSerial) catchUp(since);
          }, SETTLE_MS))
          .catch(() => {});
      } else {
        state.resume = null;
        setConnection("connected", "Connected");
      }
    };
    socket.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (_) { return; }
      if (!msg || typeof msg !== "object") return;
      switch (msg.type) {
        case "pong":
          return;
        case "subscribed":
          showLiveFilter(msg.subscription);
          el.listError.textContent = "";
          return;
        case "error":
          // A refused `subscribe`: the socket keeps its previous filter.
          el.listError.textContent = "The live feed refused the filter: " + (msg.message || msg.code);
          return;
        case "reconnect":
          // The API is about to cut this socket: open the next one first, with `since`.
          if (msg.since && !state.lastId) state.lastId = msg.since;
          if (serial === state.socketSerial) connect(true);
          return;
        case "resync":
          resync(msg.reason || "resync");
          return;
        default:
          if (typeof msg.type === "string" && msg.type.startsWith("ticket.")) applyNotification(msg);
      }
    };
    socket.onclose = (event) => {
      if (serial !== state.socketSerial) return;
      window.clearInterval(state.pingTimer);
      if (!state.key) return;
      if (event.code === 1008 || event.code === 4401 || event.code === 4403) {
        setConnection("refused", "The WebSocket refused the key");
      }
      scheduleReconnect();
    };
  }

  // Keeps the socket alive; the answer is `pong`, or `reconnect` when the API is about to
  // cut it (handled in onmessage).
  function ping() {
    const socket = state.socket;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ action: "ping" }));
  }

  function closeQuietly(socket) {
    socket.onclose = null;
    socket.onmessage = null;
    try { socket.close(1000, "replaced"); } catch (_) { /* already closed */ }
  }

  function scheduleReconnect() {
    state.attempt += 1;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (state.attempt - 1));
    const wait = base / 2 + Math.random() * base / 2;
    setConnection("reconnecting", "Reconnecting (attempt " + state.attempt + ")…");
    state.reconnectTimer = window.setTimeout(() => connect(true), wait);
  }

  function disconnect() {
    state.socketSerial += 1;
    window.clearTimeout(state.reconnectTimer);
    window.clearInterval(state.pingTimer);
    if (state.socket) closeQuietly(state.socket);
    state.socket = null;
  }

  // ------------------------------------------------------------------ the list

  async function loadTickets(reset) {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.filters.queue) q.set("queue", state.filters.queue);
    if (state.filters.status) q.set("status", state.filters.status);
    if (!reset && state.nextCursor) q.set("cursor", state.nextCursor);
    el.more.disabled = true;
    let res;
    try {
      res = await api("GET", "tickets?" + q.toString());
    } catch (_) {
      el.listError.textContent = "The API cannot be reached.";
      el.more.disabled = false;
      return false;
    }
    el.more.disabled = false;
    if (res.status !== 200 || !res.body) {
      el.listError.textContent = errorText(res);
      const e = res.body && res.body.error;
      // The API names the filter field at fault (e.g. a key with several queues must name one).
      if (e && e.field === "queue") el.filterQueue.setAttribute("aria-invalid", "true");
      return res.status !== 401 && res.status !== 403;
    }
    el.filterQueue.removeAttribute("aria-invalid");
    el.listError.textContent = "";
    if (reset) {
      el.rows.textContent = "";
      state.tickets.clear();
    }
    for (const t of res.body.items || []) {
      const known = state.tickets.get(t.id);
      const merged = Object.assign({}, t, known ? { lastEvent: known.lastEvent } : {});
      state.tickets.set(t.id, merged);
      placeRow(merged, merged.lastEvent, false);
    }
    state.nextCursor = res.body.next_cursor || null;
    el.more.hidden = !state.nextCursor;
    el.empty.hidden = el.rows.children.length > 0;
    return true;
  }

  // ------------------------------------------------------------------ the create form

  function clearFieldErrors() {
    for (const [name, input] of Object.entries(fields)) {
      input.removeAttribute("aria-invalid");
      $(name + "-error").textContent = "";
    }
    el.createError.textContent = "";
  }

  async function createTicket(event) {
    event.preventDefault();
    if (state.creating) return; // no double submit
    clearFieldErrors();
    el.createStatus.textContent = "";
    const body = { title: fields.title.value };
    if (fields.description.value) body.description = fields.description.value;
    if (fields.queue.value.trim()) body.queue = fields.queue.value.trim();
    // The same request keeps its key, so a retry after a lost answer creates nothing new.
    if (!state.createKey) state.createKey = newIdempotencyKey();
    state.creating = true;
    el.createSubmit.disabled = true;
    el.createForm.setAttribute("aria-busy", "true");
    try {
      const res = await api("POST", "tickets", body, { "idempotency-key": state.createKey });
      if (res.status === 201 && res.body) {
        state.createKey = null;
        el.createForm.reset();
        const t = res.body;
        const known = state.tickets.get(t.id);
        const merged = Object.assign({}, t, { lastEvent: known ? known.lastEvent : "created" });
        state.tickets.set(t.id, merged);
        if (matchesFilters(merged)) placeRow(merged, merged.lastEvent, true);
        el.createStatus.textContent = "Ticket " + t.id + " created.";
        fields.title.focus();
        return;
      }
      const e = res.body && res.body.error;
      if (e && e.field && fields[e.field]) {
        fields[e.field].setAttribute("aria-invalid", "true");
        $(e.field + "-error").textContent = e.message;
        fields[e.field].focus();
      } else {
        el.createError.textContent = errorText(res);
      }
      // A refused request is finished: the next attempt is a new request with a new key.
      if (res.status >= 400 && res.status < 500 && res.status !== 409) state.createKey = null;
    } catch (_) {
      el.createError.textContent = "The API cannot be reached; submit again to retry the same request.";
    } finally {
      state.creating = false;
      el.createSubmit.disabled = false;
      el.createForm.removeAttribute("aria-busy");
    }
  }

  // ------------------------------------------------------------------ start and stop

  async function loadConfig() {
    try {
      const resp = await fetch("board/config.json", { cache: "no-store" });
      const config = await resp.json();
      state.websocketUrl = config.websocket_url || null;
    } catch (_) {
      state.websocketUrl = null;
    }
  }

  async function open() {
    el.keySection.hidden = true;
    el.board.hidden = false;
    el.forget.hidden = false;
    const ok = await loadTickets(true);
    if (!ok) {
      showKeyForm("The API key was refused: " + el.listError.textContent);
      return;
    }
    await seedPosition();
    connect(false);
  }

  function showKeyForm(message) {
    disconnect();
    state.key = null;
    window.sessionStorage.removeItem(KEY_STORAGE);
    el.board.hidden = true;
    el.forget.hidden = true;
    el.keySection.hidden = false;
    el.keyError.textContent = message || "";
    setConnection("offline", "Not connected");
    el.keyInput.focus();
  }

  function onKeySubmit(event) {
    event.preventDefault();
    const key = el.keyInput.value.trim();
    if (!key) {
      el.keyError.textContent = "Enter an API key.";
      el.keyInput.focus();
      return;
    }
    el.keyInput.value = "";
    state.key = key;
    window.sessionStorage.setItem(KEY_STORAGE, key);
    open();
  }

  function onFilter(event) {
    event.preventDefault();
    state.filters.queue = el.filterQueue.value.trim();
    state.filters.status = el.filterStatus.value;
    state.nextCursor = null;
    loadTickets(true).then(() => {
      const socket = state.socket;
      if (socket && socket.readyState === WebSocket.OPEN) subscribe(socket);
      $("tickets").focus();
    });
  }

  async function start() {
    el.keyForm.addEventListener("submit", onKeySubmit);
    el.createForm.addEventListener("submit", createTicket);
    el.filterForm.addEventListener("submit", onFilter);
    el.more.addEventListener("click", () => loadTickets(false));
    el.forget.addEventListener("click", () => showKeyForm(""));
    // Background tabs run timers late: a tab shown again checks its socket at once.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") ping();
    });
    for (const input of Object.values(fields)) {
      // Editing the request makes it a new one (a new Idempotency-Key).
      input.addEventListener("input", () => { state.createKey = null; });
    }
    window.setInterval(() => {
      for (const row of el.rows.children) {
        const t = state.tickets.get(Number(row.dataset.ticketId));
        const when = row.querySelector("td.age");
        if (t && when) when.textContent = age(t.created_at);
      }
    }, 30000);
    await loadConfig();
    // Every handler is attached: the page is ready for input.
    document.documentElement.dataset.ready = "true";
    const key = window.sessionStorage.getItem(KEY_STORAGE);
    if (key) {
      state.key = key;
      open();
    } else {
      showKeyForm("");
    }
  }

  start();
})();
