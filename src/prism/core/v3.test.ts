import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../shared/errors.ts';
import { CLUSTER_ATTRIBUTES, HOST_ATTRIBUTES, clusterEntity, hostEntity, hostAttrs, listOf, parseListRequest, taskOf, v3Error } from './v3.ts';
import { healthOf } from './snapshot.ts';
import { GiB, member, snapshot } from './fixtures.ts';
import { disks, storageContainers, storagePools, v2List, virtualDisks } from './v2.ts';

const host = (body: unknown): ReturnType<typeof parseListRequest> => parseListRequest(body, 'host', HOST_ATTRIBUTES);
const fails = (field: string) => (e: unknown): boolean => e instanceof InputError && e.field === field;

test('list requests: defaults, kind, bounds, filters and sort attributes are checked and name their field', () => {
  const r = host({});
  assert.equal(r.length, 20);
  assert.equal(r.offset, 0);
  assert.equal(r.filter, null);
  assert.throws(() => host({ kind: 'vm' }), fails('kind'));
  assert.throws(() => host({ length: 501 }), fails('length'));
  assert.throws(() => host({ offset: -1 }), fails('offset'));
  assert.throws(() => host({ filter: 'name' }), fails('filter'));
  assert.throws(() => host({ filter: 'name==(' }), fails('filter'));
  assert.throws(() => host({ filter: 42 }), fails('filter'));
  assert.throws(() => host({ sort_order: 'UP' }), fails('sort_order'));
  assert.throws(() => host([]), fails('body'));
  assert.throws(() => host('name==x'), fails('body'));
});

test('list requests name only the attributes of their kind, before anything is read: an empty cluster checks them too', () => {
  assert.throws(() => host({ filter: 'colour==x' }), (e: unknown) => fails('filter')(e) && /^filter: unknown attribute colour for host; one of name, uuid, serial_number/.test((e as Error).message));
  assert.throws(() => host({ filter: 'name==a,(uuid==b;colour!=c)' }), /unknown attribute colour/);
  assert.throws(() => host({ sort_attribute: 'colour' }), fails('sort_attribute'));
  assert.throws(() => host({ sort_attribute: 7 }), fails('sort_attribute'));
  assert.throws(() => parseListRequest({ sort_attribute: 'serial_number' }, 'cluster', CLUSTER_ATTRIBUTES), fails('sort_attribute'));
  assert.equal(parseListRequest({ sort_attribute: 'name', filter: 'uuid==c.*' }, 'cluster', CLUSTER_ATTRIBUTES).sortAttribute, 'name');
});

test('listOf filters (==, != and comparisons, wildcards, ; as and, , as or), sorts numerically and pages with total_matches', () => {
  const s = snapshot([member(1), member(2), member(3), member(10)]);
  const hosts = s.members.map((m) => hostEntity(m, s));
  const names = (body: unknown): string[] => listOf(hosts, host(body), hostAttrs).entities.map((e) => String(e.metadata['name']));
  assert.deepEqual(names({ sort_attribute: 'name' }), ['node-1', 'node-2', 'node-3', 'node-10']);
  assert.deepEqual(names({ sort_attribute: 'hypervisor_ip', sort_order: 'DESCENDING' }), ['node-10', 'node-3', 'node-2', 'node-1']);
  assert.deepEqual(names({ filter: 'name==node-1.*' }), ['node-1', 'node-10']);
  assert.deepEqual(names({ filter: 'name==node-1*' }), ['node-1', 'node-10']);
  assert.deepEqual(names({ filter: 'name==node-1' }), ['node-1'], 'without a wildcard a value is matched whole');
  assert.deepEqual(names({ filter: 'name==node-[23]' }), [], 'brackets are literal: no regular expressions');
  assert.deepEqual(names({ filter: 'name!=node-1.*;hypervisor_ip==10.0.0.3' }), ['node-3']);
  assert.deepEqual(names({ filter: 'name==node-2,name==node-3', sort_attribute: 'name' }), ['node-2', 'node-3']);
  assert.deepEqual(names({ filter: 'hypervisor_ip=gt=10.0.0.2', sort_attribute: 'name' }), ['node-3', 'node-10'], 'digit runs compare as numbers');
  assert.deepEqual(names({ filter: '(name==node-1,name==node-2);controller_vm_ip=le=10.0.1.1' }), ['node-1']);
  const page = listOf(hosts, host({ length: 2, offset: 1, sort_attribute: 'name', sort_order: 'DESCENDING' }), hostAttrs);
  assert.deepEqual(page.entities.map((e) => e.metadata['name']), ['node-3', 'node-2']);
  assert.deepEqual(page.metadata, { kind: 'host', total_matches: 4, length: 2, offset: 1 });
  assert.deepEqual(listOf(hosts, host({ offset: Number.MAX_SAFE_INTEGER }), hostAttrs).metadata, { kind: 'host', total_matches: 4, length: 0, offset: Number.MAX_SAFE_INTEGER });
});

