import { ENV, LOG_LEVELS, type LogLevel } from './env.js';

/** A leveled logger shared by every ringwire package; RINGWIRE_LOG_LEVEL picks the level. */
export type Logger = (level: LogLevel, message: string) => void;
export type { LogLevel };
/** @deprecated use LOG_LEVELS */
export const LEVELS = LOG_LEVELS;

/**
 * A logger writing `prefix level: message` lines to stderr. An unknown level means 'warn': a
 * typo in RINGWIRE_LOG_LEVEL must not stop a job (init() rejects it where it can say so).
 */
export function createLogger(
  prefix: string,
  level: string = process.env[ENV.logLevel.name] ?? 'warn',
): Logger {
  const max = LOG_LEVELS.indexOf(level as LogLevel);
  const limit = max < 0 ? 1 : max;
  return (lvl, message) => {
    if (LOG_LEVELS.indexOf(lvl) <= limit) process.stderr.write(`${prefix} ${lvl}: ${message}\n`);
  };
}

/** Whether `host` names this machine's loopback interface. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
