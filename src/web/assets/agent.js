// The agent console: the queue and the screen-pop, kept live by server-sent events.
// Everything from the server is put in the page as text (textContent), never as markup.
"use strict";

(function () {
  const root = document.getElementById("console");
  if (!root) {
    return;
  }
  const KINDS = ["handoff", "status", "outcome"];
  const STATUS_TEXT = {
    waiting: "Waiting",
    answered: "Answered",
    abandoned: "Abandoned in queue",
    unanswered: "Not answered",
    ended: "Ended",
  };
  const state = {
    calls: new Map(),
    selected: null,
    lastSeq: 0,
    departments: [],
    source: null,
    dirty: false,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const m = Math.floor(s / 60);
    const rest = String(s % 60).padStart(2, "0");
    return m >= 60 ? Math.floor(m / 60) + " h " + (m % 60) + " min" : m + ":" + rest;
  }

  function date(ms) {
    return new Date(ms).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  function displayName(call) {
    return call.account_name || "Unknown caller";
  }

  function statusText(call) {
    return STATUS_TEXT[call.queue_status] || call.call_status || "";
  }

  function setLive(cls, text) {
    const badge = $("live-status");
    badge.className = "live " + cls;
    badge.textContent = text;
  }

  // ---------------------------------------------------------------- queue
  function callItem(call) {
    const li = el("li", "call-item level-" + call.level);
    li.dataset.sid = call.call_sid;
    li.tabIndex = 0;
    if (call.call_sid === state.selected) {
      li.classList.add("selected");
    }
    li.appendChild(el("p", "who", displayName(call)));
    li.appendChild(el("span", "badge level-" + call.level, call.level));
    const sub = el("div", "sub");
    sub.appendChild(el("span", null, call.department || "no department"));
    if (call.queue_status === "waiting" && call.handed_off_at) {
      const wait = el("span", "wait", duration(Date.now() - call.handed_off_at));
      wait.dataset.since = String(call.handed_off_at);
      sub.appendChild(wait);
    } else {
      sub.appendChild(el("span", null, statusText(call)));
    }
    if (!call.verified) {
      sub.appendChild(el("span", null, "not verified"));
    }
    li.appendChild(sub);
    li.addEventListener("click", () => select(call.call_sid));
    li.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        select(call.call_sid);
      }
    });
    return li;
  }

  function renderQueue() {
    const all = Array.from(state.calls.values());
    const waiting = all
      .filter((c) => c.queue_status === "waiting")
      .sort((a, b) => (a.handed_off_at || 0) - (b.handed_off_at || 0));
    const recent = all
      .filter((c) => c.queue_status !== "waiting")
      .sort((a, b) => (b.handed_off_at || 0) - (a.handed_off_at || 0))
      .slice(0, 20);
    const list = $("queue-list");
    clear(list);
    waiting.forEach((c) => list.appendChild(callItem(c)));
    $("waiting-count").textContent = String(waiting.length);
    $("queue-empty").hidden = waiting.length > 0;
    const rlist = $("recent-list");
    clear(rlist);
    recent.forEach((c) => rlist.appendChild(callItem(c)));
  }

  function tick() {
    document.querySelectorAll(".wait[data-since]").forEach((node) => {
      node.textContent = duration(Date.now() - Number(node.dataset.since));
    });
    const call = state.calls.get(state.selected);
    if (call && call.queue_status === "waiting" && call.handed_off_at) {
      $("pop-wait").textContent = "Waiting " + duration(Date.now() - call.handed_off_at);
    }
  }

  // ---------------------------------------------------------------- screen-pop
  function renderPop() {
    const call = state.calls.get(state.selected);
    $("pop-empty").hidden = Boolean(call);
    $("pop").hidden = !call;
    if (!call) {
      return;
    }
    $("pop").dataset.sid = call.call_sid;
    $("pop-name").textContent = displayName(call);
    $("pop-caller").textContent =
      call.caller + (call.account_id ? " · account " + call.account_id : "");
    $("pop-level").textContent = call.level;
    $("pop-level-text").textContent = call.level_text;
    $("pop-level-box").className = "level-box level-" + call.level;
    $("pop-department").textContent = call.department || "none";
    $("pop-status").textContent = statusText(call);
    $("pop-wait").textContent =
      call.queue_status === "waiting" && call.handed_off_at
        ? "Waiting " + duration(Date.now() - call.handed_off_at)
        : "";

    const factors = $("pop-factors");
    clear(factors);
    call.factors.forEach((f) => {
      const li = el("li", "factor", f.text);
      li.dataset.code = f.code;
      factors.appendChild(li);
    });
    if (call.factors.length === 0) {
      factors.appendChild(el("li", "muted", "No factor"));
    }

    const risks = $("pop-risks");
    clear(risks);
    call.risk_flags.forEach((r) => {
      const li = el("li", "risk risk-" + r.code, r.text);
      li.dataset.code = r.code;
      risks.appendChild(li);
    });
    if (call.risk_flags.length === 0) {
      risks.appendChild(el("li", "ok", "No risk flags"));
    }

    const attrs = $("pop-attributes");
    clear(attrs);
    call.attributes.forEach((pair) => {
      attrs.appendChild(el("dt", null, pair[0]));
      attrs.appendChild(el("dd", null, pair[1]));
    });
    if (call.attributes.length === 0) {
      attrs.appendChild(el("dd", "muted", "Nothing to show"));
    }

    const body = $("pop-history").querySelector("tbody");
    clear(body);
    call.recent_calls.forEach((p) => {
      const tr = el("tr");
      tr.appendChild(el("td", null, date(p.started_at)));
      tr.appendChild(el("td", null, p.department || ""));
      let outcome = STATUS_TEXT[p.queue_status] || "";
      if (p.outcome) {
        outcome = (p.outcome.resolved ? "Resolved" : "Not resolved") +
          (p.outcome.recurring ? " · recurring" : "");
      }
      tr.appendChild(el("td", null, outcome));
      tr.appendChild(el("td", null, p.outcome ? p.outcome.note : ""));
      body.appendChild(tr);
    });
    if (call.recent_calls.length === 0) {
      const tr = el("tr");
      const td = el("td", "muted", call.account_id ? "No earlier calls" : "No account identified");
      td.colSpan = 4;
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function fillOutcome(call) {
    const select = $("outcome-category");
    clear(select);
    const options = new Set(state.departments);
    if (call.department) {
      options.add(call.department);
    }
    Array.from(options).sort().forEach((d) => select.appendChild(el("option", null, d)));
    const o = call.outcome;
    select.value = o ? o.category : call.department || select.value;
    $("outcome-resolved-yes").checked = !o || o.resolved;
    $("outcome-resolved-no").checked = Boolean(o) && !o.resolved;
    $("outcome-recurring").checked = Boolean(o && o.recurring);
    $("outcome-note").value = o ? o.note : "";
    const msg = $("outcome-message");
    msg.className = o ? "saved" : "muted";
    msg.textContent = o ? "Saved by " + o.agent + " at " + date(o.at) : "";
    state.dirty = false;
  }

  function select(sid) {
    state.selected = sid;
    const call = state.calls.get(sid);
    renderQueue();
    renderPop();
    if (call) {
      fillOutcome(call);
    }
  }

  async function saveOutcome(event) {
    event.preventDefault();
    const sid = state.selected;
    if (!sid) {
      return;
    }
    const msg = $("outcome-message");
    const button = $("outcome-submit");
    button.disabled = true;
    try {
      const call = await window.callgate.api("/api/calls/" + encodeURIComponent(sid) + "/outcome", {
        method: "POST",
        body: {
          resolved: $("outcome-resolved-yes").checked,
          category: $("outcome-category").value,
          note: $("outcome-note").value,
          recurring: $("outcome-recurring").checked,
        },
      });
      state.calls.set(call.call_sid, call);
      renderQueue();
      renderPop();
      // The same words as when the outcome event arrives: "Saved by <agent> at <time>".
      fillOutcome(call);
    } catch (e) {
      msg.className = "error-text";
      msg.textContent = "Not saved: " + e.message;
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- live events
  function onEvent(kind, message) {
    const data = JSON.parse(message.data);
    const seq = Number(message.lastEventId || data.seq);
    if (seq > state.lastSeq) {
      state.lastSeq = seq;
    }
    const call = data.call;
    state.calls.set(call.call_sid, call);
    const showing = state.selected === call.call_sid;
    if (kind === "handoff" && (!state.selected || !state.dirty)) {
      select(call.call_sid);
      return;
    }
    renderQueue();
    if (showing) {
      renderPop();
      if (!state.dirty) {
        fillOutcome(call);
      }
    }
  }

  function connect() {
    if (state.source) {
      state.source.close();
    }
    // The first connection starts after the queue just read; the browser's own reconnections
    // send Last-Event-ID, which the server prefers.
    const source = new EventSource("/api/agent/events?since=" + state.lastSeq);
    state.source = source;
    source.onopen = () => setLive("live-on", "Live");
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the session ended?): /api/me goes to the login page on 401.
        setLive("live-off", "Disconnected");
        window.callgate.api("/api/me").then(
          () => setTimeout(connect, 3000),
          () => {}
        );
      } else {
        setLive("live-connecting", "Reconnecting…");
      }
    };
    KINDS.forEach((kind) => source.addEventListener(kind, (m) => onEvent(kind, m)));
  }

  async function start() {
    $("outcome-form").addEventListener("submit", saveOutcome);
    ["outcome-note", "outcome-category", "outcome-recurring", "outcome-resolved-yes", "outcome-resolved-no"]
      .forEach((id) => $(id).addEventListener("input", () => { state.dirty = true; }));
    try {
      const queue = await window.callgate.api("/api/agent/queue");
      state.lastSeq = queue.last_seq;
      state.departments = queue.known_departments || [];
      queue.waiting.concat(queue.recent).forEach((c) => state.calls.set(c.call_sid, c));
      renderQueue();
      if (queue.waiting.length > 0) {
        select(queue.waiting[0].call_sid);
      }
    } catch (e) {
      setLive("live-off", "Queue unavailable");
    }
    connect();
    setInterval(tick, 1000);
  }

  start();
})();
