import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { FakeVmService, basicAuth, testPrism } from './fakes.ts';

const auth = { authorization: basicAuth() };
const JSON_CT = { 'content-type': 'application/json' };

/** What the Go SDK's OneOf decoder needs: a $objectType on data and on every list item. */
function assertTyped(j: any, objectType: string, itemType?: string): void {
  assert.equal(j.$objectType, objectType);
  assert.ok(j.$reserved, 'a $reserved object (the SDK puts the ETag there)');
  if (itemType) {
    assert.ok(Array.isArray(j.data));
    for (const x of j.data) {
      assert.equal(x.$objectType, itemType);
      assert.ok(x.$reserved);
    }
  }
}

test('v4: version negotiation, clusters and hosts in the SDKs\' envelope, any v4.x version; paging, $filter, $orderby, $select', async () => {
  const vms = new FakeVmService();
  const { app } = await testPrism({ cvm: vms.call });
  const info = await app.inject({ method: 'OPTIONS', url: '/api/clustermgmt/unversioned/info', headers: { ...auth, ...JSON_CT } });
  assert.deepEqual(info.json(), { data: 'v4.3' });
  for (const v of ['v4.0', 'v4.0.b1', 'v4.3']) {
    const r = await app.inject({ method: 'GET', url: `/api/clustermgmt/${v}/config/clusters`, headers: auth });
    assert.equal(r.statusCode, 200, r.body);
    const j = r.json();
    assertTyped(j, 'clustermgmt.v4.config.ListClustersApiResponse', 'clustermgmt.v4.config.Cluster');
    assert.deepEqual(j.data[0].config.clusterFunction, ['AOS'], 'never empty: Terraform filters on it');
    assert.equal(j.metadata.totalAvailableResults, 1);
  }
  const bad = await app.inject({ method: 'GET', url: '/api/clustermgmt/v5.0/config/clusters', headers: auth });
  assert.equal(bad.statusCode, 404);
  assert.equal(bad.json().$objectType, 'clustermgmt.v4.error.ErrorResponse');
  const hosts = (await app.inject({ method: 'GET', url: '/api/clustermgmt/v4.3/config/hosts?$limit=2&$orderby=hostName desc', headers: auth })).json();
  assertTyped(hosts, 'clustermgmt.v4.config.ListHostsApiResponse', 'clustermgmt.v4.config.Host');
  assert.equal(hosts.data.length, 2);
  assert.equal(hosts.metadata.totalAvailableResults, 3);
  assert.ok(hosts.data[0].hostName > hosts.data[1].hostName);
  assert.ok(hosts.metadata.links.some((l: any) => l.rel === 'next'));
  const one = (await app.inject({ method: 'GET', url: `/api/clustermgmt/v4.3/config/hosts?$filter=${encodeURIComponent(`hostName eq '${String(hosts.data[0].hostName)}'`)}&$select=hostName`, headers: auth })).json();
  assert.equal(one.data.length, 1);
  assert.deepEqual(Object.keys(one.data[0]).filter((k) => !k.startsWith('$')).sort(), ['extId', 'hostName']);
  const wrong = await app.inject({ method: 'GET', url: '/api/clustermgmt/v4.3/config/hosts?$filter=hostName%20eqq%201', headers: auth });
  assert.equal(wrong.statusCode, 400);
  assert.match(wrong.json().data.error[0].message, /^\$filter: /);
  const limit = await app.inject({ method: 'GET', url: '/api/clustermgmt/v4.3/config/hosts?$limit=101', headers: auth });
  assert.equal(limit.statusCode, 400);
  assert.match(limit.json().data.error[0].message, /^\$limit: /);
  await app.close();
});

