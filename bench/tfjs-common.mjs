// Shared by bench/tfjs-overhead.mjs and bench/tfjs-step.mjs.
import { fileURLToPath } from 'node:url';

/**
 * Started by hand (no RINGWIRE_RANK): relaunch this script as `np` workers through @ringwire/run's
 * launch() and exit with the job's code. Under ringrun: return and let the worker run.
 */
export async function selfLaunch(script, np) {
  if (process.env.RINGWIRE_RANK !== undefined) return;
  const { launch } = await import('@ringwire/run');
  const file = fileURLToPath(script);
  console.log(
    `# ringrun -np ${np} node ${file.slice(process.cwd().length + 1)} ${process.argv.slice(2).join(' ')}`.trimEnd(),
  );
  const { code } = await launch({ command: process.execPath, args: [file, ...process.argv.slice(2)], np });
  process.exit(code);
}

/** An MLP input -> hidden (relu) -> classes; 3200/3200/10 has 10,275,210 parameters. */
export function mlp(tf, { input, hidden, classes }) {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [input], units: hidden, activation: 'relu' }),
      tf.layers.dense({ units: classes, activation: 'softmax' }),
    ],
  });
}

export function mlpParams({ input, hidden, classes }) {
  return input * hidden + hidden + hidden * classes + classes;
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]
      : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export const fmt = (v, w = 9, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '-').padStart(w);
