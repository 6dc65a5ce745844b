/**
 * @module
 * The oplog's drain thread (ADR 015 "Oplog"): positioned writes of pages already in memory to
 * existing extent files, made with synchronous syscalls on a worker thread. Each asynchronous fs
 * call from the event loop is a hand-off to libuv's thread pool: about 30 µs of CPU per call on
 * the 2-core VMs this runs on, against 2–3 µs for the same `pwrite` made synchronously. A drain
 * writes thousands of scattered pages, so it sends them here in one message per batch (the
 * bytes packed in one transferred buffer) and the event loop never blocks on a disk.
 *
 * The caller keeps every file of a batch from being written meanwhile (the extent locks) and
 * accounts the files' growth on its DiskVolume from the sizes answered.
 */
import { Worker } from 'node:worker_threads';
import { DiskIoError } from '../../shared/errors.ts';

/** One file's writes: [position in the file, start in the packed bytes, length]. */
export interface DrainJob {
  path: string;
  writes: [pos: number, at: number, len: number][];
}

interface Reply {
  id: number;
  /** Per job done: the file's size before and after. */
  sizes: [number, number][];
  error?: { message: string; code?: string };
}

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', (m) => {
  const buf = m.data ? Buffer.from(m.data) : Buffer.alloc(0);
  const sizes = [];
  try {
    for (const j of m.jobs) {
      const fd = fs.openSync(j.path, 'r+');
      try {
        const before = fs.fstatSync(fd).size;
        for (const [pos, at, len] of j.writes) {
          let off = 0;
          while (off < len) off += fs.writeSync(fd, buf, at + off, len - off, pos + off);
        }
        if (m.sync) fs.fdatasyncSync(fd);
        sizes.push([before, fs.fstatSync(fd).size]);
      } finally {
        fs.closeSync(fd);
      }
    }
    parentPort.postMessage({ id: m.id, sizes });
  } catch (e) {
    parentPort.postMessage({ id: m.id, sizes, error: { message: String(e && e.message), code: e && e.code } });
  }
});
`;

export class DrainWorker {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(SOURCE, { eval: true });
    w.unref(); // referenced only while a batch is out
    w.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      if (this.pending.size === 0) w.unref();
      p?.resolve(r);
    });
    const fail = (e: Error): void => {
      this.worker = undefined;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the drain thread exited (${code})`)));
    this.worker = w;
    return w;
  }

  /**
   * Makes the jobs' writes from `data` (transferred: unusable by the caller afterwards), then with
   * `sync` fdatasyncs each file. Answers each file's size before and after (of the files done
   * before a failure, if one stopped the batch: then `error`).
   */
  async run(disk: string, jobs: DrainJob[], data: Buffer | undefined, sync: boolean): Promise<{ sizes: [number, number][]; error?: DiskIoError }> {
    const w = this.start();
    const id = this.nextId++;
    // a packed buffer of its own (allocUnsafeSlow) can be transferred; a pooled one cannot
    const ab = data && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data.buffer : data ? Uint8Array.from(data).buffer : undefined;
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ id, jobs, data: ab, sync }, ab ? [ab as ArrayBuffer] : []);
    });
    return reply.error ? { sizes: reply.sizes, error: new DiskIoError(disk, `drain: ${reply.error.message}`) } : { sizes: reply.sizes };
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