test('v4 VMs: create → task reference; the task\'s entitiesAffected names the VM; ETag and If-Match (428 without, 412 stale); NTNX-Request-Id makes a retry do nothing twice', async () => {
  const vms = new FakeVmService();
  const { app } = await testPrism({ cvm: vms.call });
  const body = { name: 'v4vm', numSockets: 1, numCoresPerSocket: 2, memorySizeBytes: 512 * 2 ** 20, disks: [{ diskAddress: { busType: 'SCSI', index: 0 }, backingInfo: { $objectType: 'vmm.v4.ahv.config.VmDisk', dataSource: { reference: { $objectType: 'vmm.v4.ahv.config.ImageReference', imageExtId: vms.images[0]?.uuid } } } }] };
  const headers = { ...auth, ...JSON_CT, 'ntnx-request-id': 'req-1' };
  const created = await app.inject({ method: 'POST', url: '/api/vmm/v4.3/ahv/config/vms', headers, payload: JSON.stringify(body) });
  assert.equal(created.statusCode, 202, created.body);
  assertTyped(created.json(), 'vmm.v4.ahv.config.CreateVmApiResponse');
  assert.equal(created.json().data.$objectType, 'prism.v4.config.TaskReference');
  const ext = created.json().data.extId as string;
  assert.match(ext, /^ZXJnb24=:[0-9a-f-]{36}$/);
  const again = await app.inject({ method: 'POST', url: '/api/vmm/v4.3/ahv/config/vms', headers, payload: JSON.stringify(body) });
  assert.equal(again.json().data.extId, ext, 'the same answer for the same NTNX-Request-Id');
  assert.equal(vms.vms.size, 1, 'and the VM made once');

  const task = (await app.inject({ method: 'GET', url: `/api/prism/v4.3/config/tasks/${encodeURIComponent(ext)}`, headers: auth })).json();
  assertTyped(task, 'prism.v4.config.GetTaskApiResponse');
  assert.equal(task.data.status, 'SUCCEEDED');
  const vmId = task.data.entitiesAffected.find((e: any) => e.rel === 'vmm:ahv:config:vm').extId as string;
  assert.equal(vmId, [...vms.vms.keys()][0]);
  assert.equal(vms.vms.get(vmId)?.vcpus, 2);

  const got = await app.inject({ method: 'GET', url: `/api/vmm/v4.3/ahv/config/vms/${vmId}`, headers: auth });
  assertTyped(got.json(), 'vmm.v4.ahv.config.GetVmApiResponse');
  assert.equal(got.json().data.powerState, 'OFF');
  const etag = String(got.headers['etag']);
  assert.ok(etag.length > 2);
  const on = (h: Record<string, string>): Promise<LightMyRequestResponse> => app.inject({ method: 'POST', url: `/api/vmm/v4.3/ahv/config/vms/${vmId}/$actions/power-on`, headers: { ...auth, ...h } });
  const none = await on({});
  assert.equal(none.statusCode, 428, none.body);
  assert.match(none.json().data.error[0].message, /^If-Match: required/);
  const stale = await on({ 'if-match': '"old"' });
  assert.equal(stale.statusCode, 412, stale.body);
  assert.equal(vms.vms.get(vmId)?.powerState, 'off', 'refused: nothing changed');
  const ok = await on({ 'if-match': etag });
  assert.equal(ok.statusCode, 202, ok.body);
  assert.equal(ok.json().$objectType, 'vmm.v4.ahv.config.PowerOnVmApiResponse');
  assert.equal(vms.vms.get(vmId)?.powerState, 'on');
  const del = await app.inject({ method: 'DELETE', url: `/api/vmm/v4.3/ahv/config/vms/${vmId}`, headers: { ...auth, 'if-match': etag } });
  assert.equal(del.statusCode, 412, 'the ETag changed with the power state');
  const etag2 = String((await app.inject({ method: 'GET', url: `/api/vmm/v4.3/ahv/config/vms/${vmId}`, headers: auth })).headers['etag']);
  const gone = await app.inject({ method: 'DELETE', url: `/api/vmm/v4.3/ahv/config/vms/${vmId}`, headers: { ...auth, 'if-match': etag2 } });
  assert.equal(gone.statusCode, 202, gone.body);
  const missing = await app.inject({ method: 'GET', url: `/api/vmm/v4.3/ahv/config/vms/${vmId}`, headers: auth });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().data.$objectType, 'vmm.v4.error.ErrorResponse');
  await app.close();
});

