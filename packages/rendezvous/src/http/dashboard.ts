import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULTS } from '@ringwire/common';
import type { MetricsStore } from './metrics.js';
import type { HttpContext } from './routes.js';

/** The page's files, shipped in the package's static/ folder and served by the rendezvous itself. */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'dashboard.html', type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
};
const STATIC = new URL('../../static/', import.meta.url);
// Nothing from elsewhere: no CDN, no inline script; the event stream is same-origin.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:";

const DENIED = `<!doctype html><meta charset="utf-8"><title>ringwire: token required</title>
<p>This page shows a job to holders of its token: open the URL that <code>ringrun --dashboard</code>
printed (<code>/?token=...</code>).</p>\n`;

/**
 * The live job page: GET / (with `?token=`) is the page, GET /events?token= its server-sent
 * events (a snapshot of every job the token opens, each DEFAULTS.dashboardRefreshMs), and the
 * page's script and style. Without a token that opens a job, / and /events answer 401.
 */
export class Dashboard {
  private readonly files = new Map<string, Buffer>();
  private readonly streams = new Set<ServerResponse>();

  constructor(
    private readonly ctx: HttpContext,
    private readonly metrics: MetricsStore,
  ) {}

  /** Serves the request when it is the page's; false leaves it to the caller. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    const path = url.pathname;
    if (path === '/events') {
      this.events(req, res, url.searchParams.get('token'));
      return true;
    }
    const asset = ASSETS[path];
    if (!asset) return false;
    if (path === '/' && !this.opened(req, url.searchParams.get('token'))) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' }).end(DENIED);
      return true;
    }
    let body = this.files.get(asset.file);
    if (!body) this.files.set(asset.file, (body = readFileSync(new URL(asset.file, STATIC))));
    res.writeHead(200, {
      'content-type': asset.type,
      'cache-control': 'no-cache',
      'content-security-policy': CSP,
    });
    res.end(body);
    return true;
  }

  /** Ends every event stream. */
  close(): void {
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  /** Whether the token opens some job now (then the request's connection is trusted). */
  private opened(req: IncomingMessage, token: string | null): boolean {
    if (!token || !this.ctx.visible(token)) return false;
    this.ctx.authenticated(req.socket);
    return true;
  }

  private events(req: IncomingMessage, res: ServerResponse, token: string | null): void {
    if (!token || !this.opened(req, token)) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('a job token is required\n');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const send = () => res.write(`data: ${JSON.stringify(this.snapshot(token))}\n\n`);
    send();
    const timer = setInterval(send, DEFAULTS.dashboardRefreshMs);
    this.streams.add(res);
    res.on('close', () => {
      clearInterval(timer);
      this.streams.delete(res);
    });
  }

  /** Every job the token opens now, each with its members' status and their ranks' metrics. */
  private snapshot(token: string): { at: number; jobs: unknown[] } {
    this.metrics.prune(new Set(this.ctx.held()));
    const jobs = this.ctx.visible(token) ?? [];
    return { at: Date.now(), jobs: jobs.map((job) => ({ ...job, ranks: this.metrics.ranks(job.id) })) };
  }
}
