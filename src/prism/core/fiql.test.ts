import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InputError } from '../../shared/errors.ts';
import { COMPARISONS, FILTER_MAX_CLAUSES, FILTER_MAX_DEPTH, FILTER_MAX_LENGTH, attributesOf, collate, matchesFilter, matchesPattern, parseFilter, type Filter } from './fiql.ts';

/** A property's runs are the same on every machine: fixed seeds. */
const SEED = 20_260_110;
const BUDGET_MS = 100;

/** Runs `f`, timing it; a run over budget is timed once more (a GC pause is not the parser's doing). */
function withinBudget(what: string, f: () => void): void {
  for (let attempt = 0; ; attempt++) {
    const t0 = performance.now();
    f();
    const took = performance.now() - t0;
    if (took < BUDGET_MS) return;
    if (attempt > 0) assert.fail(`${what} took ${took.toFixed(1)} ms (budget ${BUDGET_MS} ms)`);
  }
}

const isFilterError = (e: unknown): boolean => e instanceof InputError && e.field === 'filter' && e.message.startsWith('filter: ');
const reasonOf = (text: string): string => {
  try {
    parseFilter(text);
  } catch (e) {
    assert.ok(isFilterError(e), `${JSON.stringify(text)} threw ${String(e)}`);
    return (e as InputError).reason;
  }
  return assert.fail(`${JSON.stringify(text)} parsed`);
};

const c = (attribute: string, op: string, ...pieces: string[]): Filter => ({ type: 'constraint', attribute, op, pieces } as Filter);

test('the grammar: == != and comparisons; ; binds tighter than ,; parentheses group; spaces around parts are ignored', () => {
  assert.equal(parseFilter(''), null);
  assert.equal(parseFilter('   '), null);
  assert.deepEqual(parseFilter('vm_name==web'), c('vm_name', '==', 'web'));
  assert.deepEqual(parseFilter('a==1;b!=2'), { type: 'and', items: [c('a', '==', '1'), c('b', '!=', '2')] });
  assert.deepEqual(parseFilter('a==1,b==2;c==3'), { type: 'or', items: [c('a', '==', '1'), { type: 'and', items: [c('b', '==', '2'), c('c', '==', '3')] }] });
  assert.deepEqual(parseFilter('(a==1,b==2);c==3'), { type: 'and', items: [{ type: 'or', items: [c('a', '==', '1'), c('b', '==', '2')] }, c('c', '==', '3')] });
  assert.deepEqual(parseFilter(' a == my vm ; ( b=ge=10 ) '), { type: 'and', items: [c('a', '==', 'my vm'), c('b', '=ge=', '10')] });
  for (const op of COMPARISONS) assert.deepEqual(parseFilter(`x${op}5`), c('x', op, '5'));
  assert.deepEqual(attributesOf(parseFilter('a==1,(b==2;a!=3)')), ['a', 'b']);
});

test('values: .* and * are wildcards, everything else is literal; %XX escapes reserved characters', () => {
  assert.deepEqual(parseFilter('vm_name==web.*'), c('vm_name', '==', 'web', ''));
  assert.deepEqual(parseFilter('n==*a.*b*'), c('n', '==', '', 'a', 'b', ''));
  assert.deepEqual(parseFilter('ip==10.0.0.3'), c('ip', '==', '10.0.0.3'), 'a dot alone is a dot');
  assert.deepEqual(parseFilter('n==a%3Bb%2C%28c%29%2A%25'), c('n', '==', 'a;b,(c)*%'));
  assert.deepEqual(parseFilter('n==a=b!'), c('n', '==', 'a=b!'));
  assert.deepEqual(parseFilter('n==caf%C3%A9'), c('n', '==', 'café'));
  assert.ok(matchesPattern(['web', ''], 'web-1'));
  assert.ok(matchesPattern(['web', ''], 'web'));
  assert.ok(!matchesPattern(['web', ''], 'a-web'));
  assert.ok(matchesPattern(['', 'b', ''], 'abc'));
  assert.ok(matchesPattern(['a', 'a'], 'aa'));
  assert.ok(!matchesPattern(['a', 'a'], 'a'), 'prefix and suffix may not overlap');
  assert.ok(!matchesPattern(['10.0.0.3'], '10.0.0.30'));
  assert.ok(matchesPattern(['', 'x', 'x', ''], '-x-x-'));
  assert.ok(!matchesPattern(['', 'x', 'x', ''], '-x-'));
});

test('comparisons: numbers as numbers, text with its digit runs as numbers; an absent attribute reads as empty', () => {
  assert.ok(collate('9', '10') < 0);
  assert.ok(collate('-1.5', '-1') < 0);
  assert.ok(collate('node-2', 'node-10') < 0);
  assert.ok(collate('10.0.0.9', '10.0.0.10') < 0);
  assert.equal(collate('a', 'a'), 0);
  const f = parseFilter('n=gt=2;n=le=10');
  assert.deepEqual(['1', '2', '3', '10', '11'].filter((n) => matchesFilter(f, { n })), ['3', '10']);
  assert.ok(matchesFilter(parseFilter('missing!=x'), {}));
  assert.ok(!matchesFilter(parseFilter('constructor==.*x'), {}), 'attributes are own properties only');
  assert.ok(matchesFilter(null, { a: 'b' }));
});

