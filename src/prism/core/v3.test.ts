import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../shared/errors.ts';
import { clusterEntity, hostEntity, hostAttrs, listOf, parseListRequest, taskOf, v3Error } from './v3.ts';
import { healthOf, type ClusterSnapshot, type MemberView } from './snapshot.ts';
import { disks, storageContainers, storagePools, v2List, virtualDisks } from './v2.ts';
import { summaryPage } from './page.ts';

const GiB = 1024 ** 3;

function member(i: number, o: Partial<MemberView> = {}): MemberView {
  return {
    serial: `SN${i}`, cvmIp: `10.0.1.${i}`, hostIp: `10.0.0.${i}`, hostUuid: `host-${i}`, problems: [],
    cvm: {
      serial: `SN${i}`, cvmIp: `10.0.1.${i}`, hostIp: `10.0.0.${i}`, hypervisorVersion: '1.0.0', nosVersion: '2.0.0', configured: true, clusterId: 'c1', cluster: null,
      services: [{ name: 'genesis', state: 'up', pid: 1, restarts: 0 }, { name: 'prism', state: 'up', pid: 2, restarts: 0 }],
      disks: [{ serial: `D${i}`, mediaType: 'SSD', capacityBytes: 10 * GiB, usedBytes: GiB, ok: true }],
    },
    host: {
      serial: `SN${i}`, hostname: `node-${i}`, hostIp: `10.0.0.${i}`, hypervisorVersion: '1.0.0', bundleVersion: '1.0.0', uptimeS: 5,
      cvm: { ip: `10.0.1.${i}`, state: 'running', pid: 3, restarts: 0, nosVersion: '2.0.0' }, link: { state: 'up', detail: '' },
      hardware: { model: 'CVG-1000', block: { serial: 'BLK1', position: 'A' }, bmcIp: `10.0.2.${i}`, cpu: { model: 'Xeon', sockets: 2, cores: 16, threads: 32, speedMHz: 2000 }, memoryMiB: 65536 },
    },
    ...o,
  };
}

function snapshot(members: MemberView[] = [member(1), member(2), member(3)]): ClusterSnapshot {
  return {
    cluster: { clusterId: 'c1', name: 'lab', redundancyFactor: 2, vip: '10.0.9.1', members: members.map((m) => ({ serial: m.serial, cvmIp: m.cvmIp, hostIp: m.hostIp })), store: ['10.0.1.1', '10.0.1.2', '10.0.1.3'], createdAt: '2026-01-01T00:00:00.000Z', dns: ['10.0.0.53'] },
    members,
    pool: {
      pool: { name: 'default-pool', capacityBytes: 30 * GiB, disks: members.map((m) => ({ serial: `D${m.serial.slice(2)}`, node: m.serial, cvmIp: m.cvmIp, mediaType: 'SSD', capacityBytes: 10 * GiB })) },
      provisionedBytes: GiB, containers: 1, vdisks: 1,
      usage: {
        capacityBytes: 30 * GiB, usedBytes: 3 * GiB, freeBytes: 27 * GiB, healthyCapacityBytes: 30 * GiB, disks: [], nodes: [],
        containers: [{ name: 'default-container', replicationFactor: 2, vdisks: 1, provisionedBytes: GiB, logicalBytes: GiB / 2, physicalBytes: GiB }],
      },
    },
    containers: [{ name: 'default-container', replicationFactor: 2, createdAt: '2026-01-01T00:00:00.000Z', uuid: 'ct-1' }],
    vdisks: [{ name: 'vd1', container: 'default-container', sizeBytes: GiB, uuid: 'vd-1', createdAt: '2026-01-01T00:00:00.000Z' }],
    store: { members: [], healthy: 3, quorum: true },
    leader: '10.0.1.2',
  };
}

test('list requests: defaults, kind, bounds and filters are checked and name their field', () => {
  const r = parseListRequest({}, 'host');
  assert.equal(r.length, 20);
  assert.equal(r.offset, 0);
  assert.throws(() => parseListRequest({ kind: 'vm' }, 'host'), (e: unknown) => e instanceof InputError && e.field === 'kind');
  assert.throws(() => parseListRequest({ length: 501 }, 'host'), (e: unknown) => e instanceof InputError && e.field === 'length');
  assert.throws(() => parseListRequest({ offset: -1 }, 'host'), (e: unknown) => e instanceof InputError && e.field === 'offset');
  assert.throws(() => parseListRequest({ filter: 'name' }, 'host'), (e: unknown) => e instanceof InputError && e.field === 'filter');
  assert.throws(() => parseListRequest({ filter: 'name==(' }, 'host'), (e: unknown) => e instanceof InputError && e.field === 'filter');
  assert.throws(() => parseListRequest({ sort_order: 'UP' }, 'host'), (e: unknown) => e instanceof InputError && e.field === 'sort_order');
  assert.throws(() => parseListRequest([], 'host'), (e: unknown) => e instanceof InputError && e.field === 'body');
});

test('listOf filters (== and != with patterns, ; as and), sorts numerically and pages with total_matches', () => {
  const s = snapshot([member(1), member(2), member(3), member(10)]);
  const hosts = s.members.map((m) => hostEntity(m, s));
  const names = (body: unknown): string[] => listOf(hosts, parseListRequest(body, 'host'), hostAttrs).entities.map((e) => String(e.metadata['name']));
  assert.deepEqual(names({ sort_attribute: 'name' }), ['node-1', 'node-2', 'node-3', 'node-10']);
  assert.deepEqual(names({ filter: 'name==node-1.*' }), ['node-1', 'node-10']);
  assert.deepEqual(names({ filter: 'name!=node-1.*;hypervisor_ip==10.0.0.3' }), ['node-3']);
  const page = listOf(hosts, parseListRequest({ length: 2, offset: 1, sort_attribute: 'name', sort_order: 'DESCENDING' }, 'host'), hostAttrs);
  assert.deepEqual(page.entities.map((e) => e.metadata['name']), ['node-3', 'node-2']);
  assert.deepEqual(page.metadata, { kind: 'host', total_matches: 4, length: 2, offset: 1 });
  assert.throws(() => listOf(hosts, parseListRequest({ filter: 'colour==x' }, 'host'), hostAttrs), (e: unknown) => e instanceof InputError && e.field === 'filter');
  assert.throws(() => listOf(hosts, parseListRequest({ sort_attribute: 'colour' }, 'host'), hostAttrs), (e: unknown) => e instanceof InputError && e.field === 'sort_attribute');
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
});

test('the summary page escapes what it shows and lists every host with its services', () => {
  const s = snapshot();
  s.cluster.name = 'lab<script>';
  const html = summaryPage(s, 'admin');
  assert.doesNotMatch(html, /<script>/);
  assert.match(html, /lab&lt;script&gt;/);
  assert.equal(html.match(/<tr data-serial=/g)?.length, 3);
  assert.match(html, /10\.0\.1\.2 <span class="b leader">Prism leader<\/span>/);
  assert.match(html, /<span class="b ok">OK<\/span>/);
  const down = summaryPage(snapshot([member(1), member(2, { cvm: null })]), 'admin');
  assert.match(down, /<span class="b warning">WARNING<\/span>/);
  assert.match(down, /CVM 10\.0\.1\.2 \(SN2\) is down/);
});
