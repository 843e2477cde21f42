/** One line per series: busbw (GB/s) against message size, log2 x axis, as a small SVG. */
export interface Series {
  name: string;
  points: { bytes: number; busbw: number }[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

export function svgPlot(series: Series[], title: string): string {
  const W = 640, H = 400, L = 60, R = 160, T = 40, B = 50;
  const all = series.flatMap((s) => s.points);
  if (!all.length) throw new Error('nothing to plot');
  const xs = all.map((p) => Math.log2(p.bytes));
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const y1 = Math.max(...all.map((p) => p.busbw), 1e-3) * 1.1;
  const px = (b: number) => L + ((Math.log2(b) - x0) / (x1 - x0)) * (W - L - R);
  const py = (v: number) => H - B - (v / y1) * (H - T - B);
  const fmt = (b: number) => (b >= 2 ** 30 ? `${b / 2 ** 30}G` : b >= 2 ** 20 ? `${b / 2 ** 20}M` : b >= 1024 ? `${b / 1024}K` : `${b}`);
  const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${L}" y="22" font-size="14">${esc(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`, `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">message size (bytes, log scale)</text>`,
    `<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">bus bandwidth (GB/s)</text>`];
  for (let e = Math.ceil(x0); e <= x1; e += Math.max(1, Math.ceil((x1 - x0) / 8))) {
    parts.push(`<text x="${px(2 ** e)}" y="${H - B + 16}" text-anchor="middle">${fmt(2 ** e)}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const v = (y1 / 4) * i;
    parts.push(`<line x1="${L}" y1="${py(v)}" x2="${W - R}" y2="${py(v)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${py(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = [...s.points].sort((a, b) => a.bytes - b.bytes).map((p) => `${px(p.bytes).toFixed(1)},${py(p.busbw).toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.join(' ')}"/>`);
    for (const p of pts) parts.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="2.5" fill="${c}"/>`);
    parts.push(`<rect x="${W - R + 12}" y="${T + i * 18}" width="12" height="3" fill="${c}"/>`, `<text x="${W - R + 30}" y="${T + i * 18 + 5}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
