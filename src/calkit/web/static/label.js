// The labeling screen: one item at a time, answered by click or key; every change carries a
// request id, so a retry after a lost response cannot answer twice.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  let item = null;
  let classes = [];
  let busy = false;
  let waitTimer = null;
  // The guideline opens on a first visit and whenever its version changed since it was read.
  const panel = $("guideline");
  const pageGuideline = panel ? panel.dataset.version : null;
  if (panel && localStorage.getItem("calkit.guideline") !== pageGuideline) {
    panel.open = true;
    $("guideline-new").classList.remove("hidden");
  }
  if (panel) panel.addEventListener("toggle", () => {
    if (!panel.open) localStorage.setItem("calkit.guideline", pageGuideline);
  });
  const toggle = $("suggest-toggle");
  toggle.checked = localStorage.getItem("calkit.suggest") === "1";
  toggle.addEventListener("change", () => {
    localStorage.setItem("calkit.suggest", toggle.checked ? "1" : "0");
    load();
  });

  function say(text, kind) {
    const message = $("message");
    message.textContent = text || "";
    message.className = "message" + (kind ? " " + kind : "");
  }

  function showProgress(progress, model) {
    if (progress) {
      $("round-progress").textContent = progress.round === null ? "none open"
        : `round ${progress.round}: ${progress.round_settled} / ${progress.round_size}`;
      $("budget-progress").textContent = `${progress.labeled} / ${progress.budget}`;
      $("your-progress").textContent = `${progress.yours_total} (this round ${progress.yours_round})`;
      const share = progress.round_size ? progress.round_settled / progress.round_size : 0;
      $("round-bar").style.width = Math.round(share * 100) + "%";  // CSSOM: allowed by the CSP
    }
    if (model) {
      const w = model.worker || {};
      let text = `version ${model.version}`;
      if (w.state === "training") {
        text += ` · training round ${w.round}` + (w.max_epochs ? `, epoch ${w.epoch}/${w.max_epochs}` : "");
        if (w.seconds_left !== null && w.seconds_left !== undefined) text += `, at most ${Math.ceil(w.seconds_left)} s left`;
      } else if (w.state === "absent") {
        text += " · no worker is running";
      } else if (w.state) {
        text += " · " + w.state;
      }
      if (w.state && w.state !== "absent" && w.seen_seconds_ago > 30) text += ` (worker silent ${Math.round(w.seen_seconds_ago)} s)`;
      $("model-status").textContent = text;
    }
  }

  function buildClasses(list) {
    if (classes.length === list.length) return;
    classes = list;
    const box = $("classes");
    box.replaceChildren();
    for (const c of classes) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "class";
      button.dataset.index = c.index;
      if (c.key) {
        const kbd = document.createElement("kbd");
        kbd.textContent = c.key;
        button.append(kbd, " ");
      }
      button.append(c.name);
      button.addEventListener("click", () => answer(c.index));
      box.append(button);
    }
  }

  function renderItem(next) {
    item = next;
    const box = $("item");
    box.replaceChildren();
    const shown = item.display;
    if (shown.kind === "image") {
      const img = document.createElement("img");
      img.src = shown.url;
      img.alt = `item ${item.id}`;
      box.append(img);
    } else if (shown.kind === "text") {
      const text = document.createElement("div");
      text.className = "text";
      text.textContent = shown.text + (shown.truncated ? "\n[…cut: the text is longer]" : "");
      box.append(text);
    } else {
      const table = document.createElement("table");
      table.className = "features";
      shown.features.forEach((value, i) => {
        const row = table.insertRow();
        row.insertCell().textContent = `feature ${i}`;
        row.insertCell().textContent = Number(value).toPrecision(4);
      });
      box.append(table);
      if (shown.total > shown.features.length) {
        const more = document.createElement("p");
        more.className = "muted";
        more.textContent = `first ${shown.features.length} of ${shown.total} features`;
        box.append(more);
      }
    }
    $("item-meta").textContent = item.round < 0 ? `item ${item.id} · validation (never trained on) · held-out #${item.rank + 1}`
      : `item ${item.id} · round ${item.round} · rank ${item.rank + 1}`;
    const note = $("undo-note");
    if (item.undo) {
      const previous = item.your_answer === null ? "none" : classes[item.your_answer].name;
      note.textContent = `undo: your answer was "${previous}"; choose again`;
      note.classList.remove("hidden");
    } else {
      note.classList.add("hidden");
    }
    const guess = toggle.checked ? item.suggestion : null;
    $("suggestion").textContent = guess
      ? `model ${guess.model_version} suggests "${guess.label}" (p = ${guess.probability.toFixed(2)})` : "";
    $("suggestion").classList.toggle("hidden", !guess);
    document.querySelectorAll("button.class").forEach((b) => {
      b.classList.toggle("previous", item.undo && Number(b.dataset.index) === item.your_answer);
      b.classList.toggle("suggested", Boolean(guess) && Number(b.dataset.index) === guess.label_index);
    });
    $("skip").classList.toggle("hidden", item.undo);
    $("waiting").classList.add("hidden");
    $("labeling").classList.remove("hidden");
    closeForms();
  }

  function showWaiting(why) {
    item = null;
    $("why").textContent = why;
    $("labeling").classList.add("hidden");
    $("waiting").classList.remove("hidden");
    clearTimeout(waitTimer);
    waitTimer = setTimeout(load, 3000);
  }

  async function load() {
    clearTimeout(waitTimer);
    try {
      const next = await calkit.call("GET", "/api/next" + (toggle.checked ? "?suggest=true" : ""));
      buildClasses(next.classes);
      showProgress(next.progress, next.model);
      if (next.item) renderItem(next.item); else showWaiting(next.why);
    } catch (error) {
      showWaiting("Cannot reach the server (" + error.message + "); trying again.");
    }
  }

  // A change is sent with one request id and retried with the same id if the network fails.
  async function send(url, body) {
    body.request_id = calkit.requestId();
    for (let attempt = 0; ; attempt++) {
      try {
        return await calkit.call("POST", url, body);
      } catch (error) {
        if (error.status || attempt >= 4) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
      }
    }
  }

  async function act(work) {
    if (busy) return;
    busy = true;
    try { await work(); } catch (error) { say(error.message, "error"); if (error.status === 409) await load(); }
    finally { busy = false; }
  }

  function answer(index) {
    if (!item) return;
    act(async () => {
      const done = await send("/api/labels", {item_id: item.id, label: index});
      await load();
      say(`saved: item ${done.item_id} is "${done.label}"`, "ok");
    });
  }

  function undo() {
    act(async () => {
      const back = await send("/api/undo", {});
      buildClasses(back.classes);
      renderItem(back.item);
      say("undo: choose the right class", "ok");
    });
  }

  function closeForms() {
    $("skip-form").classList.add("hidden");
    $("ask-form").classList.add("hidden");
  }

  function openForm(id, field) {
    if (!item || (id === "skip-form" && item.undo)) return;
    closeForms();
    say("");
    $(id).classList.remove("hidden");
    $(field).focus();
    $(field).select && $(field).select();
  }

  $("skip-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const done = await send("/api/skip", {item_id: item.id, reason: $("skip-reason").value});
      await load();
      say(`skipped item ${done.item_id}`, "ok");
    });
  });
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("question").value.trim();
    if (!text) return;
    act(async () => {
      await send("/api/questions", {item_id: item.id, text});
      $("question").value = "";
      closeForms();
      say("question sent to the lead", "ok");
    });
  });
  document.querySelectorAll("form .cancel").forEach((b) => b.addEventListener("click", closeForms));
  $("undo").addEventListener("click", undo);
  $("skip").addEventListener("click", () => openForm("skip-form", "skip-reason"));
  $("ask").addEventListener("click", () => openForm("ask-form", "question"));

  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
    if (event.key === "Escape") { closeForms(); return; }
    if (event.key === "Enter" && event.target.id === "question" && !event.shiftKey) {
      event.preventDefault();
      $("ask-form").requestSubmit();
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Backspace") { event.preventDefault(); undo(); return; }
    if (event.key === ".") { event.preventDefault(); openForm("skip-form", "skip-reason"); return; }
    if (event.key === "?") { event.preventDefault(); openForm("ask-form", "question"); return; }
    const c = classes.find((x) => x.key === event.key.toLowerCase());
    if (c) { event.preventDefault(); answer(c.index); }
  });

  // The question log: searched as one types, shown as text.
  let searchTimer = null;
  async function searchQuestions() {
    const words = $("question-search").value;
    try {
      const found = await calkit.call("GET", "/api/questions?q=" + encodeURIComponent(words));
      const list = $("question-results");
      list.replaceChildren();
      for (const q of found.questions) {
        const entry = document.createElement("li");
        const asked = document.createElement("div");
        asked.textContent = `Q (item ${q.item_id}, ${q.annotator}${q.guideline ? ", guideline " + q.guideline : ""}): ${q.text}`;
        const answer = document.createElement("div");
        answer.className = q.answer ? "answer" : "muted";
        answer.textContent = q.answer ? `A (${q.answered_by}): ${q.answer}` : "not answered yet";
        entry.append(asked, answer);
        list.append(entry);
      }
      if (!found.questions.length) list.textContent = "No question matches.";
    } catch (error) { say(error.message, "error"); }
  }
  $("question-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchQuestions, 300);
  });
  $("question-log").addEventListener("toggle", () => { if ($("question-log").open) searchQuestions(); });

  setInterval(async () => {
    try {
      const now = await calkit.call("GET", "/api/progress");
      showProgress(now.progress, now.model);
      if (now.guideline && now.guideline !== pageGuideline) {
        $("guideline-changed").textContent = `The guideline is now ${now.guideline}: reload the page to read it.`;
        $("guideline-changed").classList.remove("hidden");
      }
    } catch (error) { /* the next poll tries again */ }
  }, 3000);
  load();
})();
