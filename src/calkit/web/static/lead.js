// The lead's page: deciding items, and a periodic refresh (paused while a form is in use).
"use strict";
(() => {
  let busy = false;
  document.querySelectorAll("form.resolve").forEach((form) => {
    form.addEventListener("focusin", () => { busy = true; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const item = Number(form.dataset.item);
      const label = Number(form.elements.label.value);
      const reason = form.elements.reason.value.trim();
      try {
        await calkit.call("POST", "/api/lead/resolve", {item_id: item, label, reason});
        window.location.reload();
      } catch (error) {
        alert(error.message);
      }
    });
  });
  setInterval(() => { if (!busy) window.location.reload(); }, 10000);
})();
