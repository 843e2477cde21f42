import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { JobStatus } from '../server.js';
import { Dashboard } from './dashboard.js';
import { MetricsStore } from './metrics.js';

/** What the observability routes need of the server. */
export interface HttpContext {
  /** The jobs a credential opens, as /status shows them (undefined: it opens none). */
  visible(credential: string): JobStatus[] | undefined;
  /** The ids of every job the server holds now. */
  held(): Iterable<string>;
  /** A request proved a credential: its connection is no longer a stranger's (see PreAuthGuard). */
  authenticated(socket: Socket): void;
}

/**
 * The rendezvous's observability over HTTP, beside /status: GET /metrics (Prometheus text, for
 * a bearer credential), and the live job page: GET / (`?token=`), its event stream and assets.
 * A credential shows its own job; the server's secret shows every job; nothing else shows any.
 */
export class Observability {
  readonly metrics = new MetricsStore();
  private readonly dashboard: Dashboard;

  constructor(private readonly ctx: HttpContext) {
    this.dashboard = new Dashboard(ctx, this.metrics);
  }

  /** Serves the request when it is one of these routes; false leaves it to the caller. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method !== 'GET') return false;
    if (url.pathname === '/metrics') {
      void this.serveMetrics(req, res);
      return true;
    }
    return this.dashboard.handle(req, res, url);
  }

  /** Closes the live event streams (the server is closing). */
  close(): void {
    this.dashboard.close();
  }

  private async serveMetrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const credential = bearer(req.headers.authorization);
    const visible = credential === undefined ? undefined : this.ctx.visible(credential);
    if (!visible) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' });
      res.end('a bearer credential of a job on this server is required\n');
      return;
    }
    this.ctx.authenticated(req.socket);
    const text = await this.metrics.render(visible, this.ctx.held());
    res.writeHead(200, { 'content-type': this.metrics.contentType, 'cache-control': 'no-store' });
    res.end(text);
  }
}

/** The credential of an `Authorization: Bearer <credential>` header. */
export function bearer(auth: string | undefined): string | undefined {
  return auth === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(auth)?.[1];
}
