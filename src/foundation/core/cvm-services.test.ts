import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateServices, expectedServices, type CvmObservation } from './cvm-services.ts';
import type { CvmStatus, ServiceView } from '../../cvm/protocol/cluster.ts';

const ID = 'c-1';
const STORE = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];
const sv = (name: string, state = 'up', extra: Partial<ServiceView> = {}): ServiceView => ({ name, state, pid: 100, restarts: 0, ...extra });
const healthy = (ip: string): ServiceView[] => [sv('genesis', 'up', { restarts: null }), ...(STORE.includes(ip) ? [sv('etcd')] : []), sv('prism'), sv('lcm'), sv('stargate', 'up', { restarts: null, partOf: 'genesis' })];
const status = (ip: string, services = healthy(ip), over: Partial<CvmStatus> = {}): CvmObservation => ({
  cvmIp: ip, error: null,
  status: { serial: `S${ip.slice(-1)}`, cvmIp: ip, hostIp: '', hypervisorVersion: '1', nosVersion: '1', configured: true, clusterId: ID, cluster: null, services, disks: [], ...over },
});

test('a store member runs etcd besides genesis, prism, lcm and stargate', () => {
  assert.deepEqual(expectedServices('10.0.1.1', STORE), ['genesis', 'etcd', 'prism', 'lcm', 'stargate']);
  assert.deepEqual(expectedServices('10.0.1.4', STORE), ['genesis', 'prism', 'lcm', 'stargate']);
});

test('every expected service up on every member: PASS, listing them (stargate in genesis)', () => {
  const v = evaluateServices(ID, STORE, ['10.0.1.1', '10.0.1.4'].map((ip) => status(ip)));
  assert.equal(v.ok, true);
  assert.equal(v.evidence, 'every service up on 2/2 CVMs: 10.0.1.1: genesis, etcd, prism, lcm, stargate (in genesis); 10.0.1.4: genesis, prism, lcm, stargate (in genesis)');
});

test('a service down, restarting or missing is a FAIL naming the CVM, the service and its state', () => {
  const v = evaluateServices(ID, STORE, [
    status('10.0.1.1'),
    status('10.0.1.2', [sv('genesis'), sv('etcd'), sv('prism', 'restarting', { restarts: 4, pid: null }), sv('lcm'), sv('stargate', 'down', { partOf: 'genesis', detail: 'NBD not listening, repair loop not running (listen EADDRINUSE)' })]),
    status('10.0.1.3', [sv('genesis'), sv('prism'), sv('stargate')]),  // neither etcd nor lcm
  ]);
  assert.equal(v.ok, false);
  assert.deepEqual(v.problems, [
    'CVM 10.0.1.2 (S2): prism restarting after 4 restart(s), stargate down (NBD not listening, repair loop not running (listen EADDRINUSE))',
    'CVM 10.0.1.3 (S3): etcd not running, lcm not running',
  ]);
  assert.equal(v.evidence, v.problems.join('; '));
});

test('a member that does not answer, or is not in this cluster, is a FAIL naming it', () => {
  const v = evaluateServices(ID, STORE, [
    { cvmIp: '10.0.1.1', status: null, error: 'connect ECONNREFUSED' },
    status('10.0.1.2', healthy('10.0.1.2'), { configured: false, clusterId: null }),
    status('10.0.1.3', healthy('10.0.1.3'), { clusterId: 'c-9' }),
  ]);
  assert.deepEqual(v.problems, [
    'CVM 10.0.1.1 does not answer (connect ECONNREFUSED)',
    'CVM 10.0.1.2 (S2) is not a member of cluster c-1 (unconfigured)',
    'CVM 10.0.1.3 (S3) is not a member of cluster c-1 (it is in cluster c-9)',
  ]);
  assert.equal(evaluateServices(ID, STORE, []).ok, false, 'nothing seen is nothing passed');
});
