// The multibox page: send one image to POST v1/detect, draw the answer on a canvas and list it.
// The request asks for every detection down to REQUEST_THRESHOLD; the slider filters them here, without
// asking the server again. Each drawn detection is also an <li class="detection"> with data attributes.
"use strict";

(() => {
  const REQUEST_THRESHOLD = 0.05;
  const PALETTE = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
    "#469990", "#800000", "#808000", "#000075", "#bfef45", "#ffe119", "#dcbeff", "#aaffc3",
  ];

  const fileInput = document.getElementById("file-input");
  const dropzone = document.getElementById("dropzone");
  const slider = document.getElementById("threshold");
  const sliderValue = document.getElementById("threshold-value");
  const statusLine = document.getElementById("status");
  const list = document.getElementById("detections");
  const canvas = document.getElementById("canvas");
  const modelLine = document.getElementById("model");
  const context = canvas.getContext("2d");

  let current = null; // {image, result, name}
  let highlighted = -1; // index into current.result.detections
  let requestCount = 0;

  const colorOf = (classId) => PALETTE[classId % PALETTE.length];
  const format = (value) => value.toFixed(2);

  function setStatus(state, text) {
    statusLine.dataset.state = state;
    statusLine.textContent = text;
  }

  async function loadModel() {
    try {
      const response = await fetch("healthz");
      const health = await response.json();
      const model = health.model;
      modelLine.textContent = `${model.name || "model"}: ${model.class_names.join(", ")}`;
      modelLine.dataset.loaded = "true";
      if (!current) {
        slider.value = Math.max(REQUEST_THRESHOLD, health.default_threshold);
        sliderValue.textContent = format(Number(slider.value));
      }
    } catch (error) {
      modelLine.textContent = `the server does not answer (${error.message})`;
    }
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the browser cannot display this file"));
      image.src = url;
    });
  }

  function describeError(status, payload) {
    let detail = payload && payload.detail;
    if (Array.isArray(detail)) {
      detail = detail.map((item) => item.msg).join("; ");
    }
    return `Error ${status}: ${detail || "the server refused the image"}`;
  }

  async function detect(file) {
    if (!file) {
      return;
    }
    const request = ++requestCount;
    setStatus("loading", `Finding objects in ${file.name}\u2026`);
    const body = new FormData();
    body.append("file", file, file.name);
    const url = URL.createObjectURL(file);
    try {
      const response = await fetch(`v1/detect?threshold=${REQUEST_THRESHOLD}`, { method: "POST", body });
      const payload = await response.json().catch(() => null);
      if (!response.ok) {
        throw new Error(describeError(response.status, payload));
      }
      const image = await loadImage(url);
      if (request !== requestCount) {
        return; // a newer image was picked meanwhile
      }
      current = { image, result: payload, name: file.name };
      highlighted = -1;
      render();
    } catch (error) {
      if (request === requestCount) {
        current = null;
        clear();
        setStatus("error", error.message);
      }
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  function clear() {
    list.replaceChildren();
    context.clearRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.drawn = "0";
  }

  function shownDetections() {
    const threshold = Number(slider.value);
    return current.result.detections
      .map((detection, index) => ({ ...detection, index }))
      .filter((detection) => detection.score >= threshold);
  }

  function drawLabel(detection, color, fontSize, lineWidth) {
    const [x1, y1] = detection.box;
    const text = `${detection.class_name} ${format(detection.score)}`;
    context.font = `600 ${fontSize}px system-ui, sans-serif`;
    const width = context.measureText(text).width + fontSize * 0.6;
    const height = fontSize * 1.35;
    const top = y1 - height >= 0 ? y1 - height : y1; // inside the box when there is no room above it
    const left = Math.min(Math.max(0, x1 - lineWidth / 2), canvas.width - width);
    context.fillStyle = color;
    context.fillRect(left, top, width, height);
    context.fillStyle = "#fff";
    context.textBaseline = "middle";
    context.fillText(text, left + fontSize * 0.3, top + height / 2);
  }

  function draw(shown) {
    const { image, result } = current;
    canvas.width = result.image.width;
    canvas.height = result.image.height;
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    const size = Math.max(canvas.width, canvas.height);
    const lineWidth = Math.max(2, Math.round(size / 320));
    const fontSize = Math.max(12, Math.round(size / 48));
    // Lowest score first, so the most confident boxes and labels end up on top.
    const order = [...shown].reverse();
    if (highlighted >= 0) {
      const last = order.findIndex((detection) => detection.index === highlighted);
      if (last >= 0) {
        order.push(...order.splice(last, 1));
      }
    }
    for (const detection of order) {
      const [x1, y1, x2, y2] = detection.box;
      const color = colorOf(detection.class_id);
      const emphasis = detection.index === highlighted ? 2 : 1;
      context.lineWidth = lineWidth * emphasis;
      context.strokeStyle = color;
      context.strokeRect(x1, y1, x2 - x1, y2 - y1);
      drawLabel(detection, color, fontSize, lineWidth * emphasis);
    }
    canvas.dataset.drawn = String(shown.length);
  }

  function listItem(detection) {
    const item = document.createElement("li");
    const color = colorOf(detection.class_id);
    item.className = "detection";
    item.dataset.index = String(detection.index);
    item.dataset.classId = String(detection.class_id);
    item.dataset.className = detection.class_name;
    item.dataset.score = String(detection.score);
    item.dataset.box = detection.box.join(",");
    item.dataset.color = color;
    if (detection.index === highlighted) {
      item.classList.add("highlight");
    }
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = detection.class_name;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = format(detection.score);
    const box = document.createElement("span");
    box.className = "box";
    box.textContent = detection.box.map((v) => Math.round(v)).join(", ");
    item.append(swatch, name, score, box);
    item.addEventListener("mouseenter", () => setHighlight(detection.index));
    item.addEventListener("mouseleave", () => setHighlight(-1));
    return item;
  }

  function setHighlight(index) {
    if (highlighted !== index) {
      highlighted = index;
      render();
    }
  }

  function render() {
    sliderValue.textContent = format(Number(slider.value));
    if (!current) {
      return;
    }
    const shown = shownDetections();
    draw(shown);
    list.replaceChildren(...shown.map(listItem));
    const { result } = current;
    const counts = new Map();
    for (const detection of shown) {
      counts.set(detection.class_name, (counts.get(detection.class_name) || 0) + 1);
    }
    const perClass = [...counts].map(([name, count]) => `${count} ${name}`).join(", ");
    setStatus(
      "done",
      `${current.name} (${result.image.width}\u00d7${result.image.height}): ${shown.length} of ` +
        `${result.detections.length} detections with score \u2265 ${format(Number(slider.value))}` +
        (perClass ? ` \u2014 ${perClass}` : ""),
    );
  }

  fileInput.addEventListener("change", () => {
    detect(fileInput.files[0]);
    fileInput.value = ""; // picking the same file again still triggers a change
  });
  slider.addEventListener("input", render);

  for (const type of ["dragenter", "dragover"]) {
    dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    dropzone.addEventListener(type, () => dropzone.classList.remove("dragging"));
  }
  // A file dropped anywhere on the page is taken, rather than the browser navigating away to it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("dragging");
    detect(event.dataTransfer.files[0]);
  });
  window.addEventListener("paste", (event) => detect(event.clipboardData.files[0]));

  loadModel();
})();
