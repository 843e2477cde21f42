// Order statistics and table cells shared by the bench scripts.

/** The median: the middle value, the mean of the two middle ones for an even count; NaN for none. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * The value at fraction q of the values sorted ascending, index floor(q x n): how the core scripts
 * have always read their median (q = 0.5, the upper middle for an even count) and percentiles.
 */
export function quantile(xs, q) {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** A number right-aligned in `width` columns with `digits` decimals; '-' when not finite. */
export const fmt = (v, width = 9, digits = 1) =>
  (Number.isFinite(v) ? v.toFixed(digits) : '-').padStart(width);
