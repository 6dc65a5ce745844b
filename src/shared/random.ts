/**
 * @module
 * Randomness as a service, so pure code stays deterministic in tests.
 */

export interface Random {
  /** A float in [0, 1). */
  next(): number;
}

/** Mulberry32: small, fast, seedable; good enough for jitter and test data, not for secrets. */
export class SeededRandom implements Random {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** Deterministic hex string of n chars from a Random. */
export function randomHex(rnd: Random, n: number): string {
  let s = '';
  while (s.length < n) s += Math.floor(rnd.next() * 16).toString(16);
  return s;
}
