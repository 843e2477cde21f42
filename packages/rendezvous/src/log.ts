/** A tiny leveled logger shared by every ringwire package; RINGWIRE_LOG_LEVEL picks the level. */
export const LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LEVELS)[number];
export type Logger = (level: LogLevel, message: string) => void;

export function createLogger(
  prefix: string,
  level: string = process.env.RINGWIRE_LOG_LEVEL ?? 'warn',
): Logger {
  const max = LEVELS.indexOf(level as LogLevel);
  const limit = max < 0 ? 1 : max;
  return (lvl, message) => {
    if (LEVELS.indexOf(lvl) <= limit) process.stderr.write(`${prefix} ${lvl}: ${message}\n`);
  };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