test('v4 VM update by PUT: the VM as GET gave it, changed, with its ETag; stale or missing If-Match, disks, NICs, power and unknown fields refused by name; a size change of a running VM is a 409', async () => {
  const vms = new FakeVmService();
  const { app } = await testPrism({ cvm: vms.call });
  const { entityUuid: id } = await vms.call<{ entityUuid: string }>('/vms', { body: { name: 'upd', vcpus: 1, memoryMiB: 256, disks: [{ image: 'guest' }] } });
  const url = `/api/vmm/v4.3/ahv/config/vms/${id}`;
  const get = async (): Promise<{ vm: any; etag: string }> => {
    const r = await app.inject({ method: 'GET', url, headers: auth });
    return { vm: r.json().data, etag: String(r.headers['etag']) };
  };
  const put = (vm: unknown, etag?: string): Promise<LightMyRequestResponse> => app.inject({ method: 'PUT', url, headers: { ...auth, ...JSON_CT, ...(etag ? { 'if-match': etag } : {}) }, payload: JSON.stringify(vm) });
  const { vm, etag } = await get();
  assert.equal((await put({ ...vm, name: 'x' })).statusCode, 428);
  assert.equal((await put({ ...vm, name: 'x' }, '"stale"')).statusCode, 412);
  const changed = await put({ ...vm, name: 'upd-2', numSockets: 2, memorySizeBytes: 1024 * 2 ** 20 }, etag);
  assert.equal(changed.statusCode, 202, changed.body);
  assertTyped(changed.json(), 'vmm.v4.ahv.config.UpdateVmApiResponse');
  assert.equal(changed.json().data.$objectType, 'prism.v4.config.TaskReference');
  assert.deepEqual([vms.vms.get(id)?.name, vms.vms.get(id)?.vcpus, vms.vms.get(id)?.memoryMiB], ['upd-2', 2, 1024]);
  assert.equal((await put({ ...vm, name: 'upd-3' }, etag)).statusCode, 412, 'the ETag moved with the change');
  const now = await get();
  const refused: [unknown, string][] = [
    [{ ...now.vm, colour: 'red' }, 'colour'],
    [{ ...now.vm, numSockets: 'two' }, 'numSockets'],
    [{ ...now.vm, disks: [] }, 'disks'],
    [{ ...now.vm, nics: [{ extId: 'new' }] }, 'nics'],
    [{ ...now.vm, powerState: 'ON' }, 'powerState'],
    [{ ...now.vm, extId: '00000000-0000-4000-8000-000000000000' }, 'extId'],
  ];
  for (const [body, field] of refused) {
    const r = await put(body, now.etag);
    assert.equal(r.statusCode, 400, `${field}: ${r.body}`);
    assert.equal(r.json().data.error[0].argumentsMap.field, field);
  }
  assert.equal(vms.vms.get(id)?.specVersion, 2, 'refused updates changed nothing');
  await vms.call(`/vms/${id}/power`, { body: { action: 'on' } });
  const on = await get();
  const big = await put({ ...on.vm, numSockets: 4 }, on.etag);
  assert.equal(big.statusCode, 409, big.body);
  assert.equal(big.json().$objectType, 'vmm.v4.error.ErrorResponse');
  const renamed = await put({ ...on.vm, name: 'upd-on' }, on.etag);
  assert.equal(renamed.statusCode, 202, 'a rename needs no power off');
  await app.close();
});

