// A deterministic handwritten-digits-like data set, made at run time (no download): each sample
// is a 16x16 grey image of a digit 0-9 drawn from a stroke font with per-sample jitter of the
// stroke points, a random affine transform (rotation, scale, shear, shift), random stroke width,
// pixel noise and dropout. Sample i of a split is the same on every machine and every rank, so a
// rank can make just its own shard. A linear model tops out well below an MLP with a hidden layer.

export const SIDE = 16;
export const FEATURES = SIDE * SIDE;
export const CLASSES = 10;

// Strokes as polylines in a unit box, y downwards.
const ring = (cx, cy, rx, ry, n = 14) =>
  Array.from({ length: n + 1 }, (_, k) => [
    cx + rx * Math.cos((2 * Math.PI * k) / n),
    cy + ry * Math.sin((2 * Math.PI * k) / n),
  ]);
const GLYPHS = [
  [ring(0.5, 0.5, 0.24, 0.38)],
  [
    [
      [0.34, 0.26],
      [0.52, 0.1],
      [0.52, 0.9],
    ],
  ],
  [
    [
      [0.25, 0.3],
      [0.36, 0.15],
      [0.58, 0.11],
      [0.72, 0.26],
      [0.66, 0.45],
      [0.26, 0.9],
      [0.78, 0.9],
    ],
  ],
  [
    [
      [0.25, 0.14],
      [0.72, 0.14],
      [0.46, 0.44],
      [0.7, 0.58],
      [0.68, 0.8],
      [0.5, 0.9],
      [0.24, 0.82],
    ],
  ],
  [
    [
      [0.62, 0.9],
      [0.62, 0.1],
      [0.2, 0.64],
      [0.8, 0.64],
    ],
  ],
  [
    [
      [0.72, 0.12],
      [0.32, 0.12],
      [0.28, 0.46],
      [0.56, 0.42],
      [0.72, 0.58],
      [0.68, 0.82],
      [0.46, 0.9],
      [0.24, 0.82],
    ],
  ],
  [
    [
      [0.68, 0.12],
      [0.42, 0.28],
      [0.28, 0.58],
      [0.34, 0.84],
      [0.54, 0.9],
      [0.7, 0.76],
      [0.64, 0.56],
      [0.42, 0.54],
      [0.29, 0.64],
    ],
  ],
  [
    [
      [0.22, 0.12],
      [0.78, 0.12],
      [0.42, 0.9],
    ],
  ],
  [ring(0.5, 0.3, 0.17, 0.18, 12), ring(0.5, 0.68, 0.21, 0.21, 12)],
  [
    ring(0.5, 0.33, 0.2, 0.2, 12),
    [
      [0.7, 0.36],
      [0.62, 0.9],
    ],
  ],
];

// mulberry32: small, fast, good enough for data augmentation.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SPLIT_SEED = { train: 0x5eed1, test: 0x7e571 };

/** Renders sample `index` of `split` into out[0..256) and returns its label. */
export function renderDigit(split, index, out) {
  const r = rng(Math.imul(SPLIT_SEED[split] ?? 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b));
  const label = Math.floor(r() * CLASSES);
  const u = (a, b) => a + (b - a) * r();
  const angle = u(-0.35, 0.35),
    scale = u(0.72, 1.1),
    shear = u(-0.35, 0.35);
  const dx = u(-2, 2),
    dy = u(-2, 2),
    width = u(0.6, 1.8);
  const c = Math.cos(angle) * scale,
    s = Math.sin(angle) * scale;
  const map = ([x, y]) => {
    const px = x - 0.5 + u(-0.06, 0.06) + shear * (y - 0.5),
      py = y - 0.5 + u(-0.06, 0.06);
    return [(c * px - s * py) * (SIDE - 2) + SIDE / 2 + dx, (s * px + c * py) * (SIDE - 2) + SIDE / 2 + dy];
  };
  const segs = [];
  for (const stroke of GLYPHS[label]) {
    const pts = stroke.map(map);
    for (let k = 1; k < pts.length; k++) segs.push([pts[k - 1][0], pts[k - 1][1], pts[k][0], pts[k][1]]);
  }
  const noise = u(0, 0.5);
  for (let py = 0; py < SIDE; py++) {
    for (let px = 0; px < SIDE; px++) {
      const x = px + 0.5,
        y = py + 0.5;
      let d2 = Infinity;
      for (const [x0, y0, x1, y1] of segs) {
        const vx = x1 - x0,
          vy = y1 - y0;
        const t = Math.max(0, Math.min(1, ((x - x0) * vx + (y - y0) * vy) / (vx * vx + vy * vy || 1)));
        const ex = x0 + t * vx - x,
          ey = y0 + t * vy - y;
        d2 = Math.min(d2, ex * ex + ey * ey);
      }
      let v = Math.max(0, Math.min(1, 1 - (Math.sqrt(d2) - width / 2) / 0.8));
      v += noise * (r() - 0.5);
      if (r() < 0.06) v = r();
      out[py * SIDE + px] = Math.max(0, Math.min(1, v));
    }
  }
  return label;
}

/**
 * Samples [start, start + count*step) of a split with stride `step` (a rank's shard: start = rank,
 * step = size): { x: Float32Array(count*256), labels: Int32Array(count) }.
 */
export function makeDigits(split, count, { start = 0, step = 1 } = {}) {
  const x = new Float32Array(count * FEATURES);
  const labels = new Int32Array(count);
  for (let k = 0; k < count; k++)
    labels[k] = renderDigit(split, start + k * step, x.subarray(k * FEATURES, (k + 1) * FEATURES));
  return { x, labels };
}

/** An ASCII picture of one sample (for the curious: `node examples/digits.mjs`). */
export function ascii(img) {
  const ramp = ' .:-=+*#%@';
  let s = '';
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) s += ramp[Math.min(9, Math.floor(img[y * SIDE + x] * 10))].repeat(2);
    s += '\n';
  }
  return s;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { x, labels } = makeDigits('train', 4);
  for (let k = 0; k < 4; k++)
    console.log(`label ${labels[k]}\n${ascii(x.subarray(k * FEATURES, (k + 1) * FEATURES))}`);
}
