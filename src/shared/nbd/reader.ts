/**
 * @module
 * Incremental framing over a byte stream: push chunks in, `read(n)` exactly n bytes out. Applies
 * backpressure to its source while more than `highWater` bytes are buffered.
 */
export class StreamClosed extends Error {}

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void; peek?: boolean } | undefined;
  private ended: Error | undefined;

  constructor(private readonly pause: () => void, private readonly resume: () => void, private readonly highWater = 8 << 20) {}

  /** Bytes received and not yet read. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    // a read larger than highWater must be let through, or it would wait forever
    if (this.buffered > Math.max(this.highWater, this.waiter?.n ?? 0)) this.pause();
    this.drain();
  }

  end(reason = 'the connection closed'): void {
    this.ended = new StreamClosed(reason);
    if (this.waiter && this.buffered < this.waiter.n) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(this.ended);
    }
  }

  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error('ByteReader: one read at a time'));
    if (this.buffered >= n) return Promise.resolve(this.take(n));
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.resume();
    });
  }

  /** Reads exactly n bytes as the chunks they arrived in (no copy): for large payloads. */
  async readv(n: number): Promise<Buffer[]> {
    if (this.buffered < n) {
      // wait until n bytes are here without taking them
      while (this.buffered < n) {
        if (this.ended) throw this.ended;
        await new Promise<void>((resolve, reject) => {
          this.waiter = { n, resolve: () => resolve(), reject, peek: true };
          this.resume();
        });
      }
    }
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0] as Buffer;
      if (c.length <= left) {
        out.push(c);
        this.chunks.shift();
        left -= c.length;
      } else {
        out.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    if (this.buffered <= this.highWater / 2) this.resume();
    return out;
  }

  private drain(): void {
    const w = this.waiter;
    if (w && this.buffered >= w.n) {
      this.waiter = undefined;
      w.resolve(w.peek ? Buffer.alloc(0) : this.take(w.n));
    }
  }

  private take(n: number): Buffer {
    let out: Buffer;
    const first = this.chunks[0];
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0] as Buffer;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    if (this.buffered <= this.highWater / 2) this.resume();
    return out;
  }
}
