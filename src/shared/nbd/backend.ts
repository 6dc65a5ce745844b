/**
 * @module
 * What an NBD export serves (STYLE.md C8): a byte range with read, write, flush, trim and zero.
 * The connection validates every request at the edge before calling a backend, so backends may
 * assume offsets and lengths are in range. Two backends here: MemoryBackend (tests) and
 * FileBackend (a fixed-size file; the benchmark's and the single-node case's store). The vdisk
 * service of the storage fabric implements the same interface.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import type { ByteReader } from './reader.ts';

export interface NbdBackend {
  readonly size: bigint;
  readonly readOnly: boolean;
  /**
   * Whether a FLUSH on any connection to this export makes every write completed on every other
   * connection durable (NBD_FLAG_CAN_MULTI_CONN, proto.md). Only then is the flag advertised.
   */
  readonly multiConn?: boolean;
  pread(offset: number, length: number): Promise<Buffer>;
  /** fua: the data must be durable before this resolves. */
  pwrite(offset: number, data: Buffer, fua: boolean): Promise<void>;
  /** The same for data in pieces (as it came off the socket), where the backend can avoid a copy. */
  pwritev?(offset: number, data: readonly Buffer[], fua: boolean): Promise<void>;
  flush(): Promise<void>;
  trim(offset: number, length: number, fua: boolean): Promise<void>;
  zero(offset: number, length: number, fua: boolean): Promise<void>;
  close(): Promise<void>;
  /**
   * Serves the whole transmission phase itself (a proxy relaying requests and replies without a
   * backend call each). The connection hands over its reader and stream; replies must be written
   * whole. Resolves when the client disconnected (NBD_CMD_DISC or EOF).
   */
  serve?(t: Transmission): Promise<void>;
}

/** The transmission phase of one connection, handed to a backend that serves it itself. */
export interface Transmission {
  reader: ByteReader;
  stream: Duplex;
  /** Structured replies were negotiated. */
  structured: boolean;
  remote: string;
}

const PAGE = 64 * 1024;
/** A MiB of zeros shared by every zeroing write; never written to. */
const ZEROS = Buffer.alloc(1 << 20);

/** A sparse in-memory disk. */
export class MemoryBackend implements NbdBackend {
  readonly readOnly: boolean;
  /** Every connection to one instance sees the same pages, and nothing needs flushing. */
  readonly multiConn: boolean;
  private pages = new Map<number, Buffer>();
  constructor(readonly sizeBytes: number, opts: { readOnly?: boolean; multiConn?: boolean } = {}) {
    this.readOnly = opts.readOnly ?? false;
    this.multiConn = opts.multiConn ?? true;
  }
  get size(): bigint {
    return BigInt(this.sizeBytes);
  }
  pread(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    for (let pos = offset; pos < offset + length;) {
      const page = Math.floor(pos / PAGE);
      const inPage = pos - page * PAGE;
      const n = Math.min(PAGE - inPage, offset + length - pos);
      this.pages.get(page)?.copy(out, pos - offset, inPage, inPage + n);
      pos += n;
    }
    return Promise.resolve(out);
  }
  pwrite(offset: number, data: Buffer): Promise<void> {
    for (let pos = offset; pos < offset + data.length;) {
      const page = Math.floor(pos / PAGE);
      const inPage = pos - page * PAGE;
      const n = Math.min(PAGE - inPage, offset + data.length - pos);
      let p = this.pages.get(page);
      if (!p) {
        p = Buffer.alloc(PAGE);
        this.pages.set(page, p);
      }
      data.copy(p, inPage, pos - offset, pos - offset + n);
      pos += n;
    }
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  trim(offset: number, length: number): Promise<void> {
    return this.zero(offset, length);
  }
  /** Pages wholly inside the range are dropped (they read as zeros), the ends are zero-filled: no buffer the size of the range. */
  zero(offset: number, length: number): Promise<void> {
    for (let pos = offset; pos < offset + length;) {
      const page = Math.floor(pos / PAGE);
      const inPage = pos - page * PAGE;
      const n = Math.min(PAGE - inPage, offset + length - pos);
      if (n === PAGE) this.pages.delete(page);
      else this.pages.get(page)?.fill(0, inPage, inPage + n);
      pos += n;
    }
    return Promise.resolve();
  }
  close(): Promise<void> {
    this.pages.clear();
    return Promise.resolve();
  }
}

/** A fixed-size file (created sparse at `size` if missing). */
export class FileBackend implements NbdBackend {
  /** fdatasync of the file covers writes made through any descriptor of it. */
  readonly multiConn = true;
  private constructor(private readonly fh: FileHandle, readonly sizeBytes: number, readonly readOnly: boolean) {}

  static async open(path: string, size: number, opts: { readOnly?: boolean } = {}): Promise<FileBackend> {
    const fh = await open(path, opts.readOnly ? 'r' : 'a+').then(async (h) => {
      await h.close();
      return open(path, opts.readOnly ? 'r' : 'r+');
    });
    const st = await fh.stat();
    if (st.size < size && !opts.readOnly) await fh.truncate(size);
    return new FileBackend(fh, size, opts.readOnly ?? false);
  }

  get size(): bigint {
    return BigInt(this.sizeBytes);
  }
  async pread(offset: number, length: number): Promise<Buffer> {
    const b = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.fh.read(b, got, length - got, offset + got);
      if (bytesRead === 0) {
        b.fill(0, got);
        break;
      }
      got += bytesRead;
    }
    return b;
  }
  async pwrite(offset: number, data: Buffer, fua: boolean): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    if (fua) await this.fh.datasync();
  }
  async pwritev(offset: number, data: readonly Buffer[], fua: boolean): Promise<void> {
    let bufs = [...data];
    let pos = offset;
    while (bufs.length > 0) {
      const { bytesWritten } = await this.fh.writev(bufs, pos);
      pos += bytesWritten;
      let skip = bytesWritten;
      while (skip > 0 && bufs.length > 0) {
        const b = bufs[0] as Buffer;
        if (b.length <= skip) {
          skip -= b.length;
          bufs.shift();
        } else {
          bufs[0] = b.subarray(skip);
          skip = 0;
        }
      }
      bufs = bufs.filter((b) => b.length > 0);
    }
    if (fua) await this.fh.datasync();
  }
  flush(): Promise<void> {
    return this.fh.datasync();
  }
  trim(offset: number, length: number, fua: boolean): Promise<void> {
    return this.zero(offset, length, fua);
  }
  /** Writes zeros a MiB at a time from one shared buffer (Node has no fallocate to punch a hole). */
  async zero(offset: number, length: number, fua: boolean): Promise<void> {
    for (let pos = offset; pos < offset + length; pos += ZEROS.length) {
      const n = Math.min(ZEROS.length, offset + length - pos);
      await this.pwrite(pos, ZEROS.subarray(0, n), false);
    }
    if (fua) await this.fh.datasync();
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}
