// Live pages: server-sent events say what changed, and the page re-reads only that part,
// once per change. Nothing runs on a timer; an EventSource reconnects by itself and
// resumes with Last-Event-ID, so a dropped connection misses nothing.
"use strict";

(function () {
  const indicator = document.getElementById("live-state");
  if (!indicator || !window.EventSource) return;
  const LABELS = { live: "Live", connecting: "Connecting…", disconnected: "Disconnected: reload the page", off: "Not live" };
  const sources = new Set();

  const showState = () => {
    const states = [...sources].map((source) => source.readyState);
    let state = "live";
    if (states.includes(EventSource.CLOSED)) state = "disconnected"; // refused: it will not retry
    else if (states.includes(EventSource.CONNECTING)) state = "connecting";
    indicator.dataset.state = state;
    indicator.textContent = LABELS[state];
  };

  const follow = (url, listeners) => {
    const source = new EventSource(url);
    sources.add(source);
    source.addEventListener("open", showState);
    source.addEventListener("error", showState);
    for (const [name, listener] of Object.entries(listeners)) source.addEventListener(name, listener);
    showState();
    return () => { source.close(); sources.delete(source); showState(); };
  };

  const stopAll = () => {
    for (const source of sources) source.close();
    sources.clear();
    indicator.dataset.state = "off";
    indicator.textContent = LABELS.off;
  };

  // Re-read the page's parts; changes arriving meanwhile cost one more read, not one each.
  const served = new Map(); // id -> the HTML the server last sent for that part
  let reading = null;
  let again = false;
  const readParts = async () => {
    const response = await fetch(indicator.dataset.parts, { headers: { Accept: "text/html" } });
    if (!response.ok || response.redirected) return; // a lapsed session lands on sign-in
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const part of fresh.querySelectorAll("[data-live-part][id]")) {
      // Unchanged on the server: keep the element, and whatever the reader opened in it.
      if (served.get(part.id) === part.outerHTML) continue;
      served.set(part.id, part.outerHTML);
      const current = document.getElementById(part.id);
      if (current) current.replaceWith(document.importNode(part, true));
    }
  };
  const refresh = () => {
    if (!indicator.dataset.parts) return;
    if (reading) { again = true; return; }
    reading = readParts().catch(() => {}).finally(() => {
      reading = null;
      if (again) { again = false; refresh(); }
    });
  };
  for (const part of document.querySelectorAll("[data-live-part][id]")) served.set(part.id, part.outerHTML);

  const badge = (status) => {
    const span = document.createElement("span");
    span.className = `badge b-${status}`;
    span.textContent = status;
    return span;
  };

  // The list: rows change status in place; new records are announced, not inserted.
  let created = 0;
  const news = document.getElementById("list-news");
  const onListChange = (change) => {
    refresh();
    const row = document.querySelector(`tr[data-evaluation="${CSS.escape(change.evaluation_id)}"]`);
    const gone = change.kind === "deleted" || change.kind === "purged";
    if (row && (change.status || gone)) {
      row.querySelector("[data-status]").replaceChildren(badge(gone ? "deleted" : change.status));
      row.classList.toggle("gone", gone);
    }
    if (change.kind === "created" && news) {
      created += 1;
      news.querySelector("span").textContent = created === 1
        ? "1 evaluation was created since this page loaded."
        : `${created} evaluations were created since this page loaded.`;
      news.hidden = false;
    }
  };

  // A record: its parts are re-read; once it is deleted there is nothing left to follow.
  const tailStatus = document.getElementById("tail-status");
  const onRecordChange = (change) => {
    if (change.kind !== "deleted" && change.kind !== "purged") {
      refresh();
      return;
    }
    stopAll();
    document.getElementById("status-badge").replaceChildren(badge("deleted"));
    if (tailStatus) tailStatus.textContent = "This evaluation was deleted.";
  };

  const onChange = document.getElementById("log") ? onRecordChange : onListChange;
  follow(indicator.dataset.changes, { message: (event) => onChange(JSON.parse(event.data)) });

  // The log tail: each message is the next piece; `end` carries the final status.
  const log = document.getElementById("log");
  if (log && log.dataset.stream) {
    const stop = follow(log.dataset.stream, {
      message: (event) => {
        const piece = JSON.parse(event.data);
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
        log.append(document.createTextNode(piece.content));
        if (atBottom) log.scrollTop = log.scrollHeight;
      },
      end: (event) => {
        stop();
        const end = JSON.parse(event.data);
        if (tailStatus && !end.deleted) tailStatus.textContent = `Evaluation ${end.status}; the log is complete.`;
      },
    });
  }
})();
