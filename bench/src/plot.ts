/**
 * busbw against message size (log axis), one line per series, drawn with Vega-Lite. SVG needs
 * nothing else; PNG is rasterized by resvg (WebAssembly, no native build) and needs a TrueType
 * font for its text, found on the system or named by RINGBENCH_FONT.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { formatSize } from './table.js';

export interface Series {
  name: string;
  points: { bytes: number; busbw: number }[];
}

/** The plot could not be rendered (a bad spec or the renderer failed). */
export class PlotError extends Error {
  override name = 'PlotError';
}

/** A Vega-Lite spec of busbw against size, one line per implementation. */
export function plotSpec(series: Series[], title: string): TopLevelSpec {
  const values = series.flatMap((s) =>
    s.points
      .filter((p) => Number.isFinite(p.busbw))
      .map((p) => ({ series: s.name, bytes: p.bytes, size: formatSize(p.bytes), busbw: p.busbw })),
  );
  if (!values.length) throw new PlotError('nothing to plot: no rows with a bus bandwidth');
  // Ticks at the measured sizes (at most ~9 of them), labelled 4K, 64M...
  const sizes = [...new Set(values.map((v) => v.bytes))].sort((a, b) => a - b);
  const every = Math.ceil(sizes.length / 9);
  const ticks = sizes.filter((_, i) => i % every === 0);
  const labels = Object.fromEntries(ticks.map((b) => [b, formatSize(b)]));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 520,
    height: 300,
    background: 'white',
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'bytes',
        type: 'quantitative',
        title: 'message size (bytes, log scale)',
        scale: { type: 'log', base: 2 },
        axis: { values: ticks, labelExpr: `${JSON.stringify(labels)}[datum.value] || ''`, grid: true },
      },
      y: { field: 'busbw', type: 'quantitative', title: 'bus bandwidth (GB/s)' },
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        scale: { domain: series.map((s) => s.name) },
        legend: { orient: 'bottom', columns: 2 },
      },
      tooltip: [{ field: 'series' }, { field: 'size' }, { field: 'busbw', format: '.3f' }],
    },
  } as TopLevelSpec;
}

/** Renders the series as an SVG document. */
export async function renderSvg(series: Series[], title: string): Promise<string> {
  const view = new vega.View(vega.parse(compile(plotSpec(series, title)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const FONT_CANDIDATES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf',
  '/System/Library/Fonts/Supplemental/Arial.ttf',
  '/Library/Fonts/Arial.ttf',
  'C:\\Windows\\Fonts\\arial.ttf',
];

function findFont(): string | undefined {
  if (process.env.RINGBENCH_FONT) return process.env.RINGBENCH_FONT;
  const known = FONT_CANDIDATES.find((f) => existsSync(f));
  if (known) return known;
  // Any TrueType font under /usr/share/fonts will do.
  const walk = (dir: string, depth: number): string | undefined => {
    if (depth > 4 || !existsSync(dir)) return undefined;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isFile() && /\.(ttf|otf)$/i.test(e.name)) return p;
      if (e.isDirectory()) {
        const hit = walk(p, depth + 1);
        if (hit) return hit;
      }
    }
    return undefined;
  };
  return walk('/usr/share/fonts', 0);
}

/** Rasterises an SVG (resvg, in WebAssembly) to PNG bytes. */
export async function renderPng(svg: string): Promise<Uint8Array> {
  const font = findFont();
  if (!font) {
    throw new PlotError(
      'a .png plot needs a TrueType font to draw its text and none was found (looked in /usr/share/fonts and the usual places): ' +
        'install one (apt-get install -y fonts-dejavu-core), set RINGBENCH_FONT=/path/to/font.ttf, or write .svg',
    );
  }
  const { initWasm, Resvg } = await import('@resvg/resvg-wasm');
  const wasm = readFileSync(createRequire(import.meta.url).resolve('@resvg/resvg-wasm/index_bg.wasm'));
  await initWasm(wasm).catch((e: Error) => {
    if (!/already initialized/i.test(e.message)) throw e;
  });
  const data = readFileSync(font);
  const family = fontFamily(data) ?? 'sans-serif';
  const opts = {
    background: 'white',
    fitTo: { mode: 'zoom' as const, value: 2 },
    font: { fontBuffers: [data], loadSystemFonts: false, defaultFontFamily: family, sansSerifFamily: family },
  };
  return new Resvg(svg, opts).render().asPng();
}

/** The family name (name ID 1) from a TrueType/OpenType file's 'name' table: resvg matches fonts by it. */
export function fontFamily(b: Buffer): string | undefined {
  if (b.length < 12) return undefined;
  const tables = b.readUInt16BE(4);
  for (let t = 0; t < tables; t++) {
    const rec = 12 + 16 * t;
    if (rec + 16 > b.length || b.toString('latin1', rec, rec + 4) !== 'name') continue;
    const base = b.readUInt32BE(rec + 8);
    const count = b.readUInt16BE(base + 2);
    const strings = base + b.readUInt16BE(base + 4);
    for (let i = 0; i < count; i++) {
      const r = base + 6 + 12 * i;
      const [platform, , , nameId, length, offset] = [0, 2, 4, 6, 8, 10].map((o) => b.readUInt16BE(r + o));
      if (nameId !== 1) continue;
      const raw = b.subarray(strings + offset, strings + offset + length);
      if (platform === 3 || platform === 0) return Buffer.from(raw).swap16().toString('utf16le');
      if (platform === 1) return raw.toString('latin1');
    }
  }
  return undefined;
}

/** Writes a plot; the file's extension (.svg or .png) picks the format. */
export async function writePlot(file: string, series: Series[], title: string): Promise<void> {
  const ext = extname(file).toLowerCase();
  if (ext !== '.svg' && ext !== '.png') throw new PlotError(`--plot ${file}: name the file .svg or .png`);
  const svg = await renderSvg(series, title);
  writeFileSync(file, ext === '.svg' ? svg : await renderPng(svg));
}
