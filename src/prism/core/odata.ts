/**
 * @module
 * The v4 API's `$filter` and `$orderby` (pure): the subset of OData the reference platform's
 * clients send, parsed by hand and bounded (no RegExp from input).
 *
 *   expr    = and *( "or" and )
 *   and     = unary *( "and" unary )
 *   unary   = "not" unary / "(" expr ")" / call / compare
 *   call    = ("startswith" / "endswith" / "contains") "(" path "," literal ")"
 *   compare = path ("eq" / "ne" / "gt" / "ge" / "lt" / "le") literal
 *   path    = name *( "/" name )            e.g. name, config/buildInfo/version
 *   literal = 'text' ('' is a quote) / number / true / false / null
 *
 * A path names a property of the object as the API shows it; lists match if any element does.
 */
import { InputError } from '../../shared/errors.ts';

export type ODataValue = string | number | boolean | null;
export type ODataFilter =
  | { op: 'and' | 'or'; left: ODataFilter; right: ODataFilter }
  | { op: 'not'; arg: ODataFilter }
  | { op: 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le'; path: string[]; value: ODataValue }
  | { op: 'startswith' | 'endswith' | 'contains'; path: string[]; value: string };

export const MAX_FILTER_LENGTH = 1000;
const MAX_DEPTH = 10;
const MAX_CLAUSES = 50;

type Token = { t: 'word'; v: string } | { t: 'str'; v: string } | { t: 'num'; v: number } | { t: 'sym'; v: '(' | ')' | ',' };

function tokenize(s: string, field: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i] ?? '';
    if (c === ' ' || c === '\t') {
      i++;
    } else if (c === '(' || c === ')' || c === ',') {
      out.push({ t: 'sym', v: c });
      i++;
    } else if (c === "'") {
      let v = '';
      i++;
      for (;;) {
        if (i >= s.length) throw new InputError(field, 'a quoted value is not closed');
        if (s[i] === "'") {
          if (s[i + 1] === "'") {
            v += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += s[i];
        i++;
      }
      out.push({ t: 'str', v });
    } else if (/[0-9-]/.test(c)) {
      let j = i + 1;
      while (j < s.length && /[0-9.eE+-]/.test(s[j] ?? '')) j++;
      const n = Number(s.slice(i, j));
      if (!Number.isFinite(n)) throw new InputError(field, `"${s.slice(i, j)}" is not a number`);
      out.push({ t: 'num', v: n });
      i = j;
    } else if (/[A-Za-z_$]/.test(c)) {
      let j = i + 1;
      while (j < s.length && /[A-Za-z0-9_/$.]/.test(s[j] ?? '')) j++;
      out.push({ t: 'word', v: s.slice(i, j) });
      i = j;
    } else {
      throw new InputError(field, `unexpected "${c}" at position ${i + 1}`);
    }
  }
  return out;
}

const COMPARE = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);
const CALLS = new Set(['startswith', 'endswith', 'contains']);

/** Parses a `$filter`; every mistake is an InputError naming `$filter`. */
export function parseODataFilter(text: string, field = '$filter'): ODataFilter | null {
  if (text.length > MAX_FILTER_LENGTH) throw new InputError(field, `is longer than ${MAX_FILTER_LENGTH} characters`);
  if (text.trim() === '') return null;
  const toks = tokenize(text, field);
  let at = 0;
  let clauses = 0;
  const peek = (): Token | undefined => toks[at];
  const word = (v: string): boolean => {
    const t = peek();
    return t?.t === 'word' && t.v.toLowerCase() === v;
  };
  const expectSym = (v: string): void => {
    const t = toks[at++];
    if (t?.t !== 'sym' || t.v !== v) throw new InputError(field, `expected "${v}"`);
  };
  const path = (): string[] => {
    const t = toks[at++];
    if (t?.t !== 'word' || COMPARE.has(t.v) || t.v.endsWith('/')) throw new InputError(field, 'expected a property name');
    return t.v.split('/');
  };
  const literal = (): ODataValue => {
    const t = toks[at++];
    if (t?.t === 'str' || t?.t === 'num') return t.v;
    if (t?.t === 'word' && (t.v === 'true' || t.v === 'false')) return t.v === 'true';
    if (t?.t === 'word' && t.v === 'null') return null;
    // an enum literal as the SDKs write it: Namespace.Type'VALUE' comes as a word then a string
    if (t?.t === 'word' && toks[at]?.t === 'str') return (toks[at++] as { v: string }).v;
    throw new InputError(field, "expected a value: 'text', a number, true, false or null");
  };
  const unary = (depth: number): ODataFilter => {
    if (depth > MAX_DEPTH) throw new InputError(field, `is nested deeper than ${MAX_DEPTH} levels`);
    if (++clauses > MAX_CLAUSES) throw new InputError(field, `has more than ${MAX_CLAUSES} clauses`);
    const t = peek();
    if (word('not')) {
      at++;
      return { op: 'not', arg: unary(depth + 1) };
    }
    if (t?.t === 'sym' && t.v === '(') {
      at++;
      const e = expr(depth + 1);
      expectSym(')');
      return e;
    }
    if (t?.t === 'word' && CALLS.has(t.v.toLowerCase()) && toks[at + 1]?.t === 'sym') {
      at++;
      expectSym('(');
      const p = path();
      expectSym(',');
      const v = literal();
      expectSym(')');
      if (typeof v !== 'string') throw new InputError(field, `${t.v} takes a quoted text`);
      return { op: t.v.toLowerCase() as 'startswith', path: p, value: v };
    }
    const p = path();
    const o = toks[at++];
    if (o?.t !== 'word' || !COMPARE.has(o.v.toLowerCase())) throw new InputError(field, `expected an operator after ${p.join('/')}: eq, ne, gt, ge, lt or le`);
    return { op: o.v.toLowerCase() as 'eq', path: p, value: literal() };
  };
  const and = (depth: number): ODataFilter => {
    let left = unary(depth);
    while (word('and')) {
      at++;
      left = { op: 'and', left, right: unary(depth) };
    }
    return left;
  };
  const expr = (depth: number): ODataFilter => {
    let left = and(depth);
    while (word('or')) {
      at++;
      left = { op: 'or', left, right: and(depth) };
    }
    return left;
  };
  const e = expr(0);
  if (at < toks.length) throw new InputError(field, 'has something after the end of the expression');
  return e;
}

