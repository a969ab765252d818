// Copy buttons: progressive, every value is also in a read-only field.
document.querySelectorAll("button.copy[data-copy]").forEach((button) => {
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(source.value);
      button.textContent = "Copied";
    } catch {
      source.select();
      button.textContent = "Select and copy";
    }
  });
});
// Fields that hold a value to copy select it all on focus.
document.querySelectorAll(".copy-source").forEach((field) => {
  field.addEventListener("focus", () => field.select());
});
