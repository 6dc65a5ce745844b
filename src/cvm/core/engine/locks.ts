/**
 * @module
 * Promise locks for the owner (pure): a readers-writer lock per extent group (client I/O shared;
 * read repair, resync, re-replication and takeover exclusive) and a mutex per extent (writes to one
 * extent are applied in generation order on every replica). FIFO; a waiting writer blocks new readers.
 */
type Release = () => void;

export class RwLock {
  private readers = 0;
  private writer = false;
  private waiting: { exclusive: boolean; go: () => void }[] = [];

  shared(): Promise<Release> {
    return this.enter(false);
  }

  exclusive(): Promise<Release> {
    return this.enter(true);
  }

  get idle(): boolean {
    return this.readers === 0 && !this.writer && this.waiting.length === 0;
  }

  private enter(exclusive: boolean): Promise<Release> {
    return new Promise((resolve) => {
      const go = (): void => {
        if (exclusive) this.writer = true;
        else this.readers++;
        let done = false;
        resolve(() => {
          if (done) return;
          done = true;
          if (exclusive) this.writer = false;
          else this.readers--;
          this.pump();
        });
      };
      this.waiting.push({ exclusive, go });
      this.pump();
    });
  }

  private pump(): void {
    while (this.waiting.length > 0) {
      const next = this.waiting[0]!;
      if (this.writer) return;
      if (next.exclusive && this.readers > 0) return;
      this.waiting.shift();
      next.go();
      if (next.exclusive) return;
    }
  }
}

export class Mutex {
  private readonly lock = new RwLock();
  acquire(): Promise<Release> {
    return this.lock.exclusive();
  }
  get idle(): boolean {
    return this.lock.idle;
  }
}
