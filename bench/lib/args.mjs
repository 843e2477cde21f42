// The one command-line parser of the bench scripts. Each option is a `--name value` flag
// (node:util parseArgs: an unknown flag is an error), may also be given by the environment
// variable that set it before the scripts had flags (so recorded commands such as
// `SIZES=4096 node bench/core/sweep.mjs 2` keep working), and has a default. A flag wins over
// its variable. Options marked `positional` may also be given bare, in their order
// (`sweep.mjs 2` is `sweep.mjs --np 2`). `--help` prints the usage.

import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '@ringwire/rendezvous';

const number = (text, name) => {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n))
    throw new InvalidArgumentError(`--${name}: expected a number, got ${JSON.stringify(text)}`);
  return n;
};

/** How a flag's or variable's text becomes a value, by option type. */
const CONVERT = {
  string: (text) => text,
  number,
  /** A comma-separated list of numbers (`--sizes 4096,65536`). */
  numbers: (text, name) => text.split(',').map((t) => number(t, name)),
  /** Flags take no value; a variable is false when empty, 0, false or no (VERBOSE=1, OUT=1). */
  boolean: (text) => !['', '0', 'false', 'no'].includes(String(text).toLowerCase()),
};

/**
 * @typedef {object} BenchOption
 * @property {'string'|'number'|'numbers'|'boolean'} [type] default 'string'
 * @property {string} [env] environment variable that gives the value when the flag is absent
 * @property {unknown} [default] value when neither is given
 * @property {boolean} [positional] may be given bare, in the order of the options
 * @property {string} help one line for --help
 */

/**
 * Parses `argv` against `options` (name -> BenchOption); returns the values by option name,
 * converted to their type, plus `help: true` when --help was asked for. Throws
 * InvalidArgumentError (code RINGWIRE_ERR_INVALID_ARG) for an unknown flag or a bad value.
 * @param {Record<string, BenchOption>} options
 */
export function parseBenchArgs(options, argv = process.argv.slice(2), env = process.env) {
  const flags = { help: { type: 'boolean' } };
  for (const [name, o] of Object.entries(options))
    flags[name] = { type: o.type === 'boolean' ? 'boolean' : 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: flags, allowPositionals: true, strict: true });
  } catch (e) {
    throw new InvalidArgumentError(e.message);
  }
  const bare = [...parsed.positionals];
  const out = { help: parsed.values.help === true };
  for (const [name, o] of Object.entries(options)) {
    const convert = CONVERT[o.type ?? 'string'];
    let text = parsed.values[name];
    if (text === undefined && o.positional && bare.length > 0) text = bare.shift();
    // An empty variable counts as unset, as `CHUNK= node ...` always did.
    if (text === undefined && o.env && env[o.env]) text = env[o.env];
    out[name] = text === undefined ? o.default : convert(text, name);
  }
  if (bare.length > 0) throw new InvalidArgumentError(`unexpected argument ${JSON.stringify(bare[0])}`);
  return out;
}

/** The --help text: the usage line, then one line per option with its variable and default. */
export function benchUsage(usage, options) {
  const lines = Object.entries(options).map(([name, o]) => {
    const flag = `${o.positional ? `[--${name}]` : `--${name}`}${o.type === 'boolean' ? '' : ` <${o.type ?? 'string'}>`}`;
    const extra = [o.env && `env ${o.env}`, o.default !== undefined && `default ${o.default}`].filter(
      Boolean,
    );
    return `  ${flag.padEnd(26)} ${o.help}${extra.length ? ` (${extra.join(', ')})` : ''}`;
  });
  return `${usage}\n\nOptions:\n${lines.join('\n')}\n  --help                     this text\n`;
}

/**
 * parseBenchArgs for a script's own command line: on --help prints the usage and exits 0, on a
 * bad command line prints the error and the usage and exits 2.
 * @param {string} usage the first line of --help, e.g. 'node bench/core/sweep.mjs [NP] [options]'
 * @param {Record<string, BenchOption>} options
 */
export function benchArgs(usage, options) {
  let values;
  try {
    values = parseBenchArgs(options);
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    process.stderr.write(`error: ${e.message}\n\n${benchUsage(usage, options)}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(benchUsage(usage, options));
    process.exit(0);
  }
  return values;
}
