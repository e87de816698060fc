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
  document.querySelectorAll("form.answer").forEach((form) => {
    form.addEventListener("focusin", () => { busy = true; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await calkit.call("POST", `/api/lead/questions/${form.dataset.question}/answer`,
                          {text: form.elements.text.value.trim()});
        window.location.reload();
      } catch (error) { alert(error.message); }
    });
  });
  document.querySelectorAll("button.promote").forEach((button) => {
    button.addEventListener("click", async () => {
      try {
        const done = await calkit.call("POST", `/api/lead/questions/${button.dataset.question}/promote`, {});
        alert(`The guideline is now ${done.guideline}.`);
        window.location.reload();
      } catch (error) { alert(error.message); }
    });
  });
  setInterval(() => { if (!busy) window.location.reload(); }, 10000);
})();
