// The records table as a grid (WAI-ARIA grid pattern): arrow keys move between cells, Enter or F2
// (or a double click) opens the cell's editor, Escape cancels it, and the row's boxes select records
// for the bulk bar. The server renders every editor and row; this only moves focus and asks for them.
(() => {
  const grid = () => document.querySelector("table[data-cell-url]");
  const cells = (tr) => Array.from(tr.querySelectorAll("td[data-key], td.select"));
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
        editor.querySelector("[data-cell-cancel]").click();
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

  prepare();
})();
