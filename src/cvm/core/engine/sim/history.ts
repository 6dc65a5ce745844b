/**
 * @module
 * What the clients were told, and the checks against it. Every write (or trim) is recorded per page
 * with its value (the write's id; 0 for zeros), when it was issued and when it ended, and how.
 *
 * A page read over [rs, re] may return the value of a write w issued before re that is not
 * superseded: w is superseded when some write w2 was acknowledged before rs and issued after w
 * ended (w2 was ordered after w). A write with no answer (failed, timed out, its owner crashed)
 * may or may not have landed: it stays possible until superseded. Power loss makes every
 * acknowledged write not covered by a completed FLUSH uncertain in the same way (it may be lost);
 * a write acknowledged before a FLUSH was issued that then completed must survive everything.
 */
export type WriteStatus = 'pending' | 'acked' | 'failed' | 'uncertain';

export interface WriteRec {
  id: number;
  value: number;
  issue: number;
  end: number;
  status: WriteStatus;
  flushed: boolean;
  /** Still pending when every node lost power: whatever answer comes later, it may be lost. */
  cut?: boolean;
}

const INITIAL: WriteRec = { id: 0, value: 0, issue: -Infinity, end: -Infinity, status: 'acked', flushed: true };

export class History {
  private readonly pages = new Map<string, WriteRec[]>();
  readonly violations: string[] = [];

  private list(vdisk: string, page: number): WriteRec[] {
    const k = `${vdisk}#${page}`;
    let l = this.pages.get(k);
    if (!l) {
      l = [INITIAL];
      this.pages.set(k, l);
    }
    return l;
  }

  pagesOf(vdisk: string): number[] {
    return [...this.pages.keys()].filter((k) => k.startsWith(`${vdisk}#`)).map((k) => Number(k.slice(vdisk.length + 1)));
  }

  begin(vdisk: string, pages: readonly number[], value: number, id: number, now: number): WriteRec[] {
    return pages.map((p) => {
      const w: WriteRec = { id, value, issue: now, end: Infinity, status: 'pending', flushed: false };
      this.list(vdisk, p).push(w);
      return w;
    });
  }

  end(ws: readonly WriteRec[], acked: boolean, now: number): void {
    for (const w of ws) {
      w.status = w.cut ? 'uncertain' : acked ? 'acked' : 'failed';
      w.end = now;
    }
  }

  /** A FLUSH issued at `issuedAt` completed: writes acknowledged before then are durable. */
  flushed(vdisk: string, issuedAt: number): void {
    for (const [k, l] of this.pages) {
      if (!k.startsWith(`${vdisk}#`)) continue;
      for (const w of l) if (w.status === 'acked' && w.end < issuedAt) w.flushed = true;
    }
  }

  /**
   * Power loss somewhere: unflushed acknowledged writes may be gone, and so may writes still in
   * flight even if they are acknowledged later: a replica may have taken one into its cache and
   * answered just before it lost power (not yet declared down, it still counts as in-sync), and no
   * FLUSH has covered it. Only a completed FLUSH promises durability.
   */
  powerLoss(now: number): void {
    for (const l of this.pages.values()) {
      for (const w of l) {
        if (w.status === 'pending') w.cut = true;
        if (w.status === 'acked' && !w.flushed) {
          w.status = 'uncertain';
          w.end = Math.max(w.end, now);
        }
      }
    }
  }

  allowed(vdisk: string, page: number, value: number, rs: number, re: number): boolean {
    const l = this.list(vdisk, page);
    const superseded = (w: WriteRec): boolean => l.some((w2) => w2.status === 'acked' && w2.issue > w.end && w2.end < rs);
    return l.some((w) => w.value === value && w.issue < re && !superseded(w));
  }

  checkRead(what: string, vdisk: string, page: number, value: number, rs: number, re: number): void {
    if (this.allowed(vdisk, page, value, rs, re)) return;
    const l = this.list(vdisk, page);
    const last = [...l].reverse().find((w) => w.status === 'acked' && w.end < rs);
    this.violations.push(`${what}: ${vdisk} page ${page} read value ${value} over [${rs}, ${re}] ms; last acknowledged before the read: ${last ? `${last.value} (write ${last.id}, acked at ${last.end}${last.flushed ? ', flushed' : ''})` : 'none'}; writes: ${l.slice(-6).map((w) => `${w.id}=${w.value}@${w.issue}-${w.end}:${w.status}${w.flushed ? '+f' : ''}`).join(' ')}`);
  }
}
