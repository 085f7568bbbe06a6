// Storage explorer: small progressive enhancements; every page works without them.
"use strict";

(function () {
  const FULL_LIMIT = 4 * 1024 * 1024; // bytes fetched by "show full"; beyond that, download

  // "Show full output": fetch the text into the preview instead of leaving the page.
  // Delegated, because a live page swaps the sections that hold these links.
  document.addEventListener("click", async (event) => {
    const link = event.target instanceof Element ? event.target.closest("[data-show-full]") : null;
    const target = link && document.getElementById(link.dataset.showFull);
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
})();
