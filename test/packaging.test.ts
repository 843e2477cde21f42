/**
 * Packaging: packs every publishable workspace (prepack builds dist and the native prebuild),
 * installs the tarballs into a fresh project outside the monorepo with the repo's lockfile
 * versions, and uses them as a new user would: `npx ringrun`, `npx ringbench`, CommonJS
 * require, the native prebuild, and a TypeScript type-check of the public API.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const API_TS = fileURLToPath(new URL('./fixtures/packaging/api.ts', import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: package.json and lockfiles are free-form
type Json = Record<string, any>;
const readJson = (path: string): Json => JSON.parse(readFileSync(path, 'utf8'));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

const groups = new Set<number>();

/**
 * Runs a command in its own process group and kills the whole group (npx -> ringrun -> workers)
 * when it outlives `timeoutMs`; the result says how it ended.
 */
function run(cmd: string, args: string[], cwd: string, timeoutMs: number, env: NodeJS.ProcessEnv = {}) {
  return new Promise<Ran>((done) => {
    const child = spawn(cmd, args, { cwd, env: { ...cleanEnv(), ...env }, detached: true });
    groups.add(child.pid!);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`;
      killGroup(child.pid!);
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      groups.delete(child.pid!);
      done({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** The test's environment without the settings of a job or of the monorepo's own npm run. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(RINGWIRE_|npm_config_workspace)/i.test(k)),
  );
}

function expectOk(r: Ran, what: string): void {
  if (r.code !== 0) throw new Error(`${what} exited with ${r.code}\n${r.stdout}\n${r.stderr}`);
}

/** The publishable workspaces: name and directory. */
function publishable(): { name: string; dir: string }[] {
  return (readJson(join(ROOT, 'package.json')).workspaces as string[])
    .map((dir) => ({ dir, pkg: readJson(join(ROOT, dir, 'package.json')) }))
    .filter(({ pkg }) => !pkg.private)
    .map(({ dir, pkg }) => ({ name: pkg.name as string, dir }));
}

/**
 * The repo's lockfile, re-rooted at the fresh project: every registry package keeps the version
 * and integrity the monorepo tested; npm adds the tarballs and prunes what nothing needs.
 */
function lockfileFor(root: Json, skip: Set<string>): Json {
  const lock = readJson(join(ROOT, 'package-lock.json'));
  const packages: Json = { '': root };
  for (const [key, entry] of Object.entries(lock.packages as Json)) {
    if (!key.startsWith('node_modules/') || entry.link || skip.has(key.slice('node_modules/'.length)))
      continue;
    packages[key] = entry;
  }
  return { ...lock, name: root.name, packages };
}

const TSCONFIG = (module: string, moduleResolution: string) => ({
  compilerOptions: {
    strict: true,
    noEmit: true,
    target: 'ES2022',
    lib: ['ES2022'],
    types: ['node'],
    module,
    moduleResolution,
    // tfjs's own declarations do not type-check on their own (DOM types, strictness).
    skipLibCheck: true,
    ...(moduleResolution === 'node10' && { ignoreDeprecations: '5.0' }),
  },
  files: ['api.ts'],
});

// A 2-rank all-reduce through the installed packages; each rank prints one JSON line.
const ALLREDUCE = `import { init, kernelsInfo } from 'ringwire';
const comm = await init();
const x = comm.allocate('float32', 4096).fill(comm.rank + 1);
await comm.allreduce(x);
console.log(JSON.stringify({ rank: comm.rank, size: comm.size, first: x[0], last: x[4095], kernels: kernelsInfo() }));
await comm.close();
`;

const TWO_INITS = `import { init } from 'ringwire';
for (let i = 0; i < 2; i++) await (await init()).close();
`;

describe('packaging: the packed tarballs in a fresh project', () => {
  let tmp = '';
  let app = '';
  let packed: { name: string; file: string; pkg: Json; files: string[] }[] = [];
  const mod = (name: string) => join(app, 'node_modules', name);

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'ringwire-packaging-'));
    const tarballs = join(tmp, 'tarballs');
    app = join(tmp, 'app');
    const ws = publishable();
    mkdirSync(tarballs);
    const pack = await run(
      'npm',
      ['pack', ...ws.flatMap((w) => ['-w', w.dir]), '--pack-destination', tarballs, '--silent'],
      ROOT,
      150_000,
    );
    expectOk(pack, 'npm pack');
    packed = readdirSync(tarballs).map((file) => {
      const path = join(tarballs, file);
      const pkg = JSON.parse(
        execFileSync('tar', ['xzOf', path, 'package/package.json'], { encoding: 'utf8' }),
      );
      const files = execFileSync('tar', ['tzf', path], { encoding: 'utf8' }).trim().split('\n');
      return { name: pkg.name, file: path, pkg, files: files.map((f) => f.replace(/^package\//, '')) };
    });
    expect(packed.map((p) => p.name).sort()).toEqual(ws.map((w) => w.name).sort());

    const lock = readJson(join(ROOT, 'package-lock.json'));
    const devDeps = readJson(join(ROOT, 'package.json')).devDependencies;
    const root = {
      name: 'ringwire-packaging-check',
      dependencies: {
        ...Object.fromEntries(packed.map((p) => [p.name, `file:${p.file}`])),
        '@tensorflow/tfjs': lock.packages['node_modules/@tensorflow/tfjs'].version,
      },
      devDependencies: { typescript: devDeps.typescript, '@types/node': devDeps['@types/node'] },
    };
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ ...root, private: true, type: 'module' }));
    const lockfile = lockfileFor(root, new Set(packed.map((p) => p.name)));
    writeFileSync(join(app, 'package-lock.json'), JSON.stringify(lockfile));
    const install = await run(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund'],
      app,
      150_000,
    );
    expectOk(install, 'npm install');
    // Not one of ours among the packages whose install scripts npm 11 holds back.
    expect(install.stderr).not.toMatch(/install-scripts\s+(@ringwire\/|ringwire@)/);
    writeFileSync(join(app, 'x.mjs'), ALLREDUCE);
    writeFileSync(join(app, 'inits.mjs'), TWO_INITS);
  }, 330_000);

  afterAll(() => {
    for (const pid of groups) killGroup(pid);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('every tarball has its LICENSE, README, metadata, types for every resolution, and no install script', () => {
    for (const { name, pkg, files } of packed) {
      expect(files, name).toContain('LICENSE');
      expect(files, name).toContain('README.md');
      expect(readFileSync(join(mod(name), 'README.md'), 'utf8'), name).toMatch(/npm install/);
      expect(readFileSync(join(mod(name), 'LICENSE'), 'utf8'), name).toMatch(/Apache License\s+Version 2\.0/);
      expect(pkg.repository?.directory, name).toBeTruthy();
      expect(pkg.homepage && pkg.bugs?.url && pkg.keywords?.length, name).toBeTruthy();
      expect(pkg.exports['./package.json'], name).toBe('./package.json');
      expect(pkg.engines.node, name).toBe('^20.19.0 || >=22.12.0');
      expect(pkg.types && files.includes(pkg.types.replace(/^\.\//, '')), name).toBe(true);
      expect(pkg.private, name).toBeUndefined();
      for (const s of ['preinstall', 'install', 'postinstall'])
        expect(pkg.scripts?.[s], `${name} ${s}`).toBe(undefined);
      // npm runs node-gyp at install time for a root binding.gyp even without an install script.
      expect(files, name).not.toContain('binding.gyp');
    }
    const core = packed.find((p) => p.name === 'ringwire')!;
    expect(core.pkg.dependencies.msgpackr).toBeUndefined();
    const bench = packed.find((p) => p.name === '@ringwire/bench')!;
    expect(bench.files).toEqual(
      expect.arrayContaining(['dist/cli.js', 'bin/ringbench.js', 'peers/gloo_bench.py']),
    );
  });

  it('installs the registry packages at the versions of the repo lockfile', () => {
    const repo = readJson(join(ROOT, 'package-lock.json')).packages as Json;
    const got = readJson(join(app, 'package-lock.json')).packages as Json;
    const differ = Object.keys(got).filter(
      (k) => k.startsWith('node_modules/') && repo[k] && !repo[k].link && repo[k].version !== got[k].version,
    );
    expect(differ).toEqual([]);
    expect(Object.keys(got).length).toBeGreaterThan(packed.length);
  });

  it('every source map points at a source that ships', () => {
    let maps = 0;
    for (const { name, files } of packed)
      for (const f of files.filter((x) => x.endsWith('.map'))) {
        const path = join(mod(name), f);
        for (const s of readJson(path).sources as string[])
          expect(existsSync(resolve(dirname(path), s)), `${name}/${f} -> ${s}`).toBe(true);
        maps++;
      }
    expect(maps).toBeGreaterThan(0);
  });

  it('npx ringrun -np 2 runs an all-reduce on the prebuilt native kernels', async () => {
    const native = packed.find((p) => p.name === '@ringwire/native')!;
    if (process.platform === 'linux' && process.arch === 'x64')
      expect(native.files.some((f) => /^addon\/prebuilds\/linux-x64\/.*\.node$/.test(f))).toBe(true);
    const r = await run('npx', ['ringrun', '-np', '2', '--timeout', '60', 'node', 'x.mjs'], app, 90_000);
    expectOk(r, 'ringrun');
    const ranks = r.stdout
      .split('\n')
      .filter((l) => /^\[\d\] \{/.test(l))
      .map((l) => JSON.parse(l.slice(4)));
    expect(ranks.map((x) => x.rank).sort()).toEqual([0, 1]);
    for (const x of ranks) {
      expect(x).toMatchObject({ size: 2, first: 3, last: 3 });
      expect(x.kernels.native, x.kernels.reason).toBe(true);
    }
    // Loaded from the tarball's prebuild: nothing was compiled at install time.
    expect(existsSync(join(mod('@ringwire/native'), 'addon', 'build'))).toBe(false);
  });

  it('npx ringbench runs a tiny all-reduce sweep with no wrong elements', async () => {
    const r = await run(
      'npx',
      ['ringbench', 'allreduce', '-np', '2', '-b', '1K', '-e', '4K', '-n', '5', '-w', '1', '--timeout', '60'],
      app,
      90_000,
    );
    expectOk(r, 'ringbench');
    const rows = r.stdout.split('\n').filter((l) => /^\s+\d+\s+\d+\s+float32\s+sum/.test(l));
    expect(rows.map((l) => Number(l.trim().split(/\s+/)[0]))).toEqual([1024, 2048, 4096]);
    for (const l of rows) expect(Number(l.trim().split(/\s+/)[7]), l).toBe(0);
  });

  it('CommonJS require() loads ringwire and its package.json', async () => {
    const r = await run(
      process.execPath,
      [
        '-e',
        "const r = require('ringwire'); const v = require('ringwire/package.json').version;" +
          "console.log(typeof r.init, typeof r.RingwireError, v, require('@ringwire/tfjs/package.json').name)",
      ],
      app,
      30_000,
    );
    expectOk(r, 'require');
    const core = packed.find((p) => p.name === 'ringwire')!;
    expect(r.stdout.trim()).toBe(`function function ${core.pkg.version} @ringwire/tfjs`);
  });

  it('TypeScript accepts the public API with a real tf.sequential() model (node16, bundler, node10)', async () => {
    writeFileSync(join(app, 'api.ts'), readFileSync(API_TS));
    const tsc = join(mod('typescript'), 'bin', 'tsc');
    const resolutions = [
      ['node16', 'node16'],
      ['esnext', 'bundler'],
      ['commonjs', 'node10'],
    ];
    const results = await Promise.all(
      resolutions.map(([module, resolution]) => {
        writeFileSync(join(app, `tsconfig.${resolution}.json`), JSON.stringify(TSCONFIG(module, resolution)));
        return run(process.execPath, [tsc, '-p', `tsconfig.${resolution}.json`], app, 90_000);
      }),
    );
    results.forEach((r, i) => {
      expect(r.stdout + r.stderr, resolutions[i][1]).toBe('');
      expect(r.code, resolutions[i][1]).toBe(0);
    });
  });

  it('loadTfjs says what to npm install when a backend is missing', async () => {
    const r = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { loadTfjs } from '@ringwire/tfjs';" +
          "try { await loadTfjs({ backend: 'node' }); } catch (e) { console.log(e.constructor.name, e.code, e.message); }",
      ],
      app,
      30_000,
    );
    expectOk(r, 'loadTfjs');
    expect(r.stdout).toMatch(
      /^InvalidArgumentError RINGWIRE_ERR_INVALID_ARG .*npm install @tensorflow\/tfjs-node/,
    );
  });

  // Last: it takes the prebuild away.
  it('without a loadable addon, init() warns once, ringrun --check says why, RINGWIRE_NO_NATIVE=1 is quiet', async () => {
    const prebuilds = join(mod('@ringwire/native'), 'addon', 'prebuilds');
    renameSync(prebuilds, `${prebuilds}.off`);
    const warned = await run(process.execPath, ['inits.mjs'], app, 30_000);
    expectOk(warned, 'inits.mjs');
    expect(warned.stderr.match(/RINGWIRE_JS_KERNELS/g)).toHaveLength(1);
    expect(warned.stderr).toMatch(
      /No native build was found.*npm explore @ringwire\/native -- npm run build/s,
    );
    const quiet = await run(process.execPath, ['inits.mjs'], app, 30_000, { RINGWIRE_NO_NATIVE: '1' });
    expectOk(quiet, 'inits.mjs');
    expect(quiet.stderr).not.toMatch(/RINGWIRE_JS_KERNELS/);
    const check = await run('npx', ['ringrun', '--check'], app, 30_000);
    expectOk(check, 'ringrun --check');
    expect(check.stdout).toMatch(
      /native kernels: no, using JS kernels: @ringwire\/native did not load: No native build.*npm explore/,
    );
  });
});
