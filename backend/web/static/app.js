// Lookalike pages: drag and drop onto file fields, previews of chosen photos, confirmation of deletes.
// No inline script anywhere (the CSP allows none); every behaviour is wired here from data- attributes.
"use strict";

function showPreviews(input) {
  const target = document.getElementById(input.dataset.preview);
  if (!target) return;
  target.replaceChildren();
  for (const file of input.files) {
    if (!file.type.startsWith("image/")) {
      const note = document.createElement("span");
      note.className = "not-image";
      note.textContent = file.name + ": not an image";
      target.append(note);
      continue;
    }
    const img = document.createElement("img");
    img.alt = file.name;
    img.src = URL.createObjectURL(file);
    img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
    target.append(img);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[type=file][data-preview]")) {
    input.addEventListener("change", () => showPreviews(input));
  }
  for (const zone of document.querySelectorAll("[data-dropzone]")) {
    const input = zone.querySelector("input[type=file]");
    if (!input) continue;
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const files = new DataTransfer();
      const dropped = [...event.dataTransfer.files];
      for (const file of input.multiple ? dropped : dropped.slice(0, 1)) files.items.add(file);
      input.files = files.files;
      input.dispatchEvent(new Event("change"));
    });
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
