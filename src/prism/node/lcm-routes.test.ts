import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { FakeLcm, FakeVmService, basicAuth, testPrism } from './fakes.ts';

const auth = { authorization: basicAuth() };
const JSON_CT = { 'content-type': 'application/json' };

test('v4 lifecycle: every node\'s hypervisor, storage OS, BMC, BIOS and drive firmware as typed entities with the repository\'s versions; one by extId; unknown → 404 in the lifecycle error', async () => {
  const lcm = new FakeLcm();
  const { app } = await testPrism({ lcm: lcm.call });
  const info = await app.inject({ method: 'OPTIONS', url: '/api/lifecycle/unversioned/info', headers: { ...auth, ...JSON_CT } });
  assert.deepEqual(info.json(), { data: 'v4.3' });
  const r = await app.inject({ method: 'GET', url: '/api/lifecycle/v4.0/resources/entities', headers: auth });
  assert.equal(r.statusCode, 200, r.body);
  const j = r.json();
  assert.equal(j.$objectType, 'lifecycle.v4.resources.ListEntitiesApiResponse');
  assert.equal(j.data.length, 18, '3 nodes × (4 components + 2 drives)');
  assert.ok(j.data.every((e: any) => e.$objectType === 'lifecycle.v4.resources.Entity' && e.locationInfo.locationType === 'NODE'));
  const hv = j.data.find((e: any) => e.entityClass === 'Hypervisor' && e.deviceId === 'SN1');
  assert.deepEqual([hv.entityType, hv.entityVersion, hv.locationInfo.uuid], ['SOFTWARE', '1.0.0', 'host-1']);
  assert.deepEqual(hv.availableVersions.map((v: any) => [v.version, v.status, v.isEnabled]), [['1.1.0', 'LATEST', true]]);
  assert.equal(hv.availableVersions[0].dependencies[0].entityClass, 'Core Cluster', 'the storage OS goes with it');
  const aos = j.data.find((e: any) => e.entityClass === 'Core Cluster' && e.deviceId === 'SN1');
  assert.deepEqual(aos.availableVersions.map((v: any) => v.version), ['2.1.0']);
  const bmc = j.data.find((e: any) => e.entityClass === 'BMC' && e.deviceId === 'SN1');
  assert.deepEqual([bmc.entityType, bmc.entityVersion, bmc.availableVersions[0].version, bmc.availableVersions[0].isEnabled], ['FIRMWARE', '2.5.0', '3.0.0', false]);
  const disk = j.data.find((e: any) => e.entityClass === 'Disk' && e.deviceId === 'SN2/Disk.Bay.1');
  assert.deepEqual([disk.entityType, disk.entityModel, disk.entityVersion, disk.availableVersions, disk.locationInfo.uuid], ['FIRMWARE', 'Samsung PM893 1.92TB', 'JXTC104Q', [], 'host-2']);
  assert.notEqual(disk.extId, j.data.find((e: any) => e.deviceId === 'SN2/Disk.Bay.0').extId);
  // $filter as the SDKs send it
  const f = (await app.inject({ method: 'GET', url: `/api/lifecycle/v4.0/resources/entities?$filter=${encodeURIComponent("entityClass eq 'BIOS'")}`, headers: auth })).json();
  assert.equal(f.data.length, 3);
  const one = await app.inject({ method: 'GET', url: `/api/lifecycle/v4.0/resources/entities/${String(hv.extId)}`, headers: auth });
  assert.equal(one.json().data.extId, hv.extId);
  const none = await app.inject({ method: 'GET', url: '/api/lifecycle/v4.0/resources/entities/nope', headers: auth });
  assert.equal(none.statusCode, 404);
  assert.equal(none.json().$objectType, 'lifecycle.v4.error.ErrorResponse');
  await app.close();
});

