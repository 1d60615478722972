// The records table as a grid (WAI-ARIA grid pattern): arrow keys move between cells, Enter or F2
// (or a double click) opens the cell's editor, Escape cancels it, and the row's boxes select records
// for the bulk bar. The server renders every editor and row; this only moves focus and asks for them.
(() => {
  const grid = () => document.querySelector("table[data-cell-url]");
  const cells = (tr) => Array.from(tr.querySelectorAll("td[data-key], td.select")).filter((td) => !td.hidden);
  let returnTo = null; // {id, key}: the cell to focus once its row comes back from the server

  function focusCell(td) {
    if (!td) return;
    const table = td.closest("table");
    table.querySelectorAll('td[tabindex="0"]').forEach((c) => c.setAttribute("tabindex", "-1"));
    td.setAttribute("tabindex", "0");
    td.focus();
  }

  function prepare() {
    const table = grid();
    if (!table) return;
    layout(table);
    const all = table.querySelectorAll("tbody td[data-key]");
    all.forEach((td) => td.hasAttribute("tabindex") || td.setAttribute("tabindex", "-1"));
    if (all.length && !table.querySelector('tbody td[tabindex="0"]')) all[0].setAttribute("tabindex", "0");
    selectionCount();
  }

  function openEditor(td) {
    const table = grid();
    if (!table || !table.hasAttribute("data-editable") || !td || !td.dataset.key) return;
    const tr = td.closest("tr");
    const url = table.dataset.cellUrl
      .replace("__id__", encodeURIComponent(tr.dataset.id))
      .replace("__key__", encodeURIComponent(td.dataset.key));
    returnTo = { id: tr.dataset.id, key: td.dataset.key };
    htmx.ajax("GET", url, { source: td, target: tr, swap: "outerHTML" });
  }

  document.addEventListener("keydown", (event) => {
    const td = event.target.closest && event.target.closest("table[data-cell-url] td");
    if (!td) return;
    const editor = td.querySelector("form.cell-editor");
    if (editor) {
      if (event.key === "Escape") {
        event.preventDefault();
        // The cancel button's own request, made here: a click lands nowhere while htmx has swapped the
        // editor in (an error shown) but not yet bound the new button's hx-get (its settle delay).
        const cancel = editor.querySelector("[data-cell-cancel]");
        htmx.ajax("GET", cancel.getAttribute("hx-get"), { source: cancel, target: td.closest("tr"), swap: "outerHTML" });
      }
      return;
    }
    if (event.target !== td) return; // a link or box inside the cell keeps its keys
    const tr = td.closest("tr");
    const row = cells(tr);
    const i = row.indexOf(td);
    const rows = Array.from(tr.parentElement.children);
    const r = rows.indexOf(tr);
    const at = (rr, ii) => rows[rr] && cells(rows[rr])[ii];
    const moves = {
      ArrowLeft: () => row[i - 1],
      ArrowRight: () => row[i + 1],
      ArrowUp: () => at(r - 1, i),
      ArrowDown: () => at(r + 1, i),
      Home: () => row[0],
      End: () => row[row.length - 1],
    };
    if (moves[event.key]) {
      event.preventDefault();
      focusCell(moves[event.key]());
    } else if ((event.key === "Enter" || event.key === "F2") && td.dataset.key) {
      event.preventDefault();
      openEditor(td);
    }
  });

  document.addEventListener("dblclick", (event) => {
    const td = event.target.closest && event.target.closest("table[data-cell-url] td[data-key]");
    if (td && !td.querySelector("form") && !event.target.closest("a")) openEditor(td);
  });

  document.addEventListener("focusin", (event) => {
    const td = event.target.closest && event.target.closest("table[data-cell-url] tbody td[data-key]");
    if (td && event.target === td) focusCell(td);
  });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    prepare();
    const table = grid();
    if (!table || !returnTo) return;
    const row = Array.from(table.querySelectorAll("tbody tr")).find((t) => t.dataset.id === returnTo.id);
    if (!row) return;
    const input = row.querySelector("td.editing input:not([type=hidden]), td.editing select, td.editing textarea");
    if (input) {
      input.focus();
      if (input.select && input.type !== "checkbox") input.select();
      return;
    }
    focusCell(Array.from(row.querySelectorAll("td[data-key]")).find((c) => c.dataset.key === returnTo.key));
    returnTo = null;
  });

  // --- selection for the bulk bar ---------------------------------------------------------------------
  function selectionCount() {
    const bar = document.getElementById("bulk");
    if (!bar) return;
    const boxes = document.querySelectorAll('input[name="ids"][form="bulk"]');
    const n = Array.from(boxes).filter((b) => b.checked).length;
    const scope = bar.querySelector("[data-bulk-scope]");
    const matching = bar.querySelector("[data-select-matching]");
    if (n < boxes.length) scope.value = "page"; // unticking one leaves "every matching record"
    const everything = scope.value === "matching";
    bar.querySelector(".selected-count").textContent = everything
      ? "Every matching record selected"
      : n ? `${n} selected` : "None selected";
    if (matching) matching.hidden = everything || n === 0 || n < boxes.length;
    bar.querySelectorAll("[data-bulk]").forEach((b) => (b.disabled = n === 0));
    const all = document.querySelector("[data-select-all]");
    if (all) {
      all.checked = n > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
    }
  }
  document.addEventListener("click", (event) => {
    if (!event.target.matches("[data-select-matching]")) return;
    document.querySelector("[data-bulk-scope]").value = "matching";
    selectionCount();
  });
  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-select-all]")) {
      document.querySelectorAll('input[name="ids"][form="bulk"]').forEach((b) => (b.checked = event.target.checked));
    }
    if (event.target.matches('[data-select-all], input[name="ids"][form="bulk"]')) selectionCount();
  });

  // --- column layout: hidden columns, widths (drag or arrow keys on a column's edge), frozen columns ----
  // The layout lives in the table's URL (hide, widths, freeze), so a saved view and a shared link keep it;
  // the server renders it, and this applies it again to rows it sends alone (an edited row) and keeps the
  // URL, the page's links and the "save view" forms in step when a width changes here.
  const WIDTH_MIN = 48;
  const WIDTH_MAX = 800;

  const widthsOf = (table) =>
    Object.fromEntries(
      (table.dataset.widths || "").split(",").filter(Boolean).map((p) => [p.split(":")[0], Number(p.split(":")[1])])
    );

  function layout(table) {
    const hidden = new Set((table.dataset.hidden || "").split(",").filter(Boolean));
    table.querySelectorAll("[data-key]").forEach((cell) => {
      if (cell.closest("td.editing")) return;
      cell.hidden = hidden.has(cell.dataset.key);
    });
    const widths = widthsOf(table);
    table.querySelectorAll("thead th[data-key]").forEach((th) => {
      const w = widths[th.dataset.key];
      ["width", "minWidth", "maxWidth"].forEach((p) => (th.style[p] = w ? `${w}px` : ""));
      table.querySelectorAll(`tbody td[data-key="${CSS.escape(th.dataset.key)}"]`).forEach((td) => {
        td.style.maxWidth = w ? `${w}px` : "";
        td.classList.toggle("sized", Boolean(w));
      });
      if (!th.querySelector(".col-resize")) {
        const handle = document.createElement("span");
        handle.className = "col-resize";
        handle.tabIndex = 0;
        handle.setAttribute("role", "separator");
        handle.setAttribute("aria-orientation", "vertical");
        handle.setAttribute("aria-label", `Width of ${th.textContent.trim()}`);
        handle.setAttribute("aria-valuemin", WIDTH_MIN);
        handle.setAttribute("aria-valuemax", WIDTH_MAX);
        th.appendChild(handle);
      }
      th.querySelector(".col-resize").setAttribute("aria-valuenow", Math.round(th.getBoundingClientRect().width));
    });
    freeze(table);
  }

  function freeze(table) {
    const n = Number(table.dataset.frozen || 0);
    const heads = Array.from(table.querySelectorAll("thead th")).filter((th) => !th.hidden);
    const lead = heads[0] && heads[0].classList.contains("select") ? 1 : 0;
    let left = 0;
    table.querySelectorAll(".frozen").forEach((c) => {
      c.classList.remove("frozen", "frozen-last");
      c.style.left = "";
    });
    heads.slice(0, n ? n + lead : 0).forEach((th, i, all) => {
      const key = th.dataset.key;
      const column = key
        ? table.querySelectorAll(`[data-key="${CSS.escape(key)}"]`)
        : table.querySelectorAll("th.select, td.select");
      column.forEach((c) => {
        c.classList.add("frozen");
        c.classList.toggle("frozen-last", i === all.length - 1);
        c.style.left = `${left}px`;
      });
      left += th.getBoundingClientRect().width;
    });
  }

  function widthsCommit(table, key, width) {
    const widths = widthsOf(table);
    widths[key] = Math.max(WIDTH_MIN, Math.min(WIDTH_MAX, Math.round(width)));
    const text = Object.entries(widths).map(([k, w]) => `${k}:${w}`).join(",");
    table.dataset.widths = text;
    layout(table);
    const withWidths = (query) => {
      const params = new URLSearchParams(query);
      params.set("widths", text);
      return params.toString();
    };
    const url = new URL(window.location.href);
    url.search = withWidths(url.search);
    history.replaceState(history.state, "", url);
    const view = document.getElementById("records-view");
    view.querySelectorAll("[data-view-query]").forEach((input) => (input.value = withWidths(input.value)));
    view.querySelectorAll('input[type="hidden"][name="widths"]').forEach((input) => (input.value = text));
    view.querySelectorAll("a[href*='?'], a[hx-get*='?']").forEach((a) => {
      ["href", "hx-get"].forEach((attr) => {
        const value = a.getAttribute(attr);
        if (!value || !value.startsWith(url.pathname)) return;
        const [path, query] = value.split("?");
        a.setAttribute(attr, `${path}?${withWidths(query)}`);
      });
    });
    const update = view.querySelector("[data-view-update]");
    if (update) update.hidden = false;
  }

  document.addEventListener("pointerdown", (event) => {
    const handle = event.target.closest && event.target.closest("table[data-cell-url] .col-resize");
    if (!handle) return;
    event.preventDefault();
    const th = handle.closest("th");
    const table = th.closest("table");
    const startX = event.clientX;
    const startWidth = th.getBoundingClientRect().width;
    const move = (e) => {
      const w = Math.max(WIDTH_MIN, Math.min(WIDTH_MAX, startWidth + e.clientX - startX));
      ["width", "minWidth", "maxWidth"].forEach((p) => (th.style[p] = `${w}px`));
    };
    const up = (e) => {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      widthsCommit(table, th.dataset.key, startWidth + e.clientX - startX);
    };
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  });

  document.addEventListener("keydown", (event) => {
    const handle = event.target.closest && event.target.closest("table[data-cell-url] .col-resize");
    if (!handle || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
    event.preventDefault();
    const th = handle.closest("th");
    const step = event.key === "ArrowLeft" ? -16 : 16;
    widthsCommit(th.closest("table"), th.dataset.key, th.getBoundingClientRect().width + step);
    th.querySelector(".col-resize").focus();
  });

  window.addEventListener("resize", () => grid() && freeze(grid()));

  // --- undo: a toast offers to put back the last change for a short while ---------------------------
  let undoTimer = null;
  function undoToast() {
    const toast = document.getElementById("undo-toast");
    clearTimeout(undoTimer);
    if (!toast || !toast.dataset.expires) return;
    const left = Number(toast.dataset.expires) - Date.now();
    if (left <= 0) toast.hidden = true;
    else undoTimer = setTimeout(() => (toast.hidden = true), left);
  }
  document.body.addEventListener("records-undo", () => {
    const region = document.querySelector("[data-undo-url]");
    if (region) htmx.ajax("GET", region.dataset.undoUrl, { target: "#undo-toast", swap: "outerHTML" });
  });
  document.body.addEventListener("htmx:afterSettle", undoToast);
  document.addEventListener("submit", (event) => {
    const next = event.target.querySelector("[data-undo-next]");
    if (next) next.value = window.location.pathname + window.location.search;
  });
  undoToast();
  prepare();
})();
