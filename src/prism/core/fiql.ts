/**
 * @module
 * The `filter` of a v3 list request (pure): a FIQL expression parsed by hand and matched without
 * ever building a RegExp from what a client sent, so no filter can stall the process.
 *
 * Grammar (FIQL, draft-nottingham-atompub-fiql-00, as the reference platform's v3 lists take it):
 *
 *   expression = term *( "," term )          ; "," is OR
 *   term       = factor *( ";" factor )      ; ";" is AND, and binds tighter than ","
 *   factor     = "(" expression ")" / constraint
 *   constraint = attribute operator value
 *   attribute  = 1*( ALPHA / DIGIT / "_" / "." / "-" / "~" )
 *   operator   = "==" / "!=" / "=gt=" / "=ge=" / "=lt=" / "=le="
 *   value      = 1*( any character but ";" "," "(" ")" ), spaces around it ignored
 *
 * In a value, `%XX` is a percent-escape (so `%3B` is a literal `;`, `%2A` a literal `*`, `%25` a
 * literal `%`). For `==` and `!=` a value is a pattern matched against the whole attribute: `.*` and
 * `*` stand for any run of characters (the reference's own example is `vm_name==web.*`); everything
 * else is literal. `=gt=`, `=ge=`, `=lt=` and `=le=` compare with a plain value: as numbers when both
 * sides are numbers, otherwise in the order lists sort by (digit runs compared as numbers, so
 * `node-2` < `node-10` and `10.0.0.9` < `10.0.0.10`).
 *
 * Bounds: at most FILTER_MAX_LENGTH characters, FILTER_MAX_CLAUSES constraints and FILTER_MAX_DEPTH
 * nested parentheses. Parsing is one pass over the text; matching a constraint costs at most the
 * product of the value's and the attribute's lengths (no backtracking between wildcards is needed:
 * the leftmost match of each literal piece is always a good one).
 */
import { InputError } from '../../shared/errors.ts';

export const FILTER_MAX_LENGTH = 1000;
export const FILTER_MAX_CLAUSES = 50;
export const FILTER_MAX_DEPTH = 10;
const ATTRIBUTE_MAX_LENGTH = 64;

export type Comparison = '==' | '!=' | '=gt=' | '=ge=' | '=lt=' | '=le=';
export const COMPARISONS: readonly Comparison[] = ['==', '!=', '=gt=', '=ge=', '=lt=', '=le='];

export interface Constraint {
  readonly type: 'constraint';
  readonly attribute: string;
  readonly op: Comparison;
  /**
   * The value's literal pieces, a wildcard between each two: `['web', '']` is `web.*`; one piece
   * is a plain value. Percent-escapes are decoded.
   */
  readonly pieces: readonly string[];
}

export interface Group {
  readonly type: 'and' | 'or';
  readonly items: readonly Filter[];
}

export type Filter = Constraint | Group;

const fail = (reason: string): never => {
  throw new InputError('filter', reason);
};

/** What a reason quotes of the client's text: short, so an error stays small. */
const quote = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
const isAttributeChar = (c: string | undefined): boolean =>
  c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '_' || c === '.' || c === '-' || c === '~');
const isValueEnd = (c: string | undefined): boolean => c === undefined || c === ';' || c === ',' || c === ')';

function decode(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return fail(`the value ${quote(s)} has a % that does not start an escape like %2C (write a literal % as %25)`);
  }
}

class Parser {
  private pos = 0;
  private clauses = 0;

  constructor(private readonly text: string) {}

  private peek(): string | undefined {
    return this.text[this.pos];
  }

  private skipSpaces(): void {
    while (isSpace(this.peek())) this.pos++;
  }

  private where(): string {
    const c = this.peek();
    return c === undefined ? 'at the end' : `at position ${this.pos + 1} (${quote(c)})`;
  }

  parse(): Filter {
    const f = this.expression(0);
    this.skipSpaces();
    if (this.peek() !== undefined) fail(`unexpected ${quote(this.peek() ?? '')} at position ${this.pos + 1}`);
    return f;
  }

  private expression(depth: number): Filter {
    const items = [this.term(depth)];
    for (this.skipSpaces(); this.peek() === ','; this.skipSpaces()) {
      this.pos++;
      items.push(this.term(depth));
    }
    return items.length === 1 && items[0] ? items[0] : { type: 'or', items };
  }

  private term(depth: number): Filter {
    const items = [this.factor(depth)];
    for (this.skipSpaces(); this.peek() === ';'; this.skipSpaces()) {
      this.pos++;
      items.push(this.factor(depth));
    }
    return items.length === 1 && items[0] ? items[0] : { type: 'and', items };
  }

  private factor(depth: number): Filter {
    this.skipSpaces();
    if (this.peek() !== '(') return this.constraint();
    if (depth >= FILTER_MAX_DEPTH) fail(`nests parentheses deeper than ${FILTER_MAX_DEPTH}`);
    const open = this.pos;
    this.pos++;
    const f = this.expression(depth + 1);
    this.skipSpaces();
    if (this.peek() !== ')') fail(`the "(" at position ${open + 1} is not closed: expected ")" ${this.where()}`);
    this.pos++;
    return f;
  }

