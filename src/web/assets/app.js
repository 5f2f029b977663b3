// callgate pages: small helpers shared by the admin pages and the agent console.
// No inline scripts are allowed by the Content-Security-Policy, so page code lives in files.
"use strict";

(function () {
  // The session's CSRF token, which the server puts in <meta name="csrf-token">.
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // fetch() for the JSON API with the session cookie: sends the CSRF token on every
  // request (the server requires it on anything but GET/HEAD) and parses JSON answers.
  // A 401 means the session ended: go to the login page and come back here afterwards.
  async function api(path, options) {
    const opts = Object.assign({ method: "GET", credentials: "same-origin" }, options || {});
    const headers = new Headers(opts.headers || {});
    headers.set("X-CSRF-Token", csrfToken());
    headers.set("Accept", "application/json");
    if (opts.body !== undefined && typeof opts.body !== "string") {
      headers.set("Content-Type", "application/json");
      opts.body = JSON.stringify(opts.body);
    }
    opts.headers = headers;
    const response = await fetch(path, opts);
    if (response.status === 401) {
      const next = encodeURIComponent(window.location.pathname + window.location.search);
      window.location.assign("/login?next=" + next);
      throw new Error("not logged in");
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.startsWith("application/json") ? await response.json() : null;
    if (!response.ok) {
      const reason = data && data.error ? data.error : response.statusText;
      throw new Error(reason);
    }
    return data;
  }

  window.callgate = { api: api, csrfToken: csrfToken };
})();
