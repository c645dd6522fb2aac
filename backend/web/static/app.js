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
    const boxInput = target.dataset.boxInput && document.getElementById(target.dataset.boxInput);
    if (boxInput) {
      boxInput.value = "";
      boxSelector(img, boxInput);
    }
  }
}

// Drag a box on a preview: its fractions of the photo go into the hidden field that the preview names
// (x,y,w,h from the top left, as POST /api/v1/search takes them). A click without a drag clears the box.
function boxSelector(img, input) {
  const frame = document.createElement("div");
  frame.className = "box-frame";
  img.replaceWith(frame);
  frame.append(img);
  const mark = document.createElement("div");
  mark.className = "box-mark";
  mark.hidden = true;
  frame.append(mark);
  let start = null;
  const at = (event) => {
    const r = img.getBoundingClientRect();
    return {
      x: Math.min(Math.max((event.clientX - r.left) / r.width, 0), 1),
      y: Math.min(Math.max((event.clientY - r.top) / r.height, 0), 1),
    };
  };
  const draw = (a, b) => {
    const x = Math.min(a.x, b.x), y = Math.min(a.y, b.y);
    const w = Math.abs(a.x - b.x), h = Math.abs(a.y - b.y);
    Object.assign(mark.style, { left: `${x * 100}%`, top: `${y * 100}%`, width: `${w * 100}%`, height: `${h * 100}%` });
    mark.hidden = false;
    return { x, y, w, h };
  };
  img.draggable = false;
  frame.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    start = at(event);
    frame.setPointerCapture(event.pointerId);
  });
  frame.addEventListener("pointermove", (event) => {
    if (start) draw(start, at(event));
  });
  frame.addEventListener("pointerup", (event) => {
    if (!start) return;
    const box = draw(start, at(event));
    start = null;
    if (box.w < 0.02 || box.h < 0.02) {
      mark.hidden = true;
      input.value = "";
      return;
    }
    input.value = [box.x, box.y, box.w, box.h].map((v) => v.toFixed(4)).join(",");
  });
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
