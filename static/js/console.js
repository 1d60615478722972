// Small progressive enhancements; every action also works without JavaScript.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});
document.addEventListener("focusin", (event) => {
  if (event.target.matches("input.copy")) event.target.select();
});
// "Copy" next to a read-only field (e.g. a new API key): shown only when the clipboard is usable.
document.querySelectorAll("[data-copy]").forEach((button) => {
  if (!navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const field = document.getElementById(button.dataset.copy);
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
  });
});

// A table wider than a phone's screen scrolls inside the page (console.css), as does a box of rows that
// scrolls inside its own (.scroll): when nothing in it takes the focus, it does itself, so it can be
// scrolled from the keyboard too (WCAG 2.1.1).
const tablesScrollable = () => {
  document.querySelectorAll(".table, .scroll").forEach((table) => {
    const scrolls = table.scrollWidth > table.clientWidth + 1 || table.scrollHeight > table.clientHeight + 1;
    const focusable = table.querySelector("a[href], button, input, select, textarea, summary, [tabindex]");
    if (scrolls && !focusable) table.setAttribute("tabindex", "0");
    else if (table.getAttribute("tabindex") === "0") table.removeAttribute("tabindex");
  });
};
tablesScrollable();
window.addEventListener("resize", tablesScrollable);
document.addEventListener("htmx:afterSettle", tablesScrollable);

// Theme: follows the OS until the person picks one here (auto → dark → light → auto). Kept in a cookie,
// so the server renders the page in that theme from its first paint (no flash of the other one).
(() => {
  const button = document.querySelector("[data-theme-switch]");
  if (!button) return;
  const order = ["auto", "dark", "light"];
  const current = () => document.documentElement.dataset.theme || "auto";
  const show = () => {
    button.textContent = `Theme: ${current()}`;
    button.setAttribute("aria-label", `Colour theme: ${current()} (change)`);
  };
  button.hidden = false;
  show();
  button.addEventListener("click", () => {
    const next = order[(order.indexOf(current()) + 1) % order.length];
    if (next === "auto") {
      delete document.documentElement.dataset.theme;
      document.cookie = "theme=; path=/; max-age=0; samesite=lax";
    } else {
      document.documentElement.dataset.theme = next;
      document.cookie = `theme=${next}; path=/; max-age=31536000; samesite=lax`;
    }
    show();
  });
})();

// Keyboard shortcuts (not while typing in a field): / search, g r records, g h home, n new, ? all of them.
(() => {
  const shortcuts = [
    ["/", "Search this list"],
    ["g r", "Go to records"],
    ["g h", "Go to the home page"],
    ["n", "New (record, collection…) where the page offers one"],
    ["Enter / F2", "Edit the focused cell of a records table"],
    ["← ↑ → ↓", "Move between cells of a records table"],
    ["Esc", "Cancel an edit, close this list"],
    ["?", "Show these shortcuts"],
  ];
  let dialog = null;
  function help() {
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.className = "shortcuts";
      dialog.setAttribute("aria-labelledby", "shortcuts-title");
      const rows = shortcuts.map(([keys, what]) => `<dt><kbd>${keys}</kbd></dt><dd>${what}</dd>`).join("");
      dialog.innerHTML = `<h2 id="shortcuts-title">Keyboard shortcuts</h2><dl>${rows}</dl>` +
        '<form method="dialog"><button type="submit">Close</button></form>';
      document.body.appendChild(dialog);
    }
    if (!dialog.open) dialog.showModal();
  }
  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  let pending = null;
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (pending === "g") {
      pending = null;
      const target = { r: 'nav a[href$="/records/"]', h: "a.brand" }[event.key];
      const link = target && document.querySelector(target);
      if (link) {
        event.preventDefault();
        window.location.href = link.href;
      }
      return;
    }
    if (event.key === "g") {
      pending = "g";
      setTimeout(() => (pending = null), 1500);
    } else if (event.key === "/") {
      const search = document.querySelector('input[type="search"], [role="search"] input:not([type="hidden"])');
      if (search) {
        event.preventDefault();
        search.focus();
      }
    } else if (event.key === "n") {
      const create = document.querySelector('[data-shortcut="n"]');
      if (create) {
        event.preventDefault();
        create.click();
      }
    } else if (event.key === "?") {
      event.preventDefault();
      help();
    }
  });
})();
