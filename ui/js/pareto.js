// The Pareto front of a sweep's points (x = KV memory, less is better): the points no other point beats on
// both memory and quality. Drawn across every policy and KV format at once, so evicting and quantizing
// (issue 34) are compared on one line: a point on it is the best quality anything reached at its memory.

/**
 * points: [{x, y, ...}]; lowerIsBetter: for y. Returns the non-dominated points, by x ascending: each one
 * strictly better in y than every point with less or equal x.
 */
export function paretoFront(points, lowerIsBetter) {
  const better = (a, b) => (lowerIsBetter ? a < b : a > b);
  const sorted = [...points].filter((p) => p.x != null && p.y != null && isFinite(p.x) && isFinite(p.y))
    .sort((a, b) => a.x - b.x || (better(a.y, b.y) ? -1 : better(b.y, a.y) ? 1 : 0));
  const front = [];
  for (const p of sorted) if (!front.length || better(p.y, front[front.length - 1].y)) front.push(p);
  return front;
}
