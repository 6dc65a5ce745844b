/**
 * @module
 * Versions compared by their numeric parts (`1.2.3`, `1.2.3-rc1`, firmware's `U46 v2.68`; a suffix
 * is not ordered). Pure; Foundation's validation and LCM's matrix use it.
 */
/** The first dotted run of digits (`2.68` of `U46 v2.68`, firmware as vendors write it), else the first number. */
function numericParts(v: string): number[] {
  const run = /\d+(?:\.\d+)+/.exec(v) ?? /\d+/.exec(v);
  return run ? run[0].split('.').map(Number) : [];
}

/**
 * -1, 0 or 1 as `a` is older than, the same as, or newer than `b`, by their numeric parts, prefixes
 * and suffixes ignored. Missing parts count as 0 ("2.4" = "2.4.0"); each part compares as a number
 * ("3.10" > "3.9"); a version without digits is the lowest.
 */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const pa = numericParts(a);
  const pb = numericParts(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
