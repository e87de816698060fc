// Shared by every page: the CSRF token, JSON requests, request ids, sign-out.
"use strict";
const calkit = (() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  function requestId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  async function call(method, url, body) {
    const options = {method, headers: {"Accept": "application/json"}, credentials: "same-origin"};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (response.status === 401 && url !== "/signin") { window.location.assign("/signin"); }
    if (!response.ok) {
      const error = new Error((data && data.message) || ("request failed: " + response.status));
      error.status = response.status;
      error.data = data;
      throw error;
    }
    return data;
  }

  const out = document.getElementById("signout");
  if (out) out.addEventListener("click", async () => {
    try { await call("POST", "/signout", {}); } finally { window.location.assign("/signin"); }
  });
  return {call, requestId};
})();
