import { SeededRandom } from '../../../../shared/random.ts';

/** A seeded PRNG (mulberry32, shared/random.ts): the simulator's only source of randomness. */
export class Rng extends SeededRandom {
  constructor(seed: number) {
    super((seed ^ 0x9e3779b9) >>> 0);
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    if (!xs.length) throw new Error('Rng.pick: empty');
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}