test('v4 lifecycle: prechecks and upgrade take entityUpdateSpecs, refused naming the spec; the upgrade\'s task is its record (RUNNING with progress), each step reached a subtask (v4, v3), status says the operation', async () => {
  const lcm = new FakeLcm();
  const { app, tasks } = await testPrism({ lcm: lcm.call, cvm: new FakeVmService().call });
  const ents = (await app.inject({ method: 'GET', url: '/api/lifecycle/v4.0/resources/entities', headers: auth })).json().data as any[];
  const hv = ents.find((e) => e.entityClass === 'Hypervisor');
  const aos = ents.find((e) => e.entityClass === 'Core Cluster');
  const bios = ents.find((e) => e.entityClass === 'BIOS');
  const post = (action: string, body: unknown): Promise<LightMyRequestResponse> => app.inject({ method: 'POST', url: `/api/lifecycle/v4.0/operations/$actions/${action}`, headers: { ...auth, ...JSON_CT }, payload: JSON.stringify(body) });
  for (const [body, field] of [
    [{}, 'entityUpdateSpecs'],
    [{ entityUpdateSpecs: [{ entityUuid: 'nope', toVersion: '1.1.0' }] }, 'entityUpdateSpecs[0].entityUuid'],
    [{ entityUpdateSpecs: [{ entityUuid: hv.extId, toVersion: '9.9.9' }] }, 'entityUpdateSpecs[0].toVersion'],
    [{ entityUpdateSpecs: [{ entityUuid: bios.extId, toVersion: '1.3.0' }] }, 'entityUpdateSpecs[0].entityUuid'],
  ] as const) {
    const r = await post('upgrade', body);
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(r.json().data.error[0].argumentsMap?.field ?? field, field, r.body);
    assert.match(r.json().data.error[0].message, new RegExp(`^${field.replace(/[[\].]/g, '\\$&')}: `));
  }
  assert.equal(lcm.calls.filter((c) => c === 'POST /lcm/upgrade').length, 0, 'nothing started');

  const pre = await post('prechecks', { entityUpdateSpecs: [{ entityUuid: hv.extId, toVersion: '1.1.0' }, { entityUuid: aos.extId, toVersion: '2.1.0' }] });
  assert.equal(pre.statusCode, 202, pre.body);
  assert.equal(pre.json().data.$objectType, 'prism.v4.config.TaskReference');
  assert.ok([...tasks.tasks.values()].some((t) => t.operationType === 'LcmPrechecks'));

  const up = await post('upgrade', { entityUpdateSpecs: [{ entityUuid: hv.extId, toVersion: '1.1.0' }] });
  assert.equal(up.statusCode, 202, up.body);
  assert.ok(lcm.calls.includes('POST /lcm/upgrade'));
  const extId = up.json().data.extId as string;
  assert.equal(extId, `ZXJnb24=:${lcm.record?.id ?? ''}`);
  for (let i = 0; i < 10; i++) lcm.advance();
  const task = (await app.inject({ method: 'GET', url: `/api/prism/v4.0/config/tasks/${extId}`, headers: auth })).json().data;
  assert.deepEqual([task.status, task.operation, task.progressPercentage], ['RUNNING', 'LcmUpgrade', 48], 'one node done and 3 of 7 steps of the next: (1 + 3/7) / 3');
  // each step reached is a task of its own, the upgrade its parent: in v4's and v3's task lists, and by uuid
  const list = (await app.inject({ method: 'GET', url: '/api/prism/v4.0/config/tasks', headers: auth })).json().data as any[];
  const steps = list.filter((t) => t.operation === 'LcmUpgradeStep');
  assert.equal(steps.length, 7 + 4, 'the first node\'s 7 steps done, the second\'s 3 done and 1 running');
  assert.ok(steps.every((t) => t.parentTask.extId === extId));
  assert.deepEqual(steps.map((t) => t.status).sort(), [...Array(10).fill('SUCCEEDED'), 'RUNNING'].sort());
  const running = steps.find((t) => t.status === 'RUNNING');
  assert.match(running.operationDescription, /^node-2: /);
  const one = (await app.inject({ method: 'GET', url: `/api/prism/v4.0/config/tasks/${String(running.extId)}`, headers: auth })).json().data;
  assert.equal(one.extId, running.extId);
  const v3 = (await app.inject({ method: 'POST', url: '/api/nutanix/v3/tasks/list', headers: { ...auth, ...JSON_CT }, payload: '{"kind":"task"}' })).json().entities as any[];
  const v3up = v3.find((t) => t.operation_type === 'LcmUpgrade');
  assert.deepEqual([v3up.status, v3up.percentage_complete, v3up.entity_reference_list[0].kind], ['RUNNING', 48, 'cluster']);
  assert.equal(v3.filter((t) => t.parent_task_reference?.uuid === v3up.uuid).length, 11);
  const v3step = (await app.inject({ method: 'GET', url: `/api/nutanix/v3/tasks/${String(running.extId).replace('ZXJnb24=:', '')}`, headers: auth })).json();
  assert.equal(v3step.operation_type, 'LcmUpgradeStep');
  const status = (await app.inject({ method: 'GET', url: '/api/lifecycle/v4.0/resources/status', headers: auth })).json().data;
  assert.deepEqual(status.inProgressOperation.operationType, 'UPGRADE');
  assert.equal(status.inProgressOperation.operationId, extId);
  const during = (await app.inject({ method: 'GET', url: '/api/lifecycle/v4.0/resources/entities', headers: auth })).json().data as any[];
  assert.equal(during.find((e) => e.entityClass === 'Hypervisor' && e.deviceId === 'SN2').targetVersion, '1.1.0');
  for (let i = 0; i < 20; i++) lcm.advance();
  const end = (await app.inject({ method: 'GET', url: `/api/prism/v4.0/config/tasks/${extId}`, headers: auth })).json().data;
  assert.deepEqual([end.status, end.progressPercentage], ['SUCCEEDED', 100]);
  await app.close();
});