test('every malformed filter is an InputError naming filter, with a reason that says what is wrong', () => {
  assert.match(reasonOf('name'), /^expected one of == != =gt= =ge= =lt= =le= after name at the end/);
  assert.match(reasonOf('name=x'), /expected one of == != .* after name at position 5/);
  assert.match(reasonOf('name=like=x'), /^unknown operator "=like=" after name/);
  assert.match(reasonOf('name=='), /^name== needs a value at the end/);
  assert.match(reasonOf('name==  ;a==b'), /^name== needs a value at position 9/);
  assert.match(reasonOf('(name==x'), /^the "\(" at position 1 is not closed/);
  assert.match(reasonOf('name==x)'), /^unexpected "\)" at position 8/);
  assert.match(reasonOf('name==a(b'), /has a "\(" at position 8; write a literal \( as %28/);
  assert.match(reasonOf('a==1;'), /^expected a clause like name==value at the end/);
  assert.match(reasonOf(';a==1'), /^expected a clause like name==value at position 1/);
  assert.match(reasonOf('a==1,,b==2'), /at position 6/);
  assert.match(reasonOf('()'), /expected a clause/);
  assert.match(reasonOf('n==100%'), /has a % that does not start an escape/);
  assert.match(reasonOf('n=gt=1*'), /=gt= compares with a plain value/);
  assert.match(reasonOf(`${'a'.repeat(65)}==1`), /longer than 64 characters/);
  assert.match(reasonOf('x'.repeat(FILTER_MAX_LENGTH + 1)), new RegExp(`^is ${FILTER_MAX_LENGTH + 1} characters long; at most ${FILTER_MAX_LENGTH}$`));
  assert.match(reasonOf(Array.from({ length: FILTER_MAX_CLAUSES + 1 }, (_, i) => `a==${i}`).join(';')), new RegExp(`more than ${FILTER_MAX_CLAUSES} clauses`));
  assert.match(reasonOf(`${'('.repeat(FILTER_MAX_DEPTH + 1)}a==1${')'.repeat(FILTER_MAX_DEPTH + 1)}`), /nests parentheses deeper than/);
  assert.deepEqual(parseFilter(`${'('.repeat(FILTER_MAX_DEPTH)}a==1${')'.repeat(FILTER_MAX_DEPTH)}`), c('a', '==', '1'));
  assert.ok(parseFilter(Array.from({ length: FILTER_MAX_CLAUSES }, (_, i) => `a==${i}`).join(',')));
});

test('the hostile tester\'s inputs: the ReDoS filter is refused at once; an overlong one is refused by its length; worst-case patterns match in linear time', () => {
  const uuid = '0e4f2c4a-7b61-4d1e-9f0a-3c2b1a0f9e8d';
  withinBudget('the ReDoS filter', () => assert.match(reasonOf(`uuid==${uuid.slice(0, 8)}([0-9a-f-]*)*X`), /write a literal \( as %28/));
  withinBudget('a 33,000-character filter', () => assert.match(reasonOf(`uuid==${'a'.repeat(33_000)}`), /^is 33006 characters long/));
  // the same idea without parentheses: a pattern that is nearly all wildcards, against a long value that almost matches
  const value = `${'ab'.repeat(500)}`;
  const worst = parseFilter(`uuid==${'.*a'.repeat(Math.floor((FILTER_MAX_LENGTH - 10) / 3))}X`);
  withinBudget('matching a pattern of 330 wildcards', () => assert.equal(matchesFilter(worst, { uuid: value }), false));
  const many = parseFilter(Array.from({ length: FILTER_MAX_CLAUSES }, () => 'uuid==*a*b*a*b*a*X').join(','));
  withinBudget('50 wildcard clauses', () => assert.equal(matchesFilter(many, { uuid: value }), false));
});

/** Characters the grammar gives meaning to, and some it does not. */
const FIQL_CHARS = ['a', 'b', 'n', '_', '.', '-', '~', '0', '9', '=', '!', ';', ',', '(', ')', '*', '%', '2', 'A', 'g', 't', 'l', 'e', ' ', 'é', '\u0000', '[', '\\', '+', '?'];

const filterText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...FIQL_CHARS), maxLength: FILTER_MAX_LENGTH }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.string({ maxLength: FILTER_MAX_LENGTH + 50 }),
  // clauses that look right, joined at random
  fc.array(fc.tuple(fc.constantFrom('name', 'uuid', 'x'), fc.constantFrom(...COMPARISONS, '=', '=~=', ''), fc.string({ unit: fc.constantFrom(...FIQL_CHARS), maxLength: 40 })), { maxLength: 60 })
    .chain((cs) => fc.array(fc.constantFrom(';', ',', ';(', '),', ')', '('), { minLength: cs.length, maxLength: cs.length })
      .map((seps) => cs.map(([a, op, v], i) => `${a}${op}${v}${seps[i] ?? ''}`).join(''))),
);

