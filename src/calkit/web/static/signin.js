// The sign-in link carries the token after '#', which browsers never send to a server or log.
"use strict";
(() => {
  const status = document.getElementById("signin-status");
  const form = document.getElementById("signin-form");

  async function signIn(token) {
    status.textContent = "Signing you in…";
    try {
      const done = await calkit.call("POST", "/signin", {token});
      history.replaceState(null, "", "/signin");
      window.location.assign(done.next);
    } catch (error) {
      status.textContent = error.message;
      form.classList.remove("hidden");
    }
  }

  const params = new URLSearchParams(window.location.hash.slice(1));
  const token = params.get("token");
  if (token) {
    signIn(token);
  } else {
    status.textContent = "Open the sign-in link the lead gave you, or paste its token here.";
    form.classList.remove("hidden");
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(document.getElementById("token").value.trim());
  });
})();
