/**
 * @module
 * The VM service's data movers: an image downloaded over HTTP(S) to a file (undici, streamed, with
 * progress), its format and virtual size from `qemu-img info`, and copies onto vdisks with
 * `qemu-img convert -p -n -O raw` over the CVM's own NBD socket (`nbd+unix:///<vdisk>?socket=`),
 * the progress qemu-img prints parsed as it goes. Every step stops when its signal aborts.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fetch } from 'undici';
import { InputError, UnavailableError, errorMessage } from '../../shared/errors.ts';

export const QEMU_IMG = process.env['CONVERGE_QEMU_IMG'] ?? 'qemu-img';

/** The NBD URI of a vdisk on a CVM's plain NBD Unix socket. */
export function nbdUri(socket: string, vdisk: string): string {
  return `nbd+unix:///${encodeURIComponent(vdisk)}?socket=${socket}`;
}

/** Downloads `url` to `dest`; HTTP errors and unreachable servers name `url`. Returns the bytes written. */
export async function download(url: string, dest: string, o: { signal: AbortSignal; onProgress: (bytes: number, total: number | null) => void }): Promise<number> {
  let r;
  try {
    r = await fetch(url, { signal: o.signal, redirect: 'follow' });
  } catch (e) {
    if (o.signal.aborted) throw o.signal.reason;
    const cause = (e as { cause?: unknown }).cause;
    throw new InputError('url', `${url} cannot be fetched (${errorMessage(cause ?? e)})`);
  }
  if (!r.ok || !r.body) {
    await r.body?.cancel().catch(() => undefined);
    throw new InputError('url', `${url} answered HTTP ${r.status}${r.statusText ? ` ${r.statusText}` : ''}`);
  }
  const total = Number(r.headers.get('content-length') ?? NaN);
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      o.onProgress(bytes, Number.isFinite(total) ? total : null);
      done(null, chunk);
    },
  });
  await pipeline(r.body, count, createWriteStream(dest), { signal: o.signal });
  return bytes;
}

interface Run {
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; a non-zero exit is an error carrying its last stderr line. */
function run(cmd: string, args: readonly string[], signal: AbortSignal, onStdout?: (s: string) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => {
      if (stdout.length < 1 << 20) stdout += s;
      onStdout?.(s);
    });
    p.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr = (stderr + s).slice(-4096);
    });
    const abort = (): void => void p.kill('SIGKILL');
    signal.addEventListener('abort', abort, { once: true });
    p.on('error', (e) => {
      signal.removeEventListener('abort', abort);
      reject(new UnavailableError(`${cmd} could not start (${e.message})`));
    });
    p.on('close', (code, sig) => {
      signal.removeEventListener('abort', abort);
      if (signal.aborted) reject(signal.reason as Error);
      else if (code === 0) resolve({ stdout, stderr });
      else reject(new UnavailableError(`${cmd} ${args[0] ?? ''} failed (${sig ?? `exit ${String(code)}`}): ${stderr.trim().split('\n').pop() ?? ''}`));
    });
  });
}

export interface ImageInfo {
  format: string;
  virtualSize: number;
}

export async function imageInfo(file: string, signal: AbortSignal): Promise<ImageInfo> {
  const r = await run(QEMU_IMG, ['info', '--output=json', file], signal);
  const j = JSON.parse(r.stdout) as { format?: string; 'virtual-size'?: number };
  if (typeof j.format !== 'string' || typeof j['virtual-size'] !== 'number') throw new UnavailableError(`qemu-img info ${file}: no format or virtual size in its answer`);
  return { format: j.format, virtualSize: j['virtual-size'] };
}

/**
 * Copies `src` (a file or an NBD URI, of `srcFormat`) onto `dst` (an NBD URI of a vdisk at least as
 * large) as raw, writing over it (-n: the vdisk exists). `onProgress` gets qemu-img's percent.
 */
export async function convert(src: string, srcFormat: string, dst: string, o: { signal: AbortSignal; onProgress: (percent: number) => void }): Promise<void> {
  let tail = '';
  await run(QEMU_IMG, ['convert', '-p', '-n', '-f', srcFormat, '-O', 'raw', src, dst], o.signal, (s) => {
    // qemu-img -p prints "    (12.34/100%)" and a carriage return each time it moves
    tail = (tail + s).slice(-256);
    const all = [...tail.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
    const last = all[all.length - 1];
    if (last?.[1]) o.onProgress(Number(last[1]));
  });
}
