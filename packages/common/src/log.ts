import { DEFAULTS } from './defaults.js';
import { ENV, LOG_LEVELS, type LogLevel } from './env.js';

/** A leveled logger shared by every ringwire package; RINGWIRE_LOG_LEVEL picks the level. */
export type Logger = (level: LogLevel, message: string) => void;
export type { LogLevel };
/** @deprecated use LOG_LEVELS */
export const LEVELS = LOG_LEVELS;

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Local wall-clock time as HH:MM:SS.mmm, the timestamp of every log line. */
export function logTime(d: Date = new Date()): string {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/**
 * A logger writing `prefix HH:MM:SS.mmm level: message` lines to stderr (the one format of every
 * package, e.g. `[ringwire 2] 12:00:01.234 info: ...`). An unknown level means 'warn': a typo in
 * RINGWIRE_LOG_LEVEL must not stop a job (init() rejects it where it can say so).
 */
export function createLogger(
  prefix: string,
  level: string = process.env[ENV.logLevel.name] ?? 'warn',
): Logger {
  const max = LOG_LEVELS.indexOf(level as LogLevel);
  const limit = max < 0 ? 1 : max;
  return (lvl, message) => {
    if (LOG_LEVELS.indexOf(lvl) <= limit) process.stderr.write(`${prefix} ${logTime()} ${lvl}: ${message}\n`);
  };
}

/** Whether a logger made by createLogger would print `level` under `configured` (skip costly messages). */
export function logs(
  level: LogLevel,
  configured: string | undefined = process.env[ENV.logLevel.name],
): boolean {
  const max = LOG_LEVELS.indexOf((configured ?? 'warn') as LogLevel);
  return LOG_LEVELS.indexOf(level) <= (max < 0 ? 1 : max);
}

/** Whether `host` names this machine's loopback interface. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * An untrusted string (a job id, a remote's message) made safe for one log line: control
 * characters (\r, \n, ESC, C1), line separators, format and other non-printable characters become
 * visible escapes, so a stranger cannot start a line, forge one or drive the terminal; at most
 * `max` characters of it are kept.
 */
export function escapeLog(value: unknown, max = 200): string {
  let s: string;
  try {
    s = typeof value === 'string' ? value : String(value);
  } catch {
    s = Object.prototype.toString.call(value);
  }
  const cut = s.length > max ? `...(${s.length - max} more)` : '';
  return s.slice(0, max).replace(/[\p{C}\p{Zl}\p{Zp}]/gu, escapeChar) + cut;
}

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeChar(c: string): string {
  const code = c.codePointAt(0)!;
  if (NAMED[c]) return NAMED[c];
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** A logger whose every message is passed through escapeLog (for code that logs remote strings). */
export function escapingLogger(log: Logger, max = 4096): Logger {
  return (level, message) => log(level, escapeLog(message, max));
}

/**
 * A logger for lines strangers can cause (refused connections): the first `limit` per interval
 * are logged, the rest counted and summed up in one line ("N more <what> in the last T s") when
 * the interval ends, so a flood of junk connections cannot flood the job's stderr.
 */
export function rateLimitedLogger(
  log: Logger,
  what: string,
  limit: number = DEFAULTS.refusalLogLimit,
  intervalMs: number = DEFAULTS.refusalLogIntervalMs,
): Logger {
  let logged = 0;
  let dropped = 0;
  let droppedLevel: LogLevel = 'warn';
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (dropped) log(droppedLevel, `${dropped} more ${what} in the last ${intervalMs / 1000} s`);
    logged = dropped = 0;
  };
  return (level, message) => {
    if (!timer) (timer = setTimeout(flush, intervalMs)), timer.unref();
    if (logged < limit) return void (logged++, log(level, message));
    dropped++;
    droppedLevel = level;
  };
}