  private constraint(): Constraint {
    if (++this.clauses > FILTER_MAX_CLAUSES) fail(`has more than ${FILTER_MAX_CLAUSES} clauses`);
    const start = this.pos;
    while (isAttributeChar(this.peek())) this.pos++;
    const attribute = this.text.slice(start, this.pos);
    if (attribute === '') fail(`expected a clause like name==value ${this.where()}`);
    if (attribute.length > ATTRIBUTE_MAX_LENGTH) fail(`the attribute name at position ${start + 1} is longer than ${ATTRIBUTE_MAX_LENGTH} characters`);
    this.skipSpaces();
    const op = this.operator(attribute);
    const from = this.pos;
    while (!isValueEnd(this.peek())) {
      if (this.peek() === '(') fail(`the value of ${attribute} has a "(" at position ${this.pos + 1}; write a literal ( as %28`);
      this.pos++;
    }
    const raw = this.text.slice(from, this.pos).trim();
    if (raw === '') fail(`${attribute}${op} needs a value ${this.where()}`);
    if (op === '==' || op === '!=') return { type: 'constraint', attribute, op, pieces: patternPieces(raw) };
    if (raw.includes('*')) fail(`${op} compares with a plain value; the wildcards .* and * are for == and != (write a literal * as %2A)`);
    return { type: 'constraint', attribute, op, pieces: [decode(raw)] };
  }

  private operator(attribute: string): Comparison {
    const t = this.text;
    const p = this.pos;
    if (t.startsWith('==', p) || t.startsWith('!=', p)) {
      this.pos += 2;
      return t.startsWith('==', p) ? '==' : '!=';
    }
    if (t[p] === '=') {
      let j = p + 1;
      while (j - p <= 8 && (t[j] ?? '') >= 'a' && (t[j] ?? '') <= 'z') j++;
      const op = COMPARISONS.find((c) => c === t.slice(p, j + 1));
      if (op) {
        this.pos = j + 1;
        return op;
      }
      if (t[j] === '=') fail(`unknown operator ${quote(t.slice(p, j + 1))} after ${attribute}; one of ${COMPARISONS.join(' ')}`);
    }
    return fail(`expected one of ${COMPARISONS.join(' ')} after ${attribute} ${this.where()}`);
  }
}

/** Splits a pattern at its wildcards (`.*` and `*`) and decodes the literal pieces. */
function patternPieces(raw: string): string[] {
  const pieces: string[] = [];
  let from = 0;
  for (let i = 0; i < raw.length; i++) {
    const wild = raw[i] === '*' ? 1 : raw[i] === '.' && raw[i + 1] === '*' ? 2 : 0;
    if (wild === 0) continue;
    pieces.push(decode(raw.slice(from, i)));
    i += wild - 1;
    from = i + 1;
  }
  pieces.push(decode(raw.slice(from)));
  return pieces;
}

/** Parses a v3 `filter`; null for an empty one. Every error is an InputError naming `filter`. */
export function parseFilter(text: string): Filter | null {
  if (text.length > FILTER_MAX_LENGTH) fail(`is ${text.length} characters long; at most ${FILTER_MAX_LENGTH}`);
  if (text.trim() === '') return null;
  return new Parser(text).parse();
}

/** Every attribute a filter names, once each. */
export function attributesOf(f: Filter | null): string[] {
  const out = new Set<string>();
  const walk = (x: Filter): void => {
    if (x.type === 'constraint') out.add(x.attribute);
    else x.items.forEach(walk);
  };
  if (f) walk(f);
  return [...out];
}

/** Whether `s` is matched whole by a pattern's pieces (a wildcard between each two). */
export function matchesPattern(pieces: readonly string[], s: string): boolean {
  const first = pieces[0] ?? '';
  if (pieces.length === 1) return s === first;
  const last = pieces[pieces.length - 1] ?? '';
  if (s.length < first.length + last.length || !s.startsWith(first) || !s.endsWith(last)) return false;
  const end = s.length - last.length;
  let at = first.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const p = pieces[i] ?? '';
    if (p === '') continue;
    const found = s.indexOf(p, at);
    if (found < 0 || found + p.length > end) return false;
    at = found + p.length;
  }
  return true;
}

const NUMBER = /^-?\d+(?:\.\d+)?$/;

/** The order lists sort by and comparisons use: numbers as numbers, text with digit runs as numbers. */
export function collate(a: string, b: string): number {
  if (NUMBER.test(a) && NUMBER.test(b)) return Math.sign(Number(a) - Number(b));
  return a.localeCompare(b, 'en', { numeric: true });
}

function holds(c: Constraint, v: string): boolean {
  const plain = c.pieces[0] ?? '';
  switch (c.op) {
    case '==':
      return matchesPattern(c.pieces, v);
    case '!=':
      return !matchesPattern(c.pieces, v);
    case '=gt=':
      return collate(v, plain) > 0;
    case '=ge=':
      return collate(v, plain) >= 0;
    case '=lt=':
      return collate(v, plain) < 0;
    case '=le=':
      return collate(v, plain) <= 0;
  }
}

/** Whether an entity, given by its attributes, passes the filter (an absent attribute reads as ""). */
export function matchesFilter(f: Filter | null, attrs: Readonly<Record<string, string>>): boolean {
  if (!f) return true;
  switch (f.type) {
    case 'constraint':
      return holds(f, Object.hasOwn(attrs, f.attribute) ? (attrs[f.attribute] ?? '') : '');
    case 'and':
      return f.items.every((x) => matchesFilter(x, attrs));
    case 'or':
      return f.items.some((x) => matchesFilter(x, attrs));
  }
}