test('property: any text up to the bound parses or is refused with an InputError naming filter, within 100 ms, and then matches within 100 ms', () => {
  const attrs = { name: 'web-1.example', uuid: 'ab'.repeat(500), x: '' };
  fc.assert(fc.property(filterText, (text) => {
    withinBudget(`parsing ${JSON.stringify(text.slice(0, 60))}`, () => {
      let f: Filter | null = null;
      try {
        f = parseFilter(text);
      } catch (e) {
        assert.ok(isFilterError(e), `threw ${String(e)}`);
        return;
      }
      assert.ok(text.length <= FILTER_MAX_LENGTH);
      assert.equal(typeof matchesFilter(f, attrs), 'boolean');
    });
  }), { seed: SEED, numRuns: 1500 });
});

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('property: a pattern matches exactly what the equivalent anchored regular expression matches (the oracle, built here from escaped pieces)', () => {
  const piece = fc.string({ unit: fc.constantFrom('a', 'b', '.'), maxLength: 3 });
  fc.assert(fc.property(fc.array(piece, { minLength: 1, maxLength: 5 }), fc.string({ unit: fc.constantFrom('a', 'b', '.'), maxLength: 12 }), (pieces, s) => {
    const oracle = new RegExp(`^${pieces.map(escapeRegExp).join('.*')}$`, 's');
    assert.equal(matchesPattern(pieces, s), oracle.test(s), `${JSON.stringify(pieces)} on ${JSON.stringify(s)}`);
  }), { seed: SEED, numRuns: 3000 });
});

/** Writes a filter back as text, escaping what a value may not hold as is. */
function print(f: Filter, top = true): string {
  if (f.type === 'constraint') {
    const esc = (p: string): string => p.replace(/[%;,()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).replace(/\.$/, '%2E');
    return `${f.attribute}${f.op}${f.pieces.map(esc).join('*')}`;
  }
  const s = f.items.map((x) => print(x, false)).join(f.type === 'and' ? ';' : ',');
  return top ? s : `(${s})`;
}

test('property: printing a filter and parsing it again gives the same filter', () => {
  const value = fc.string({ unit: fc.constantFrom('a', 'Z', '1', '.', ';', ',', '(', ')', '*', '%', '=', '!', '-'), minLength: 1, maxLength: 8 }).filter((v) => v.trim() === v);
  const constraint = fc.oneof(
    fc.record({ type: fc.constant('constraint' as const), attribute: fc.constantFrom('name', 'uuid', 'a.b'), op: fc.constantFrom('==' as const, '!=' as const), pieces: fc.array(fc.string({ unit: fc.constantFrom('a', '1', ';', '(', '%', ' '), maxLength: 4 }), { minLength: 1, maxLength: 3 }) }),
    fc.record({ type: fc.constant('constraint' as const), attribute: fc.constantFrom('name', 'ip'), op: fc.constantFrom('=gt=' as const, '=ge=' as const, '=lt=' as const, '=le=' as const), pieces: value.map((v) => [v]) }),
  ).filter((x) => x.pieces.join('*').trim() !== '' && x.pieces[0]?.trimStart() === x.pieces[0] && x.pieces.at(-1)?.trimEnd() === x.pieces.at(-1));
  const { filter } = fc.letrec<{ filter: Filter }>((tie) => ({
    filter: fc.oneof({ depthSize: 'small', withCrossShrink: true }, constraint, fc.record({ type: fc.constantFrom('and' as const, 'or' as const), items: fc.array(tie('filter'), { minLength: 2, maxLength: 3 }) })),
  }));
  fc.assert(fc.property(filter, (f) => {
    const text = print(f);
    fc.pre(text.length <= FILTER_MAX_LENGTH);
    let parsed: Filter | null;
    try {
      parsed = parseFilter(text);
    } catch (e) {
      // only the bounds may refuse a well-formed filter
      assert.match((e as Error).message, /clauses|deeper/, text);
      return;
    }
    assert.deepEqual(normalize(parsed), normalize(f), text);
  }), { seed: SEED, numRuns: 1000 });
});

/** Plain objects (fast-check's records have no prototype); a group inside a group of its type is its items in place. */
function normalize(f: Filter | null): unknown {
  if (!f) return f;
  if (f.type === 'constraint') return { type: f.type, attribute: f.attribute, op: f.op, pieces: [...f.pieces] };
  return { type: f.type, items: f.items.flatMap((x) => (x.type === f.type ? (normalize(x) as { items: unknown[] }).items : [normalize(x)])) };
}
