// The lead's page: deciding items, the pilot, corrections, and a periodic refresh (paused while a form is in use).
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
  function onSubmit(selector, send) {
    const form = document.querySelector(selector);
    if (!form) return;
    form.addEventListener("focusin", () => { busy = true; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { await send(form); window.location.reload(); } catch (error) { alert(error.message); }
    });
  }
  function onClick(selector, send) {
    const button = document.querySelector(selector);
    if (!button) return;
    button.addEventListener("click", async () => {
      try { await send(button); window.location.reload(); } catch (error) { alert(error.message); }
    });
  }
  onSubmit("#start-pilot", (form) => calkit.call("POST", "/api/lead/pilot", {
    items: Number(form.elements.items.value), threshold: Number(form.elements.threshold.value)}));
  onSubmit("#open-gate", (form) => calkit.call("POST", "/api/lead/pilot/open", {reason: form.elements.reason.value.trim()}));
  onSubmit("#add-holdout", (form) => calkit.call("POST", "/api/lead/holdout", {items: Number(form.elements.items.value)}));
  onClick("#adjudicate-model", async () => {
    if (!window.confirm("Decide every disputed item by Dawid-Skene? Each decision is recorded with its posterior; the answers stay.")) {
      throw new Error("nothing decided");
    }
    const done = await calkit.call("POST", "/api/lead/adjudicate", {});
    alert(`Decided ${done.decided.length} item(s): ` + done.decided.map((d) => `${d.item_id} → ${d.label}`).join(", "));
  });
  onClick("#request-review", () => calkit.call("POST", "/api/lead/review/request", {}));
  document.querySelectorAll("form.correct").forEach((form) => {
    form.addEventListener("focusin", () => { busy = true; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await calkit.call("POST", "/api/lead/review/correct", {item_id: Number(form.dataset.item),
          label: Number(form.elements.label.value), reason: "label review"});
        window.location.reload();
      } catch (error) { alert(error.message); }
    });
  });
  setInterval(() => { if (!busy) window.location.reload(); }, 10000);
})();
