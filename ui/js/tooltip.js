// A hover card beside the pointer that stays inside the window: it flips to the pointer's left
// (or above it) where it would run off the right (or bottom) edge. `tip` is absolutely placed
// inside `root` (position: relative).
const GAP = 12, MARGIN = 4;

export function placeTip(tip, root, ev) {
  tip.classList.remove("hidden");
  const w = tip.offsetWidth, h = tip.offsetHeight;
  let x = ev.clientX + GAP, y = ev.clientY + GAP;
  if (x + w > window.innerWidth - MARGIN) x = Math.max(MARGIN, ev.clientX - GAP - w);
  if (y + h > window.innerHeight - MARGIN) y = Math.max(MARGIN, ev.clientY - GAP - h);
  const r = root.getBoundingClientRect();
  tip.style.left = x - r.left + "px";
  tip.style.top = y - r.top + "px";
}

/**
 * Hide `tip` whenever the pointer may no longer be over what it describes: leaving `root`, any
 * scroll (the canvas moves under a still pointer, with no mouseleave) or the window losing focus.
 */
export function hideTipWhenAway(tip, root) {
  const hide = () => tip.classList.add("hidden");
  root.addEventListener("mouseleave", hide);
  window.addEventListener("scroll", hide, true);
  window.addEventListener("blur", hide);
  return hide;
}
