/**
 * @module
 * A readers–writer gate per key: any number of `shared` holders at once, or one `exclusive`
 * holder. An exclusive request waits for the shared holders in flight and holds back new ones
 * (so a stream of writers cannot starve it).
 */
export class BlockGate {
  private closed = new Map<number, Promise<void>>();
  private active = new Map<number, number>();
  private drained = new Map<number, () => void>();

  async shared<T>(key: number, f: () => Promise<T>): Promise<T> {
    for (let c = this.closed.get(key); c; c = this.closed.get(key)) await c;
    this.active.set(key, (this.active.get(key) ?? 0) + 1);
    try {
      return await f();
    } finally {
      const n = (this.active.get(key) ?? 1) - 1;
      if (n > 0) this.active.set(key, n);
      else {
        this.active.delete(key);
        this.drained.get(key)?.();
      }
    }
  }

  async exclusive<T>(key: number, f: () => Promise<T>): Promise<T> {
    for (let c = this.closed.get(key); c; c = this.closed.get(key)) await c;
    let open!: () => void;
    this.closed.set(key, new Promise<void>((r) => (open = r)));
    try {
      if (this.active.has(key)) await new Promise<void>((r) => this.drained.set(key, r));
      this.drained.delete(key);
      return await f();
    } finally {
      this.closed.delete(key);
      open();
    }
  }
}
