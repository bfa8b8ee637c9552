// Tiny DOM builder. Strings become text nodes, never HTML: everything that came from a
// model, the Hub or the user (tokens, names, tags, card text, prompts, errors) goes
// through here or through textContent, so `<img onerror=...>` stays inert text.

/** h("div", {class: "x", onclick: fn, dataset: {k: v}}, "text", childNode, [more]) */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;  // value, checked, disabled...
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of node. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A labelled field: field("Cache size", input). */
export function field(label, control, cls = "field") {
  return h("label", { class: cls }, label, control);
}

/** Enter runs fn in inputs and prompt areas; Shift+Enter still makes a new line in a textarea. */
export function onEnter(input, fn) {
  input.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" || ev.isComposing || ev.shiftKey) return;
    ev.preventDefault();
    fn();
  });
}

/** Mark the input named by an error's `field` (data-field attribute) as invalid until edited. */
export function markField(root, envelope) {
  root.querySelectorAll(".invalid").forEach((n) => n.classList.remove("invalid"));
  const name = envelope && envelope.error && envelope.error.field;
  if (!name) return;
  const input = root.querySelector(`[data-field="${CSS.escape(name)}"]`);
  if (!input) return;
  input.classList.add("invalid");
  input.addEventListener("input", () => input.classList.remove("invalid"), { once: true });
  input.focus();
}

/** A long job's controls: Run disabled and Cancel plus an emptied progress bar shown while it runs. */
export function showRunning({ runBtn, cancelBtn, progress }, busy) {
  runBtn.disabled = busy;
  cancelBtn.classList.toggle("hidden", !busy);
  progress.classList.toggle("hidden", !busy);
  if (busy) progress.firstChild.style.width = "0%";
}
