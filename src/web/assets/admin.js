// The admin page: scripts (editor with live checking, flow graph, call simulator, versions,
// audit trail), accounts and agents. Vanilla JS against the JSON API; no inline code (CSP).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ small helpers

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of [].concat(children || [])) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, v);
    }
    for (const c of [].concat(children || [])) {
      if (c !== null && c !== undefined) node.append(c);
    }
    return node;
  }

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  // The JSON API with the session cookie and the CSRF token. Resolves to the parsed body;
  // rejects with an Error carrying .status and .data (e.g. the 422 problem list).
  async function api(method, path, body) {
    const headers = { Accept: "application/json", "X-CSRF-Token": window.callgate.csrfToken() };
    const opts = { method: method, credentials: "same-origin", headers: headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const response = await fetch(path, opts);
    if (response.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent("/admin"));
      throw new Error("not logged in");
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.startsWith("application/json") ? await response.json() : null;
    if (!response.ok) {
      const err = new Error(data && data.error ? data.error : response.statusText);
      err.status = response.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  let noticeTimer = null;
  function notice(message, isError) {
    const box = $("notice");
    box.textContent = message;
    box.classList.toggle("error", !!isError);
    box.classList.remove("hidden");
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => box.classList.add("hidden"), isError ? 8000 : 4000);
  }

  // An in-page confirmation (window.confirm blocks automation and looks foreign).
  function confirmAction(message, label) {
    return new Promise((resolve) => {
      const dialog = $("confirm");
      $("confirm-message").textContent = message;
      $("confirm-yes").textContent = label || "Confirm";
      dialog.classList.remove("hidden");
      const done = (answer) => {
        dialog.classList.add("hidden");
        $("confirm-yes").removeEventListener("click", yes);
        $("confirm-no").removeEventListener("click", no);
        document.removeEventListener("keydown", esc);
        resolve(answer);
      };
      const yes = () => done(true);
      const no = () => done(false);
      const esc = (e) => { if (e.key === "Escape") done(false); };
      $("confirm-yes").addEventListener("click", yes);
      $("confirm-no").addEventListener("click", no);
      document.addEventListener("keydown", esc);
      $("confirm-yes").focus();
    });
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  // ------------------------------------------------------------------ tabs

  function showTab(name) {
    for (const tab of document.querySelectorAll(".tab")) {
      tab.classList.toggle("active", tab.dataset.tab === name);
    }
    for (const panel of document.querySelectorAll(".tab-panel")) {
      panel.classList.toggle("hidden", panel.id !== "panel-" + name);
    }
    if (name === "accounts") loadAccounts();
    if (name === "users") loadUsers();
  }

  function showSub(name) {
    for (const tab of document.querySelectorAll(".subtab")) {
      tab.classList.toggle("active", tab.dataset.sub === name);
    }
    for (const panel of document.querySelectorAll(".sub-panel")) {
      panel.classList.toggle("hidden", panel.id !== "sub-" + name);
    }
    if (name === "audit" && state.name) loadAudit();
    if (name === "versions" && state.name) loadVersions();
  }

  // ------------------------------------------------------------------ the editor

  // A TOML highlighter, line by line: enough for the script format (tables, keys, strings,
  // numbers, booleans, comments, inline tables and arrays).
  function highlightLine(line) {
    let out = "";
    let i = 0;
    const n = line.length;
    const span = (cls, text) => '<span class="tok-' + cls + '">' + escapeHtml(text) + "</span>";
    const lead = line.match(/^\s*/)[0];
    if (/^\s*\[/.test(line)) {
      const end = line.indexOf("]", lead.length);
      const close = line[end + 1] === "]" ? end + 2 : end + 1;
      if (end > 0) {
        const header = line.slice(lead.length, close);
        const rest = line.slice(close);
        const hash = rest.indexOf("#");
        return escapeHtml(lead) + span("table", header) +
          (hash >= 0 ? escapeHtml(rest.slice(0, hash)) + span("comment", rest.slice(hash)) : escapeHtml(rest));
      }
    }
    let expectKey = true;
    while (i < n) {
      const c = line[i];
      if (c === "#") {
        out += span("comment", line.slice(i));
        break;
      }
      if (c === '"' || c === "'") {
        let j = i + 1;
        while (j < n && line[j] !== c) j += c === '"' && line[j] === "\\" ? 2 : 1;
        const text = line.slice(i, Math.min(j + 1, n));
        const after = line.slice(j + 1).trimStart();
        out += span(expectKey && after.startsWith("=") ? "key" : "string", text);
        i = j + 1;
        continue;
      }
      if (/[A-Za-z0-9_\-.+]/.test(c)) {
        let j = i;
        while (j < n && /[A-Za-z0-9_\-.+:]/.test(line[j])) j++;
        const word = line.slice(i, j);
        const after = line.slice(j).trimStart();
        if (expectKey && after.startsWith("=")) out += span("key", word);
        else if (word === "true" || word === "false") out += span("bool", word);
        else if (/^[+-]?[0-9][0-9_.:eE+-]*$/.test(word)) out += span("number", word);
        else out += escapeHtml(word);
        i = j;
        continue;
      }
      if (c === "=") {
        expectKey = false;
        out += span("punct", c);
      } else if (c === "{" || c === ",") {
        expectKey = true;
        out += span("punct", c);
      } else if ("[]}".includes(c)) {
        out += span("punct", c);
      } else {
        out += escapeHtml(c);
      }
      i++;
    }
    return out;
  }

  const editor = {
    text: null,
    highlight: null,
    gutter: null,
    marks: new Map(), // line -> {severity, messages}
    init() {
      this.text = $("editor-text");
      this.highlight = $("editor-highlight");
      this.gutter = $("editor-gutter");
      this.text.addEventListener("input", () => { this.render(); onEdit(); });
      this.text.addEventListener("scroll", () => this.syncScroll());
      this.text.addEventListener("keydown", (e) => {
        if (e.key === "Tab" && !e.ctrlKey && !e.metaKey && !e.altKey) {
          e.preventDefault();
          document.execCommand("insertText", false, "  ");
        }
        if ((e.ctrlKey || e.metaKey) && e.key === "s") {
          e.preventDefault();
          saveDraft();
        }
      });
    },
    getValue() { return this.text.value; },
    setValue(value) {
      this.text.value = value;
      this.text.scrollTop = 0;
      this.render();
    },
    lineHeight() {
      return parseFloat(getComputedStyle(this.text).lineHeight) || 20;
    },
    render() {
      const lines = this.text.value.split("\n");
      const html = [];
      const gutter = [];
      lines.forEach((line, idx) => {
        const no = idx + 1;
        const mark = this.marks.get(no);
        const cls = mark ? ' class="line-' + mark.severity + '"' : "";
        html.push("<div" + cls + ' data-line="' + no + '">' + (highlightLine(line) || " ") + "</div>");
        const gcls = mark ? ' class="has-' + mark.severity + '" title="' + escapeHtml(mark.messages.join("\n")) + '"' : "";
        gutter.push("<div" + gcls + ' data-line="' + no + '">' + no + "</div>");
      });
      this.highlight.innerHTML = html.join("");
      this.gutter.innerHTML = gutter.join("");
      this.syncScroll();
    },
    syncScroll() {
      const x = this.text.scrollLeft;
      const y = this.text.scrollTop;
      this.highlight.style.transform = "translate(" + -x + "px," + -y + "px)";
      this.gutter.scrollTop = y;
    },
    setProblems(problems) {
      this.marks = new Map();
      for (const p of problems) {
        const line = Math.max(1, p.line || 1);
        const prev = this.marks.get(line);
        const severity = prev && prev.severity === "error" ? "error" : p.severity === "error" ? "error" : "warning";
        this.marks.set(line, { severity: severity, messages: (prev ? prev.messages : []).concat(p.message) });
      }
      this.render();
    },
    // Puts the caret at the start of `line`, scrolls it into view and flashes it.
    goTo(line) {
      const lines = this.text.value.split("\n");
      const target = Math.min(Math.max(1, line), lines.length);
      let offset = 0;
      for (let i = 0; i < target - 1; i++) offset += lines[i].length + 1;
      this.text.focus();
      this.text.setSelectionRange(offset, offset + lines[target - 1].length);
      const lh = this.lineHeight();
      this.text.scrollTop = Math.max(0, (target - 1) * lh - this.text.clientHeight / 3);
      this.syncScroll();
      const row = this.highlight.querySelector('div[data-line="' + target + '"]');
      if (row) {
        row.classList.add("line-flash");
        setTimeout(() => row.classList.remove("line-flash"), 900);
      }
    },
  };

  // ------------------------------------------------------------------ scripts

  const state = {
    name: null,          // the selected script
    isNew: false,        // not saved yet
    loadedVersion: null,
    published: null,
    latest: null,
    saved: "",           // the text as last loaded or saved
    checkSeq: 0,
    checkTimer: null,
    lastGraph: null,
    sim: null,           // the simulator's session id
  };

  async function loadScripts() {
    const list = await api("GET", "/api/scripts");
    const body = $("scripts-body");
    body.textContent = "";
    if (!list.length) body.append(el("tr", {}, el("td", { colspan: 3, class: "muted", text: "No scripts yet." })));
    for (const s of list) {
      const row = el("tr", { id: "script-item-" + s.name, "data-name": s.name, class: s.name === state.name ? "selected" : null }, [
        el("td", {}, [
          s.name,
          s.numbers && s.numbers.length ? el("span", { class: "numbers", text: s.numbers.join(", ") }) : null,
          s.description ? el("span", { class: "numbers", title: s.description, text: s.description }) : null,
        ]),
        el("td", {}, s.published_version ? el("span", { class: "badge live", text: "v" + s.published_version }) : el("span", { class: "badge", text: "—" })),
        el("td", {}, s.latest_version !== s.published_version
          ? el("span", { class: "badge draft", text: "v" + s.latest_version })
          : el("span", { class: "muted", text: "v" + s.latest_version })),
      ]);
      row.addEventListener("click", () => selectScript(s.name));
      body.append(row);
    }
    return list;
  }

  async function selectScript(name, version) {
    if (dirty() && !(await confirmAction("Discard the unsaved changes to " + state.name + "?", "Discard"))) return;
    const detail = await api("GET", "/api/scripts/" + encodeURIComponent(name) + (version ? "?version=" + version : ""));
    let shown = detail;
    // Edit the newest text: a draft saved after the published version is where work continues.
    if (!version && detail.latest_version !== detail.version) {
      shown = await api("GET", "/api/scripts/" + encodeURIComponent(name) + "?version=" + detail.latest_version);
    }
    state.name = name;
    state.isNew = false;
    state.loadedVersion = shown.version;
    state.published = shown.published_version;
    state.latest = shown.latest_version;
    state.saved = shown.source;
    state.lastGraph = null;
    openWorkspace();
    editor.setValue(shown.source);
    applyCheck({ problems: shown.problems, graph: shown.graph });
    updateHead();
    for (const row of document.querySelectorAll("#scripts-body tr")) {
      row.classList.toggle("selected", row.dataset.name === name);
    }
    resetSimulator();
    const sub = document.querySelector(".subtab.active");
    if (sub && sub.dataset.sub === "versions") loadVersions();
    if (sub && sub.dataset.sub === "audit") loadAudit();
  }

  function openWorkspace() {
    $("script-empty").classList.add("hidden");
    $("script-workspace").classList.remove("hidden");
  }

  function dirty() {
    return state.name !== null && editor.getValue() !== state.saved;
  }

  function updateHead() {
    $("script-title").textContent = state.name;
    const parts = [];
    if (state.isNew) parts.push("new script, not saved yet");
    else {
      parts.push("editing version " + state.loadedVersion);
      parts.push(state.published ? "live: version " + state.published : "not published");
      if (state.latest && state.latest !== state.published) parts.push("latest draft: version " + state.latest);
    }
    $("script-meta").textContent = parts.join(" · ");
    $("dirty").classList.toggle("hidden", !dirty());
  }

  function onEdit() {
    $("dirty").classList.toggle("hidden", !dirty());
    const status = $("check-status");
    status.className = "check-status busy";
    status.textContent = "checking…";
    clearTimeout(state.checkTimer);
    state.checkTimer = setTimeout(runCheck, 350);
  }

  async function runCheck() {
    const seq = ++state.checkSeq;
    try {
      const result = await api("POST", "/api/scripts/check", { source: editor.getValue() });
      if (seq === state.checkSeq) applyCheck(result);
    } catch (e) {
      if (seq === state.checkSeq) {
        $("check-status").className = "check-status err";
        $("check-status").textContent = "check failed: " + e.message;
      }
    }
  }

  function applyCheck(result) {
    const problems = (result.problems || []).slice().sort((a, b) => a.line - b.line || a.col - b.col);
    editor.setProblems(problems);
    const list = $("problems");
    list.textContent = "";
    const errors = problems.filter((p) => p.severity === "error").length;
    const warnings = problems.length - errors;
    $("problem-count").textContent = String(problems.length);
    const status = $("check-status");
    if (errors) {
      status.className = "check-status err";
      status.textContent = errors + " error" + (errors > 1 ? "s" : "") + (warnings ? ", " + warnings + " warning" + (warnings > 1 ? "s" : "") : "");
    } else if (warnings) {
      status.className = "check-status warn";
      status.textContent = "✓ valid, " + warnings + " warning" + (warnings > 1 ? "s" : "");
    } else {
      status.className = "check-status ok";
      status.textContent = "✓ no problems";
    }
    if (!problems.length) list.append(el("li", { class: "none", text: "The checker finds nothing wrong." }));
    problems.forEach((p, i) => {
      const item = el("li", { class: "problem " + p.severity, id: "problem-" + i, "data-line": p.line }, [
        el("span", { class: "sev", text: p.severity }),
        el("span", { class: "where", text: "line " + p.line + (p.col ? ":" + p.col : "") }),
        el("span", { class: "message", text: p.message }),
      ]);
      item.addEventListener("click", () => editor.goTo(p.line));
      list.append(item);
    });
    if (result.graph) {
      state.lastGraph = result.graph;
      drawGraph(result.graph);
    }
    $("graph-stale").classList.toggle("hidden", !!result.graph || !state.lastGraph);
  }

  async function saveDraft() {
    if (!state.name) return;
    const button = $("save-draft");
    button.disabled = true;
    try {
      const saved = await api("PUT", "/api/scripts/" + encodeURIComponent(state.name), { source: editor.getValue() });
      state.saved = editor.getValue();
      state.isNew = false;
      state.loadedVersion = saved.version;
      state.latest = saved.version;
      notice("Saved " + state.name + " as version " + saved.version + " (a draft: publish it to put it live).");
      updateHead();
      await loadScripts();
      refreshSide();
    } catch (e) {
      if (e.status === 422 && e.data && Array.isArray(e.data.problems)) {
        applyCheck({ problems: e.data.problems });
        notice("Not saved: " + e.message + ". See the problems under the editor.", true);
      } else {
        notice("Not saved: " + e.message, true);
      }
    } finally {
      button.disabled = false;
    }
  }

  function refreshSide() {
    const sub = document.querySelector(".subtab.active");
    if (!sub) return;
    if (sub.dataset.sub === "versions") loadVersions();
    if (sub.dataset.sub === "audit") loadAudit();
  }

  // ------------------------------------------------------------------ new script

  async function createScript(event) {
    event.preventDefault();
    const name = $("new-script-name").value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(name)) {
      notice("A script name is letters, digits, - and _ (starting with a letter or digit).", true);
      return;
    }
    if (document.getElementById("script-item-" + name)) {
      notice("There is already a script named " + name + ".", true);
      return;
    }
    if (dirty() && !(await confirmAction("Discard the unsaved changes to " + state.name + "?", "Discard"))) return;
    const base = await api("GET", "/api/scripts/default");
    const source = base.source
      .replace(/^name\s*=\s*".*"\s*$/m, 'name = "' + name + '"')
      .replace(/^description\s*=\s*".*"\s*$/m, 'description = "A copy of default"');
    state.name = name;
    state.isNew = true;
    state.loadedVersion = null;
    state.published = null;
    state.latest = null;
    state.saved = "";
    openWorkspace();
    editor.setValue(source);
    updateHead();
    resetSimulator();
    $("new-script-form").classList.add("hidden");
    $("new-script-name").value = "";
    for (const row of document.querySelectorAll("#scripts-body tr")) row.classList.remove("selected");
    runCheck();
    $("versions-body").textContent = "";
    $("audit-list").textContent = "";
  }

  // ------------------------------------------------------------------ versions

  async function loadVersions() {
    const body = $("versions-body");
    if (state.isNew) {
      body.textContent = "";
      body.append(el("tr", {}, el("td", { colspan: 4, class: "muted", text: "Save a draft to create version 1." })));
      return;
    }
    const name = state.name;
    const versions = await api("GET", "/api/scripts/" + encodeURIComponent(name) + "/versions");
    if (name !== state.name) return;
    const published = versions.find((v) => v.published);
    state.published = published ? published.version : null;
    updateHead();
    body.textContent = "";
    versions.sort((a, b) => b.version - a.version);
    for (const v of versions) {
      const actions = el("td", { class: "actions" });
      actions.append(el("button", {
        type: "button", class: "button small ghost", id: "load-v" + v.version, text: "Open",
        onclick: () => selectScript(name, v.version),
      }));
      if (!v.published) {
        const earlier = state.published !== null && v.version < state.published;
        const label = earlier ? "Roll back to" : "Publish";
        actions.append(el("button", {
          type: "button", class: "button small", id: (earlier ? "rollback-v" : "publish-v") + v.version, text: label,
          onclick: () => publish(name, v.version, earlier),
        }));
      }
      body.append(el("tr", { id: "version-" + v.version }, [
        el("td", {}, [
          el("strong", { text: "v" + v.version }), " ",
          v.published ? el("span", { class: "badge live", text: "live" }) : null,
          v.version === state.loadedVersion ? el("span", { class: "badge", text: "in editor" }) : null,
        ]),
        el("td", { title: "sha256 " + v.sha256 }, [when(v.created_at), el("span", { class: "numbers muted", text: v.origin })]),
        el("td", { text: v.author }),
        actions,
      ]));
    }
  }

  async function publish(name, version, rollback) {
    const message = rollback
      ? "Roll " + name + " back to version " + version + "? New calls get it at once; calls in progress finish on theirs."
      : "Publish version " + version + " of " + name + "? New calls get it at once; calls in progress finish on theirs.";
    if (!(await confirmAction(message, rollback ? "Roll back" : "Publish"))) return;
    try {
      const done = await api("POST", "/api/scripts/" + encodeURIComponent(name) + (rollback ? "/rollback" : "/publish"), { version: version });
      state.published = done.published_version;
      notice("Version " + done.published_version + " of " + name + " is live.");
      updateHead();
      await loadScripts();
      await loadVersions();
    } catch (e) {
      if (e.status === 422 && e.data && e.data.problems) applyCheck({ problems: e.data.problems });
      notice("Not published: " + e.message, true);
    }
  }

  // ------------------------------------------------------------------ audit

  function renderDiff(detail) {
    const box = el("div", { class: "diff" });
    for (const line of detail.split("\n")) {
      let cls = "";
      if (line.startsWith("+++") || line.startsWith("---")) cls = "meta";
      else if (line.startsWith("+")) cls = "add";
      else if (line.startsWith("-")) cls = "del";
      else if (line.startsWith("@@")) cls = "hunk";
      box.append(el("span", { class: cls, text: line || " " }));
    }
    return box;
  }

  async function loadAudit() {
    const list = $("audit-list");
    if (state.isNew) {
      list.textContent = "";
      return;
    }
    const name = state.name;
    const entries = await api("GET", "/api/audit?subject=" + encodeURIComponent("script:" + name) + "&limit=50");
    if (name !== state.name) return;
    list.textContent = "";
    if (!entries.length) list.append(el("li", { class: "muted", text: "Nothing recorded yet." }));
    for (const e of entries) {
      const [first, ...rest] = (e.detail || "").split("\n");
      list.append(el("li", { id: "audit-" + e.seq }, [
        el("div", { class: "head" }, [
          el("span", { class: "action", text: e.action }), " by ", el("strong", { text: e.actor }),
          " · ", when(e.at), " · ", el("span", { class: "muted", text: first }),
        ]),
        rest.length && rest.join("").trim() ? renderDiff(rest.join("\n")) : null,
      ]));
    }
  }

  // ------------------------------------------------------------------ flow graph

  const KINDS = ["say", "language", "menu", "verify", "department", "handoff", "goodbye"];

  function drawGraph(graph) {
    const wrap = $("graph");
    wrap.textContent = "";
    const legend = $("graph-legend");
    if (!legend.childElementCount) {
      for (const k of KINDS) legend.append(el("span", { class: "kind-" + k, text: k }));
    }
    // Top to bottom: one level per step of distance from the start, steps side by side.
    const W = 140, H = 44, GX = 26, GY = 56, PAD = 24;
    const pos = new Map();
    let maxX = 0, maxY = 0;
    for (const n of graph.nodes) {
      const x = PAD + n.row * (W + GX);
      const y = PAD + 14 + n.column * (H + GY);
      pos.set(n.id, { x: x, y: y });
      maxX = Math.max(maxX, x + W);
      maxY = Math.max(maxY, y + H);
    }
    const width = maxX + PAD + 70, height = maxY + PAD + 20;
    const root = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "flow graph", id: "graph-svg" });
    root.append(svg("defs", {}, svg("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));

    // Edges first (under the boxes); exits to the same step share one arrow.
    const merged = new Map();
    for (const e of graph.edges) {
      const key = e.from + "\u0000" + e.to;
      if (!merged.has(key)) merged.set(key, { from: e.from, to: e.to, labels: [] });
      merged.get(key).labels.push(e.label);
    }
    const edges = svg("g", { class: "edges" });
    const labels = svg("g", { class: "labels" });
    for (const e of merged.values()) {
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) continue;
      let p0, p1, p2, p3, back = false;
      if (b.y > a.y) {
        // Down a level or more: bottom edge to top edge.
        p0 = [a.x + W / 2, a.y + H]; p3 = [b.x + W / 2, b.y];
        const dy = Math.max(24, (p3[1] - p0[1]) / 2);
        p1 = [p0[0], p0[1] + dy]; p2 = [p3[0], p3[1] - dy];
      } else {
        // Back up (a loop) or across the same level: out of the right side, into the right side.
        back = true;
        p0 = [a.x + W, a.y + H / 2 + 6]; p3 = [b.x + W, b.y + H / 2 - 6];
        const bulge = 34 + Math.abs(b.y - a.y) / 5 + Math.abs(b.x - a.x) / 4;
        p1 = [Math.max(p0[0], p3[0]) + bulge, p0[1]]; p2 = [Math.max(p0[0], p3[0]) + bulge, p3[1]];
      }
      const d = "M" + p0 + " C" + p1 + " " + p2 + " " + p3;
      edges.append(svg("path", { d: d, class: "graph-edge" + (back ? " back" : ""), "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to }));
      const mx = (p0[0] + 3 * p1[0] + 3 * p2[0] + p3[0]) / 8;
      const my = (p0[1] + 3 * p1[1] + 3 * p2[1] + p3[1]) / 8;
      const text = svg("text", { x: mx + 3, y: my + 3, "text-anchor": back ? "start" : "middle", class: "graph-label" });
      text.textContent = e.labels.join(", ");
      labels.append(text);
    }
    root.append(edges);

    const nodes = svg("g", { class: "nodes" });
    for (const n of graph.nodes) {
      const p = pos.get(n.id);
      const g = svg("g", { class: "graph-node kind-" + n.kind + (n.start ? " start" : ""), id: "node-" + n.id, "data-line": n.line, tabindex: 0 });
      const title = svg("title");
      title.textContent = n.id + " (" + n.kind + ")" + (n.detail ? ": " + n.detail : "") + " — line " + n.line;
      g.append(title);
      g.append(svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: 7, ry: 7 }));
      const t1 = svg("text", { x: p.x + 9, y: p.y + 18, class: "title" });
      t1.textContent = clip(n.id, 20);
      const t2 = svg("text", { x: p.x + 9, y: p.y + 35, class: "sub" });
      t2.textContent = clip(n.kind + (n.detail ? " · " + n.detail : ""), 26);
      g.append(t1, t2);
      if (n.start) {
        const s = svg("text", { x: p.x, y: p.y - 5, class: "graph-start" });
        s.textContent = "▶ START";
        g.append(s);
      }
      g.addEventListener("click", () => editor.goTo(n.line));
      g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") editor.goTo(n.line); });
      nodes.append(g);
    }
    root.append(nodes, labels);
    wrap.append(root);
  }

  function clip(s, n) {
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  // ------------------------------------------------------------------ simulator

  function resetSimulator() {
    state.sim = null;
    $("sim-transcript").textContent = "";
    $("sim-status").classList.add("hidden");
    $("sim-controls").classList.add("hidden");
    $("sim-handoff").classList.add("hidden");
    $("sim-pop-wrap").classList.add("hidden");
    $("sim-twiml").textContent = "";
  }

  function say(cls, who, text) {
    const item = el("li", { class: cls }, [who ? el("span", { class: "who", text: who }) : null, text]);
    const list = $("sim-transcript");
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }

  function showTurn(turn) {
    state.sim = turn.ended ? null : turn.session;
    for (const h of turn.hears) {
      if (h.kind === "say") say("say", "callgate" + (h.language ? " · " + h.language : ""), h.text);
      else if (h.kind === "play") say("say", "plays", h.url);
      else if (h.kind === "hangup") say("system ended", null, "callgate hangs up");
    }
    if (turn.waiting) {
      const w = turn.waiting;
      say("system", null, "waiting at step " + w.step + (w.digits ? " for " + w.digits + " key(s)" : " for keys (end with #)") + ", " + w.timeout_secs + " s");
    }
    if (turn.handoff) {
      say("system", null, "handed off via " + turn.handoff.via + " to " + turn.handoff.target);
    }
    if (turn.ended) say("system ended", null, "call ended" + (turn.end_reason ? ": " + turn.end_reason : ""));

    const level = $("sim-level");
    level.textContent = turn.level;
    level.className = "level level-" + turn.level;
    const facts = $("sim-facts");
    facts.textContent = "";
    const fact = (label, value) => { if (value) facts.append(label + " ", el("b", { text: value }), "  "); };
    fact("step", turn.step);
    fact("language", turn.language);
    fact("factors", turn.factors.length ? turn.factors.join(", ") : "none");
    fact("account", turn.account);
    fact("department", turn.department);
    $("sim-status").classList.remove("hidden");

    const handedOff = !!turn.handoff && !turn.ended;
    $("sim-controls").classList.toggle("hidden", turn.ended || handedOff);
    $("sim-handoff").classList.toggle("hidden", !handedOff);
    if (turn.screen_pop) {
      $("sim-pop").textContent = JSON.stringify(turn.screen_pop, null, 2);
      $("sim-pop-wrap").classList.remove("hidden");
    }
    $("sim-twiml").textContent = turn.twiml;
  }

  async function simStart(event) {
    event.preventDefault();
    resetSimulator();
    const body = {
      source: editor.getValue(),
      caller: $("sim-caller").value.trim(),
      called: $("sim-called").value.trim(),
    };
    const stir = $("sim-stir").value;
    if (stir) body.stir = stir;
    say("system", null, "calling " + (body.called || "(no number)") + " from " + (body.caller || "a withheld number") + "…");
    try {
      showTurn(await api("POST", "/api/simulator", body));
    } catch (e) {
      say("system ended", null, "cannot start: " + e.message);
      if (e.status === 422 && e.data && e.data.problems) applyCheck({ problems: e.data.problems });
    }
  }

  async function simStep(body, echo) {
    if (!state.sim) return;
    if (echo) say("caller", "caller", echo);
    try {
      showTurn(await api("POST", "/api/simulator/" + encodeURIComponent(state.sim), body));
    } catch (e) {
      say("system ended", null, "error: " + e.message);
    }
  }

  function simSend() {
    const digits = $("sim-digits").value.replace(/[^0-9*#]/g, "");
    $("sim-digits").value = "";
    if (!digits) return simStep({}, "(silence)");
    return simStep({ digits: digits }, "presses " + digits);
  }

  // ------------------------------------------------------------------ accounts

  let accountTimer = null;

  async function loadAccounts() {
    const q = $("acct-q").value.trim();
    const list = await api("GET", "/api/accounts?limit=200&q=" + encodeURIComponent(q));
    const body = $("accounts-body");
    body.textContent = "";
    if (!list.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: q ? "No account matches." : "No accounts yet." })));
    for (const a of list) {
      const factors = [];
      if (a.has_code) factors.push(el("span", { class: "badge", text: "code" }));
      if (a.has_totp) factors.push(el("span", { class: "badge", text: "TOTP" }));
      const stateCell = [];
      if (a.test) stateCell.push(el("span", { class: "badge test", text: "test" }));
      if (a.locked_until) stateCell.push(el("span", { class: "badge locked", title: "until " + when(a.locked_until), text: "locked" }));
      else if (a.failed_count) stateCell.push(el("span", { class: "badge draft", text: a.failed_count + " failed" }));
      const actions = el("td", { class: "actions" });
      if (a.locked_until || a.failed_count) {
        actions.append(el("button", { type: "button", class: "button small ghost", id: "unlock-" + a.id, text: "Unlock", onclick: () => unlockAccount(a.id) }));
      }
      actions.append(el("button", { type: "button", class: "button small danger", id: "delete-account-" + a.id, text: "Delete", onclick: () => deleteAccount(a.id) }));
      body.append(el("tr", { id: "account-" + a.id }, [
        el("td", {}, el("code", { text: a.id })),
        el("td", { text: a.name }),
        el("td", { text: a.phone }),
        el("td", {}, factors),
        el("td", {}, stateCell),
        actions,
      ]));
    }
  }

  function pairs(text, what) {
    const out = {};
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (!line) continue;
      const at = line.indexOf("=");
      if (at < 1) throw new Error(what + ": “" + line.split("=")[0] + "…” must be key=value");
      out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    return out;
  }

  async function addAccount(event) {
    event.preventDefault();
    $("acct-secret").classList.add("hidden");
    let body;
    try {
      body = {
        id: $("acct-id").value.trim(),
        name: $("acct-name").value.trim(),
        phone: $("acct-phone").value.trim(),
        code: $("acct-code").value.trim() || null,
        totp: $("acct-totp").checked,
        test: $("acct-test").checked,
        attributes: pairs($("acct-attrs").value, "attributes"),
        knowledge: pairs($("acct-knowledge").value, "knowledge"),
      };
    } catch (e) {
      notice(e.message, true);
      return;
    }
    try {
      const created = await api("POST", "/api/accounts", body);
      $("acct-form").reset();
      notice("Account " + created.id + " added.");
      if (created.otpauth_uri) {
        $("acct-otpauth").textContent = created.otpauth_uri;
        $("acct-secret").classList.remove("hidden");
      }
      await loadAccounts();
    } catch (e) {
      notice("Not added: " + e.message, true);
    }
  }

  async function deleteAccount(id) {
    if (!(await confirmAction("Delete account " + id + "? Its codes, authenticator and answers go with it.", "Delete"))) return;
    try {
      await api("DELETE", "/api/accounts/" + encodeURIComponent(id));
      notice("Account " + id + " deleted.");
      await loadAccounts();
    } catch (e) {
      notice("Not deleted: " + e.message, true);
    }
  }

  async function unlockAccount(id) {
    try {
      await api("POST", "/api/accounts/" + encodeURIComponent(id) + "/unlock", {});
      notice("Account " + id + " unlocked.");
      await loadAccounts();
    } catch (e) {
      notice("Not unlocked: " + e.message, true);
    }
  }

  // ------------------------------------------------------------------ users

  async function loadUsers() {
    const list = await api("GET", "/api/users");
    const me = ($("user-name") || {}).textContent;
    const body = $("users-body");
    body.textContent = "";
    for (const u of list) {
      const actions = el("td", { class: "actions" });
      if (u.name !== me) {
        actions.append(el("button", { type: "button", class: "button small danger", "data-user": u.name, text: "Delete", onclick: () => deleteUser(u.name) }));
      } else {
        actions.append(el("span", { class: "muted", text: "you" }));
      }
      body.append(el("tr", { "data-user": u.name }, [
        el("td", { text: u.name }),
        el("td", {}, el("span", { class: "badge" + (u.role === "admin" ? " draft" : ""), text: u.role })),
        el("td", { text: u.departments.length ? u.departments.join(", ") : u.role === "agent" ? "all" : "—" }),
        el("td", { text: when(u.created_at) }),
        actions,
      ]));
    }
  }

  async function addUser(event) {
    event.preventDefault();
    $("user-secret").classList.add("hidden");
    const body = {
      name: $("user-name-input").value.trim(),
      role: $("user-role").value,
      departments: $("user-departments").value.split(",").map((d) => d.trim()).filter(Boolean),
    };
    try {
      const created = await api("POST", "/api/users", body);
      $("user-form").reset();
      $("user-token").textContent = created.token;
      $("user-secret").classList.remove("hidden");
      notice(created.role + " " + created.name + " added.");
      await loadUsers();
    } catch (e) {
      notice("Not added: " + e.message, true);
    }
  }

  async function deleteUser(name) {
    if (!(await confirmAction("Delete " + name + "? Their token and sessions stop working at once.", "Delete"))) return;
    try {
      await api("DELETE", "/api/users/" + encodeURIComponent(name));
      notice(name + " deleted.");
      await loadUsers();
    } catch (e) {
      notice("Not deleted: " + e.message, true);
    }
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    if (!$("admin-app")) return;
    editor.init();
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
    for (const tab of document.querySelectorAll(".subtab")) tab.addEventListener("click", () => showSub(tab.dataset.sub));
    $("save-draft").addEventListener("click", saveDraft);
    $("new-script").addEventListener("click", () => {
      $("new-script-form").classList.toggle("hidden");
      $("new-script-name").focus();
    });
    $("new-script-cancel").addEventListener("click", () => $("new-script-form").classList.add("hidden"));
    $("new-script-form").addEventListener("submit", createScript);
    $("sim-form").addEventListener("submit", simStart);
    $("sim-send").addEventListener("click", simSend);
    $("sim-clear").addEventListener("click", () => { $("sim-digits").value = ""; });
    $("sim-silence").addEventListener("click", () => simStep({}, "(silence)"));
    $("sim-digits").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); simSend(); } });
    for (const key of document.querySelectorAll("#sim-keypad button")) {
      key.addEventListener("click", () => { $("sim-digits").value += key.dataset.key; });
    }
    $("sim-answered").addEventListener("click", () => simStep({ handoff_result: "completed" }, "(the agent answers and the call completes)"));
    $("sim-noanswer").addEventListener("click", () => simStep({ handoff_result: "no-answer" }, "(no agent answers)"));
    $("acct-form").addEventListener("submit", addAccount);
    $("acct-q").addEventListener("input", () => { clearTimeout(accountTimer); accountTimer = setTimeout(loadAccounts, 250); });
    $("user-form").addEventListener("submit", addUser);
    window.addEventListener("beforeunload", (e) => { if (dirty()) e.preventDefault(); });
    loadScripts().catch((e) => notice("Cannot list the scripts: " + e.message, true));
  }

  // A small handle for tests and for the console: the editor's text, as a person would type it.
  window.callgateEditor = {
    getValue: () => editor.getValue(),
    setValue: (text) => {
      editor.text.value = text;
      editor.text.dispatchEvent(new Event("input", { bubbles: true }));
    },
    goTo: (line) => editor.goTo(line),
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
