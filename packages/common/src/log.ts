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

/**
 * A string from the network or a user, safe to put in a log line: control characters (newlines
 * that would forge lines, terminal escapes) are written as escapes, and it is cut at `max`.
 */
export function escapeForLog(value: unknown, max = 200): string {
  const s = String(value);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  const escaped = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code === 10
      ? '\\n'
      : code === 13
        ? '\\r'
        : code === 9
          ? '\\t'
          : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  return escaped.length > max ? `${escaped.slice(0, max)}...` : escaped;
}

/** Whether `host` names this machine's loopback interface. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
