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
