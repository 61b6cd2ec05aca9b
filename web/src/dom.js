// A tiny DOM builder: h("div", {class: "x", dataset: {testid: "y"}}, child, "text", ...). Text is always set as text
// (never parsed as HTML), so names and payload strings from the server cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Set textContent only when it changes (keeps the DOM quiet for the 1 s ticks). */
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

/** Replace the element's classes matching `prefix-*` with `prefix-value`. */
export function setVariant(el, prefix, value) {
  for (const c of [...el.classList]) if (c.startsWith(prefix + "-")) el.classList.remove(c);
  if (value) el.classList.add(`${prefix}-${value}`);
}