function valuesAt(obj: unknown, path: readonly string[]): unknown[] {
  let cur: unknown[] = [obj];
  for (const k of path) {
    const next: unknown[] = [];
    for (const c of cur) {
      const v = c !== null && typeof c === 'object' && !Array.isArray(c) ? (c as Record<string, unknown>)[k] : undefined;
      if (Array.isArray(v)) next.push(...(v as unknown[]));
      else if (v !== undefined) next.push(v);
    }
    cur = next;
  }
  return cur.flatMap((v) => (Array.isArray(v) ? (v as unknown[]) : [v]));
}

/** A property's value as text (objects and lists have none). */
const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined);

const same = (v: unknown, w: ODataValue): boolean => v === w || (w !== null && text(v) !== undefined && text(v) === String(w));

function compare(a: unknown, b: ODataValue): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const x = text(a) ?? '';
  const y = b === null ? '' : String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Whether an object matches a filter (null: everything does). */
export function matchesOData(f: ODataFilter | null, obj: unknown): boolean {
  if (f === null) return true;
  switch (f.op) {
    case 'and':
      return matchesOData(f.left, obj) && matchesOData(f.right, obj);
    case 'or':
      return matchesOData(f.left, obj) || matchesOData(f.right, obj);
    case 'not':
      return !matchesOData(f.arg, obj);
    case 'startswith':
      return valuesAt(obj, f.path).some((v) => typeof v === 'string' && v.startsWith(f.value));
    case 'endswith':
      return valuesAt(obj, f.path).some((v) => typeof v === 'string' && v.endsWith(f.value));
    case 'contains':
      return valuesAt(obj, f.path).some((v) => typeof v === 'string' && v.includes(f.value));
    case 'eq':
      return f.value === null ? valuesAt(obj, f.path).every((v) => v === null) : valuesAt(obj, f.path).some((v) => same(v, f.value));
    case 'ne':
      return !valuesAt(obj, f.path).some((v) => same(v, f.value));
    case 'gt': case 'ge': case 'lt': case 'le': {
      const op = f.op;
      return valuesAt(obj, f.path).some((v) => {
        const c = compare(v, f.value);
        return op === 'gt' ? c > 0 : op === 'ge' ? c >= 0 : op === 'lt' ? c < 0 : c <= 0;
      });
    }
  }
}

/** `$orderby`: `name`, `name desc`, `a/b asc, c` → a comparator; every mistake names `$orderby`. */
export function parseOrderBy(text: string): ((a: unknown, b: unknown) => number) | null {
  if (text.trim() === '') return null;
  if (text.length > 200) throw new InputError('$orderby', 'is longer than 200 characters');
  const keys = text.split(',').map((part) => {
    const [p, dir, extra] = part.trim().split(/\s+/);
    if (!p || !/^[A-Za-z_][A-Za-z0-9_/]*$/.test(p) || extra !== undefined || (dir !== undefined && dir !== 'asc' && dir !== 'desc')) throw new InputError('$orderby', `"${part.trim()}" is not "<property> [asc|desc]"`);
    return { path: p.split('/'), sign: dir === 'desc' ? -1 : 1 };
  });
  return (a, b) => {
    for (const k of keys) {
      const x = valuesAt(a, k.path)[0];
      const y = valuesAt(b, k.path)[0];
      const c = x === undefined ? (y === undefined ? 0 : 1) : y === undefined ? -1 : compare(x, y as ODataValue);
      if (c !== 0) return k.sign * c;
    }
    return 0;
  };
}
