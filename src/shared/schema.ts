/**
 * @module
 * Input checked against a zod schema: the first problem becomes an InputError naming the field
 * (`cvmIps[1]`, `cluster.name`) and the reason, as every transport reports bad input.
 */
import type { z } from 'zod';
import { InputError } from './errors.ts';

/** `a.b[2].c` for zod's path `['a', 'b', 2, 'c']`. */
export function fieldOf(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || 'body';
}

export function parseWith<S extends z.ZodType>(schema: S, input: unknown, prefix = ''): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new InputError(fieldOf(issue?.path ?? [], prefix), issue?.message ?? 'invalid');
}
