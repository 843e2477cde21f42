import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CheckpointError } from '@ringwire/common';

// A checkpoint is one file, ckpt-<seq>.rwckpt: the magic, a 4-byte little-endian header length,
// the JSON header (with the data's length and CRC-32), then the data. `latest` names the newest
// complete one. Both are written to a temporary file, fsynced and renamed into place (then the
// directory is fsynced), the checkpoint first: a crash at any point leaves `latest` naming a
// complete checkpoint, the previous one until the new one is whole.

const MAGIC = Buffer.from('RWCKPT01');
const LATEST = 'latest';
const NAME = /^ckpt-(\d+)\.rwckpt$/;
/** Data is written in pieces of this size. */
const PIECE = 16 * 1024 * 1024;

/** The points of a checkpoint write a test hook can stop at (e.g. SIGKILL itself). */
export type CheckpointStage = 'partial' | 'written' | 'renamed' | 'latest';

/** A checkpoint's contents: a JSON header and the bytes. */
export interface CheckpointFile<H> {
  header: H;
  data: Uint8Array;
}

const fail = (dir: string, what: string, err?: unknown) =>
  new CheckpointError(
    `checkpoint directory ${dir}: ${what}${err instanceof Error ? `: ${err.message}` : ''}`,
    { cause: err },
  );

/**
 * Creates the checkpoint directory if needed and checks that it is a directory this process can
 * read and write, synchronously (so that every rank fails at once, before joining a job).
 */
export function prepareCheckpointDir(dir: string): void {
  if (typeof dir !== 'string' || dir === '') throw fail(String(dir), 'expected a directory path');
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    throw fail(dir, 'cannot be used', err);
  }
}

/** Writes checkpoint `seq` atomically and points `latest` at it; keeps it and the one before. */
export async function writeCheckpoint<H>(
  dir: string,
  seq: number,
  { header, data }: CheckpointFile<H>,
  hook?: (stage: CheckpointStage) => unknown,
): Promise<string> {
  const name = `ckpt-${String(seq).padStart(8, '0')}.rwckpt`;
  try {
    const json = Buffer.from(JSON.stringify({ header, bytes: data.byteLength, crc32: crc32(data) }));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    await atomicWrite(dir, name, [MAGIC, len, json, data], hook);
    await hook?.('renamed');
    await atomicWrite(dir, LATEST, [Buffer.from(`${JSON.stringify({ file: name, seq })}\n`)]);
    await hook?.('latest');
    // Older checkpoints go once `latest` names the new one; the previous one stays.
    const old = (await readdir(dir)).filter((f) => NAME.test(f) && f < name).sort();
    for (const f of old.slice(0, -1)) await unlink(join(dir, f)).catch(() => {});
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw fail(dir, `writing ${name} failed`, err);
  }
  return name;
}

/** Writes `parts` to a temporary file, fsyncs it, renames it to `name` and fsyncs the directory. */
async function atomicWrite(
  dir: string,
  name: string,
  parts: Uint8Array[],
  hook?: (stage: CheckpointStage) => unknown,
): Promise<void> {
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  // With a hook, the first piece is half the file: 'partial' leaves a half-written temporary file.
  const piece = hook ? Math.max(1, Math.min(PIECE, Math.ceil(total / 2))) : PIECE;
  const fh = await open(tmp, 'w', 0o644);
  try {
    let written = 0;
    for (const part of parts)
      for (let at = 0; at < part.byteLength; at += piece) {
        const p = part.subarray(at, at + piece);
        await fh.write(p);
        if (written < piece && (written += p.byteLength) >= piece) await hook?.('partial');
      }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await hook?.('written');
  await rename(tmp, join(dir, name));
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Reads the checkpoint `latest` names; null when the directory has none yet. Anything else that
 * keeps it from being read whole (a missing or truncated file, a bad CRC) is a CheckpointError
 * naming the file. Leftover temporary files of interrupted writes are removed.
 */
export async function readLatestCheckpoint<H>(dir: string): Promise<CheckpointFile<H> | null> {
  let pointer: string;
  try {
    pointer = await readFile(join(dir, LATEST), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fail(dir, `cannot read ${LATEST}`, err);
  }
  let file: string;
  try {
    file = (JSON.parse(pointer) as { file: string }).file;
    if (typeof file !== 'string' || !NAME.test(file))
      throw new Error(`no checkpoint file named in ${pointer}`);
  } catch (err) {
    throw fail(dir, `${LATEST} is malformed`, err);
  }
  let buf: Buffer;
  try {
    buf = await readFile(join(dir, file));
  } catch (err) {
    throw fail(dir, `cannot read ${file}, which ${LATEST} names`, err);
  }
  const bad = (why: string) => fail(dir, `${file} is not a complete checkpoint (${why})`);
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw bad('bad magic');
  const hlen = buf.readUInt32LE(8);
  if (12 + hlen > buf.length) throw bad('truncated header');
  let meta: { header: H; bytes: number; crc32: number };
  try {
    meta = JSON.parse(buf.subarray(12, 12 + hlen).toString('utf8'));
  } catch (err) {
    throw fail(dir, `${file} has a malformed header`, err);
  }
  const data = buf.subarray(12 + hlen);
  if (data.length !== meta.bytes) throw bad(`${data.length} data bytes, ${meta.bytes} expected`);
  if (crc32(data) !== meta.crc32) throw bad('CRC-32 mismatch');
  for (const f of await readdir(dir))
    if (/^\..*\.tmp-\d+$/.test(f)) await unlink(join(dir, f)).catch(() => {});
  return { header: meta.header, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}
