import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InputError } from '../../shared/errors.ts';
import { matchesOData, parseODataFilter, parseOrderBy } from './odata.ts';

const vm = { name: "web-1 it's", powerState: 'ON', numSockets: 2, cluster: { extId: 'c1' }, nics: [{ networkInfo: { subnet: { extId: 's1' } } }, { networkInfo: { subnet: { extId: 's2' } } }] };
const m = (f: string): boolean => matchesOData(parseODataFilter(f), vm);

test('the filters the SDKs and Ansible send match as OData says', () => {
  assert.equal(m("name eq 'web-1 it''s'"), true, "'' is a quote");
  assert.equal(m("name eq 'web-2'"), false);
  assert.equal(m("name ne 'web-2'"), true);
  assert.equal(m("startswith(name, 'web')"), true);
  assert.equal(m("contains(name,'b-1')"), true);
  assert.equal(m("endswith(name,'x')"), false);
  assert.equal(m('numSockets gt 1 and numSockets le 2'), true);
  assert.equal(m('numSockets ge 3 or powerState eq \'ON\''), true);
  assert.equal(m("not (powerState eq 'ON')"), false);
  assert.equal(m("cluster/extId eq 'c1'"), true, 'a path into an object');
  assert.equal(m("nics/networkInfo/subnet/extId eq 's2'"), true, 'a list matches if any element does');
  assert.equal(m("powerState eq Vmm.Ahv.Config.PowerState'ON'"), true, 'an enum literal as the SDK writes it');
  assert.equal(matchesOData(parseODataFilter(''), vm), true);
});

test('a bad filter is a 400 naming $filter, and no input makes the parser run long', () => {
  for (const bad of ["name eq 'x", 'name eqq 1', 'name eq', '(name eq 1', 'name eq 1 extra', 'startswith(name, 3)', '#', 'eq eq 1', '1 eq name']) {
    assert.throws(() => parseODataFilter(bad), (e: unknown) => e instanceof InputError && e.field === '$filter', bad);
  }
  assert.throws(() => parseODataFilter('('.repeat(20) + 'a eq 1' + ')'.repeat(20)), /nested deeper/);
  assert.throws(() => parseODataFilter(Array.from({ length: 60 }, () => 'a eq 1').join(' and ')), /more than 50 clauses/);
  assert.throws(() => parseODataFilter('x'.repeat(1001)), /longer than 1000/);
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => {
    const t0 = performance.now();
    try {
      matchesOData(parseODataFilter(s), vm);
    } catch (e) {
      assert.ok(e instanceof InputError, String(e));
    }
    assert.ok(performance.now() - t0 < 100);
  }), { seed: 20261204, numRuns: 2000 });
});

test('$orderby: by one or more properties, ascending or descending; a bad one names $orderby', () => {
  const xs = [{ name: 'b', n: 2 }, { name: 'a', n: 2 }, { name: 'c', n: 1 }];
  assert.deepEqual([...xs].sort(parseOrderBy('name')!).map((x) => x.name), ['a', 'b', 'c']);
  assert.deepEqual([...xs].sort(parseOrderBy('n desc, name asc')!).map((x) => x.name), ['a', 'b', 'c']);
  assert.deepEqual([...xs].sort(parseOrderBy('n, name desc')!).map((x) => x.name), ['c', 'b', 'a']);
  assert.equal(parseOrderBy(''), null);
  assert.throws(() => parseOrderBy('name sideways'), (e: unknown) => e instanceof InputError && e.field === '$orderby');
});