test('the console\'s LCM routes pass to LCM; without credentials 401 and nothing reaches LCM', async () => {
  const lcm = new FakeLcm();
  const { app } = await testPrism({ lcm: lcm.call });
  const inv = await app.inject({ method: 'GET', url: '/api/converge/v1/lcm/inventory', headers: auth });
  assert.equal(inv.json().length, 3);
  const plan = await app.inject({ method: 'GET', url: '/api/converge/v1/lcm/plan?to=1.1.0', headers: auth });
  assert.equal(plan.json().plan.to, '1.1.0');
  const started = await app.inject({ method: 'POST', url: '/api/converge/v1/lcm/upgrade', headers: { ...auth, ...JSON_CT }, payload: '{"to":"1.1.0"}' });
  assert.equal(started.json().state, 'running');
  const paused = await app.inject({ method: 'POST', url: '/api/converge/v1/lcm/upgrade/pause', headers: { ...auth, ...JSON_CT }, payload: '{}' });
  assert.equal(paused.json().pauseRequested, true);
  const json = await app.inject({ method: 'PUT', url: '/api/converge/v1/lcm/bundles', headers: { ...auth, ...JSON_CT }, payload: '{}' });
  assert.equal(json.statusCode, 415);
  assert.match(json.json().message_list[0].message, /^Content-Type: must be application\/octet-stream: the release bundle as it is \(got "application\/json"\)/);
  const missing = await app.inject({ method: 'POST', url: '/api/converge/v1/lcm/upgrade', headers: { ...auth, ...JSON_CT }, payload: '{"to":"7.0.0"}' });
  assert.equal(missing.statusCode, 409, 'one runs already');
  const before = lcm.calls.length;
  for (const [method, url] of [['GET', '/api/converge/v1/lcm/inventory'], ['POST', '/api/converge/v1/lcm/upgrade/abort'], ['PUT', '/api/converge/v1/lcm/bundles'], ['GET', '/api/lifecycle/v4.0/resources/entities'], ['POST', '/api/lifecycle/v4.0/operations/$actions/upgrade']] as const) {
    const r = await app.inject({ method, url, headers: method === 'PUT' ? { 'content-type': 'application/octet-stream' } : JSON_CT, ...(method === 'GET' ? {} : { payload: method === 'PUT' ? Buffer.alloc(100) : '{}' }) });
    assert.equal(r.statusCode, 401, `${method} ${url}: ${r.body}`);
  }
  assert.equal(lcm.calls.length, before);
  await app.close();
});
