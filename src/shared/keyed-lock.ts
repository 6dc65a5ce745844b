/**
 * @module
 * Runs async work one at a time per key (a file, an extent group), in arrival order; different
 * keys run concurrently.
 */
export class KeyedLock {
  private tails = new Map<string, Promise<void>>();

  async run<T>(key: string, f: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await f();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
