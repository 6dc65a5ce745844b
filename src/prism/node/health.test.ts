import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GiB, member, snapshot } from '../core/fixtures.ts';
import type { ClusterSnapshot } from '../core/snapshot.ts';
import { FakeHealth, basicAuth, testPrism } from './fakes.ts';

const auth = { authorization: basicAuth() };
const JSON_CT = { 'content-type': 'application/json' };

test('a failed disk raises a critical alert with its cause and resolution; it is acknowledged through the API and resolves itself once the disk is back', async () => {
  let snap: ClusterSnapshot = snapshot();
  const health = new FakeHealth(() => ({ snapshot: snap, resiliency: null, vms: [], certificateDaysLeft: 365 }));
  const { app } = await testPrism({ health, snapshot: snap });
  const checks = await app.inject({ method: 'GET', url: '/api/nutanix/v2.0/health_checks', headers: auth });
  assert.equal(checks.statusCode, 200, checks.body);
  assert.ok(checks.json().entities.some((c: any) => c.id === 'hardware/disk_online_check' && c.status === 'PASS'));
  const list = async (q = ''): Promise<any[]> => (await app.inject({ method: 'GET', url: `/api/nutanix/v2.0/alerts${q}`, headers: auth })).json().entities;
  const critical = async (): Promise<any[]> => (await list('?resolved=false')).filter((a) => a.severity === 'kCritical');
  assert.deepEqual(await critical(), []);

  snap = snapshot([member(1), member(2, { cvm: { ...member(2).cvm!, disks: [{ serial: 'D2', mediaType: 'SSD', capacityBytes: 10 * GiB, usedBytes: 0, ok: false }] } }), member(3)]);
  await app.inject({ method: 'GET', url: '/api/nutanix/v2.0/health_checks', headers: auth });
  const [alert] = await critical();
  assert.ok(alert, 'an alert');
  assert.equal(alert.check_id, 'hardware/disk_online_check');
  assert.deepEqual(alert.affected_entities, [{ entity_type: 'disk', id: 'D2', entity_name: 'disk D2 on SN2' }]);
  assert.match(alert.possible_causes[0].resolution[0], /Replace the disk/);
  assert.equal(alert.acknowledged, false);

  const ack = await app.inject({ method: 'POST', url: '/api/nutanix/v2.0/alerts/acknowledge', headers: { ...auth, ...JSON_CT }, payload: JSON.stringify({ alert_ids: [alert.id, 'nope'] }) });
  assert.deepEqual(ack.json(), { successful_alert_ids: [alert.id], unsuccessful_alert_ids: ['nope'] });
  const one = (await app.inject({ method: 'GET', url: `/api/nutanix/v2.0/alerts/${String(alert.id)}`, headers: auth })).json();
  assert.deepEqual([one.acknowledged, one.acknowledged_by_username, one.resolved], [true, 'admin', false]);

  snap = snapshot();
  const text = await app.inject({ method: 'GET', url: '/api/converge/v1/health?format=text', headers: auth });
  assert.match(text.body, /disk_online_check +disk D2 on SN2 +\[ PASS \]/);
  assert.deepEqual(await critical(), [], 'resolved on its own');
  const resolved = (await list('?resolved=true'))[0];
  assert.deepEqual([resolved.id, resolved.resolved_by_username], [alert.id, 'auto']);

  const bad = await app.inject({ method: 'POST', url: '/api/nutanix/v2.0/alerts/resolve', headers: { ...auth, ...JSON_CT }, payload: '{"alert_ids":"all"}' });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error_code.validation_errors[0].field, 'alert_ids');
  assert.equal((await app.inject({ method: 'GET', url: '/api/nutanix/v2.0/alerts?severity=loud', headers: auth })).statusCode, 400);
  await app.close();
});