test('the cluster entity: metadata, spec and status in v3 shape; a lost quorum makes it READ_ONLY and not available', () => {
  const s = snapshot();
  const c = clusterEntity(s);
  assert.equal(c.api_version, '3.1');
  assert.deepEqual([c.metadata['kind'], c.metadata['uuid'], c.metadata['name']], ['cluster', 'c1', 'lab']);
  const st = c.status as any;
  assert.equal(st.resources.config.redundancy_factor, 2);
  assert.equal(st.resources.config.software_map.NOS.version, '2.0.0');
  assert.equal(st.resources.config.operation_mode, 'NORMAL');
  assert.equal(st.resources.network.external_ip, '10.0.9.1');
  assert.deepEqual(st.resources.network.name_server_ip_list, ['10.0.0.53']);
  assert.equal(st.resources.nodes.hypervisor_server_list.length, 3);
  const lost = clusterEntity({ ...s, store: { members: [], healthy: 1, quorum: false } });
  assert.equal((lost.status as any).resources.config.operation_mode, 'READ_ONLY');
  assert.equal((lost.status as any).resources.config.is_available, false);
});

test('a host whose CVM does not answer is in ERROR with the reason', () => {
  const s = snapshot([member(1), member(2, { cvm: null, problems: ['CVM 10.0.1.2: connection refused'] })]);
  const h = hostEntity(s.members[1]!, s) as any;
  assert.equal(h.status.state, 'ERROR');
  assert.equal(h.status.resources.controller_vm.state, 'DOWN');
  assert.match(h.status.resources.message_list[0].message, /connection refused/);
  assert.equal(hostEntity(s.members[0]!, s).status['state'], 'COMPLETE');
});

test('health: OK when all is up; WARNING for a down CVM or failed disk; CRITICAL without quorum or beyond the RF', () => {
  assert.deepEqual(healthOf(snapshot()), { state: 'OK', reasons: [] });
  const oneDown = healthOf(snapshot([member(1), member(2), member(3, { cvm: null })]));
  assert.equal(oneDown.state, 'WARNING');
  assert.match(oneDown.reasons.join(), /CVM 10\.0\.1\.3 \(SN3\) is down/);
  assert.equal(healthOf(snapshot([member(1), member(2, { cvm: null }), member(3, { cvm: null })])).state, 'CRITICAL');
  assert.equal(healthOf({ ...snapshot(), store: { members: [], healthy: 1, quorum: false } }).state, 'CRITICAL');
});

test('tasks and errors in the reference shapes', () => {
  const t = taskOf({ uuid: 't1', operationType: 'kVDiskCreate', status: 'FAILED', percentage: 10, message: 'failed', entities: [], error: 'disk full', createdAt: 'a', startedAt: 'b', completedAt: 'c' }, 'c1');
  assert.equal(t['status'], 'FAILED');
  assert.equal(t['error_detail'], 'disk full');
  assert.equal(t['percentage_complete'], 10);
  assert.deepEqual(v3Error(404, 'host', 'host not found: x', 'CVG_ERR_NOT_FOUND'), { api_version: '3.1', code: 404, kind: 'host', state: 'ERROR', message_list: [{ message: 'host not found: x', reason: 'CVG_ERR_NOT_FOUND', details: {} }] });
});

test('v2.0 storage shapes: pool capacity, container usage at its RF, vdisks with their container, disks per node; paging', () => {
  const s = snapshot();
  const pool = storagePools(s)[0] as any;
  assert.equal(pool.capacity, 30 * GiB);
  assert.equal(pool.disks.length, 3);
  const ct = storageContainers(s)[0] as any;
  assert.equal(ct.replication_factor, 2);
  assert.equal(ct.usage_stats['storage.user_usage_bytes'], String(GiB / 2));
  assert.equal(ct.usage_stats['storage.usage_bytes'], String(GiB));
  assert.equal(ct.usage_stats['storage.user_free_bytes'], String(27 * GiB / 2));
  const vd = virtualDisks(s)[0] as any;
  assert.equal(vd.storage_container_uuid, 'ct-1');
  assert.equal(vd.disk_capacity_in_bytes, GiB);
  const ds = disks(s) as any[];
  assert.deepEqual(ds.map((d) => [d.serial_number, d.node_uuid, d.online, d.storage_tier_name]), [['D1', 'host-1', true, 'SSD'], ['D2', 'host-2', true, 'SSD'], ['D3', 'host-3', true, 'SSD']]);
  const page = v2List([1, 2, 3, 4, 5], { count: '2', page: '2' });
  assert.deepEqual(page.entities, [3, 4]);
  assert.deepEqual(page.metadata, { grand_total_entities: 5, total_entities: 5, count: 2, start_index: 2, end_index: 3, page: 2 });
  assert.throws(() => v2List([1], { count: '0' }), (e: unknown) => e instanceof InputError && e.field === 'count');
  for (const bad of ['1e300', '1.5', '-1', ' 2', '0x10', '99999999999999999', ['1', '2']]) assert.throws(() => v2List([1], { page: bad }), (e: unknown) => e instanceof InputError && e.field === 'page', String(bad));
  assert.deepEqual(v2List([1, 2], { count: String(Number.MAX_SAFE_INTEGER), page: String(Number.MAX_SAFE_INTEGER) }).entities, []);
});