test('v4 host maintenance: enter and exit through $actions → a task reference; the host shows its maintenance state; an unknown host, action or cluster is a 404, a bad body a 400 naming its field', async () => {
  const vms = new FakeVmService();
  const { app } = await testPrism({ cvm: vms.call });
  const act = (action: string, host = 'host-2', cluster = 'c1', payload: unknown = {}): Promise<LightMyRequestResponse> =>
    app.inject({ method: 'POST', url: `/api/clustermgmt/v4.3/operations/clusters/${cluster}/hosts/${host}/$actions/${action}`, headers: { ...auth, ...JSON_CT }, payload: JSON.stringify(payload) });
  const state = async (): Promise<string> => (await app.inject({ method: 'GET', url: '/api/clustermgmt/v4.3/config/clusters/c1/hosts/host-2', headers: auth })).json().data.maintenanceState;
  assert.equal(await state(), 'NORMAL');
  const enter = await act('enter-host-maintenance', 'host-2', 'c1', { timeoutSeconds: 600 });
  assert.equal(enter.statusCode, 202, enter.body);
  assertTyped(enter.json(), 'clustermgmt.v4.config.EnterHostMaintenanceApiResponse');
  assert.match(enter.json().data.extId, /^ZXJnb24=:/);
  assert.equal(vms.maintenance.get('SN2'), true, 'the VM service was asked for the host by its serial');
  assert.equal(await state(), 'IN_MAINTENANCE_MODE');
  assert.equal((await act('exit-host-maintenance')).statusCode, 202);
  assert.equal(await state(), 'NORMAL');
  assert.equal((await act('enter-host-maintenance', 'host-9')).statusCode, 404);
  assert.equal((await act('enter-host-maintenance', 'host-2', 'other')).statusCode, 404);
  assert.equal((await act('reboot-host')).statusCode, 404);
  const bad = await act('enter-host-maintenance', 'host-2', 'c1', { timeoutSeconds: 'soon' });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().data.error[0].argumentsMap.field, 'timeoutSeconds');
  assert.equal(vms.maintenance.get('SN2'), false, 'refused: nothing changed');
  await app.close();
});

test('v4 bad input: unknown fields, wrong types, what the cluster does not do — a 400 in the v4 error body naming the field; nothing made', async () => {
  const vms = new FakeVmService();
  const { app } = await testPrism({ cvm: vms.call });
  const post = (b: unknown): Promise<LightMyRequestResponse> => app.inject({ method: 'POST', url: '/api/vmm/v4.3/ahv/config/vms', headers: { ...auth, ...JSON_CT }, payload: JSON.stringify(b) });
  const base = { name: 'x', memorySizeBytes: 2 ** 30 };
  for (const [b, field] of [
    [{ ...base, colour: 'red' }, 'colour'],
    [{ ...base, memorySizeBytes: '1G' }, 'memorySizeBytes'],
    [{ ...base, name: 7 }, 'name'],
    [{ ...base, gpus: [{}] }, 'gpus'],
    [{ ...base, disks: [{ backingInfo: { diskSizeBytes: -1 } }] }, 'disks[0].backingInfo.diskSizeBytes'],
    [{ ...base, disks: [{ diskAddress: { busType: 'SATA' }, backingInfo: { diskSizeBytes: 1 } }] }, 'disks[0].diskAddress.busType'],
    [{ ...base, nics: [{ networkInfo: { subnet: { extId: 'nope' } } }] }, 'nics[0].networkInfo.subnet.extId'],
    [{ ...base, cluster: { extId: 'elsewhere' } }, 'cluster.extId'],
  ] as const) {
    const r = await post(b);
    assert.equal(r.statusCode, 400, `${field}: ${r.body}`);
    assert.equal(r.json().$objectType, 'vmm.v4.error.ErrorResponse');
    assert.equal(r.json().data.error[0].argumentsMap.field, field, r.body);
  }
  assert.equal(vms.vms.size, 0);
  await app.close();
});

