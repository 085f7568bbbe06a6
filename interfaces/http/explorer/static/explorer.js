// Storage explorer: small progressive enhancements; every page works without them.
"use strict";

(function () {
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const FULL_LIMIT = 4 * 1024 * 1024; // bytes fetched by "show full"; beyond that, download

  // "Show full output": fetch the text into the preview instead of leaving the page.
  for (const link of document.querySelectorAll("[data-show-full]")) {
    link.addEventListener("click", async (event) => {
      const target = document.getElementById(link.dataset.showFull);
      if (!target) return;
      event.preventDefault();
      link.setAttribute("aria-busy", "true");
      try {
        const response = await fetch(link.href, { headers: { Range: `bytes=0-${FULL_LIMIT - 1}` } });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        target.textContent = await response.text();
        const note = document.getElementById(target.id.replace("-text", "-note"));
        if (note) {
          note.textContent = response.status === 206
            ? "Showing the first 4 MiB; download for the rest."
            : "Showing the full content.";
        }
        link.remove();
        target.focus();
      } catch (error) {
        window.location.href = link.href;
      }
    });
  }

  // Live tail: poll the logs offset API while the evaluation is not finished.
  const log = document.getElementById("log");
  if (log && log.dataset.live === "true") {
    const status = document.getElementById("tail-status");
    const badge = document.getElementById("status-badge");
    const interval = Number(log.dataset.interval || 1000);
    let offset = Number(log.dataset.offset || 0);
    let polls = 0;

    const pullLog = async () => {
      const response = await fetch(`${log.dataset.logUrl}?offset=${offset}`, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const piece = await response.json();
      if (piece.content) {
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
        log.append(document.createTextNode(piece.content));
        if (atBottom) log.scrollTop = log.scrollHeight;
      }
      offset = piece.next_offset;
      log.dataset.offset = String(offset);
    };

    const finished = async () => {
      const response = await fetch(log.dataset.recordUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) return false;
      const record = await response.json();
      if (!TERMINAL.has(record.status)) return false;
      if (badge) {
        const span = document.createElement("span");
        span.className = `badge b-${record.status}`;
        span.textContent = record.status;
        badge.replaceChildren(span);
      }
      return record.status;
    };

    const tick = async () => {
      polls += 1;
      try {
        await pullLog();
        const ended = polls % 3 === 0 ? await finished() : false;
        if (ended) {
          await pullLog();
          log.dataset.live = "false";
          if (status) status.textContent = `Evaluation ${ended}; the log is complete.`;
          return;
        }
      } catch (error) {
        if (status) status.textContent = "Lost contact with the server; retrying…";
      }
      window.setTimeout(tick, interval);
    };
    window.setTimeout(tick, interval);
  }
})();