test('v2.0 VMs, hosts, cluster and tasks, also under /PrismGateway/services/rest/v2.0; set_power_state; a bad transition names its field', async () => {
  const vms = new FakeVmService();
  const { app } = await testPrism({ cvm: vms.call });
  await vms.call('/vms', { body: { name: 'old', vcpus: 2, memoryMiB: 512, disks: [{ image: 'guest' }], powerOn: false } });
  for (const base of ['/api/nutanix/v2.0', '/PrismGateway/services/rest/v2.0']) {
    const list = await app.inject({ method: 'GET', url: `${base}/vms?include_vm_disk_config=true&include_vm_nic_config=true`, headers: auth });
    assert.equal(list.statusCode, 200, list.body);
    const j = list.json();
    assert.equal(j.metadata.grand_total_entities, 1);
    const vm = j.entities[0];
    assert.deepEqual([vm.name, vm.power_state, vm.num_vcpus, vm.memory_mb, vm.host_uuid], ['old', 'off', 2, 512, undefined], 'no host_uuid while off (virt-who)');
    assert.equal(vm.vm_disk_info[0].disk_address.device_bus, 'scsi');
    const hosts = (await app.inject({ method: 'GET', url: `${base}/hosts`, headers: auth })).json();
    assert.equal(hosts.entities.length, 3);
    assert.equal(hosts.entities[0].hypervisor_type, 'kKvm');
    const cluster = (await app.inject({ method: 'GET', url: `${base}/cluster`, headers: auth })).json();
    assert.equal(cluster.num_nodes, 3);
    assert.deepEqual(cluster.hypervisor_types, ['kKvm']);
  }
  const uuid = [...vms.vms.keys()][0] ?? '';
  const on = await app.inject({ method: 'POST', url: `/PrismGateway/services/rest/v2.0/vms/${uuid}/set_power_state`, headers: { ...auth, ...JSON_CT }, payload: '{"transition":"ON"}' });
  assert.equal(on.statusCode, 200, on.body);
  const task = (await app.inject({ method: 'GET', url: `/api/nutanix/v2.0/tasks/${String(on.json().task_uuid)}`, headers: auth })).json();
  assert.equal(task.progress_status, 'Succeeded');
  assert.deepEqual(task.entity_list, [{ entity_id: uuid, entity_type: 'vm' }]);
  assert.equal(vms.vms.get(uuid)?.powerState, 'on');
  const bad = await app.inject({ method: 'POST', url: `/api/nutanix/v2.0/vms/${uuid}/set_power_state`, headers: { ...auth, ...JSON_CT }, payload: '{"transition":"SIDEWAYS"}' });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error_code.validation_errors[0].field, 'transition');
  const gone = await app.inject({ method: 'GET', url: '/PrismGateway/services/rest/v2.0/vms/nope', headers: auth });
  assert.equal(gone.statusCode, 404);
  assert.equal(typeof gone.json().message, 'string', 'the v2.0 error body under the gateway path too');
  await app.close();
});

test("task lists hold the VM service's tasks and Prism's own, newest first, in v3 and v4", async () => {
  const vms = new FakeVmService();
  const { app, tasks } = await testPrism({ cvm: vms.call });
  await vms.call('/vms', { body: { name: 'x', vcpus: 1, memoryMiB: 256, disks: [], powerOn: false } });
  const mine = await tasks.start('kVDiskCreate', [{ kind: 'virtual_disk', uuid: 'vd-9', name: 'vd9' }]);
  const v3 = (await app.inject({ method: 'POST', url: '/api/nutanix/v3/tasks/list', headers: { ...auth, ...JSON_CT }, payload: '{}' })).json();
  assert.deepEqual(v3.entities.map((t: any) => t.operation_type).sort(), ['VmCreate', 'kVDiskCreate']);
  const filtered = (await app.inject({ method: 'POST', url: '/api/nutanix/v3/tasks/list', headers: { ...auth, ...JSON_CT }, payload: JSON.stringify({ filter: 'entity_uuid==vd-9' }) })).json();
  assert.deepEqual(filtered.entities.map((t: any) => t.uuid), [mine]);
  const v4 = (await app.inject({ method: 'GET', url: '/api/prism/v4.3/config/tasks', headers: auth })).json();
  assert.equal(v4.metadata.totalAvailableResults, 2);
  assert.ok(v4.data.some((t: any) => t.extId === `ZXJnb24=:${mine}` && t.$objectType === 'prism.v4.config.Task'));
  await app.close();
});
