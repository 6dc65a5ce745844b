/**
 * bench/prism: Prism's list latency with many VMs in the store (issue 13: v3 `vms/list` and v4
 * `vms` list, p99 under 50 ms with 10,000 VM records). A 3-node lab cluster (bench/lab.ts), then
 * `--vms` VM records (off, one disk, one NIC) written straight into the VM service's records in
 * etcd, as a cluster that has made that many VMs holds them; then, against the Prism leader over
 * HTTPS, each query `--requests` times in a row: v3 pages (Terraform's length 100) and name lookups
 * (Ansible's `vm_name==…`, length 1), v4 pages ($limit 50) and `$filter` lookups; and the VM
 * service's own list (the CVM API) for context. Prints p50, p99 and the goal's status.
 *
 * Usage: node --import tsx bench/prism.ts [--vms n] [--requests n]   (defaults 10000, 100)
 */
import { randomUUID } from 'node:crypto';
import { Agent, fetch as ufetch } from 'undici';
import { startBenchLab, CVM, machineContext } from './lab.ts';
import { arg } from './fio.ts';
import { cvmCall } from '../src/cvm/protocol/client.ts';
import { ACROPOLIS_PREFIX, type Vm } from '../src/cvm/protocol/vms.ts';

const VMS = arg('vms', 10_000);
const REQUESTS = arg('requests', 100);
const GOAL_P99_MS = 50;

console.log(`bench/prism: ${VMS} VM records, ${REQUESTS} requests per query`);
console.log(`machine: ${machineContext()}`);
const t0 = Date.now();
const password = 'bench-secret-1';
const lab = await startBenchLab('prismbench', { adminPassword: password });
try {
  const etcd = lab.t.store(lab.cvms);
  const subnet = randomUUID();
  const started = Date.now();
  for (let i = 0; i < VMS; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, VMS - i) }, (_, j) => {
      const n = i + j;
      const uuid = randomUUID();
      const vm: Vm & { owned: string[]; lastTask: null } = {
        uuid, name: `vm-${String(n).padStart(5, '0')}`, specVersion: 1, vcpus: 1 + (n % 4), memoryMiB: 256 * (1 + (n % 8)),
        disks: [{ vdisk: `vm-${uuid}-disk0`, bus: 'virtio-scsi', sizeBytes: 1 << 30, image: null }],
        nics: [{ mac: `50:6b:8d:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`, subnetUuid: subnet, ip: null }],
        ha: true, powerState: 'off', host: null, epoch: 0, runtimeState: 'off', createdAt: new Date().toISOString(), owned: [], lastTask: null,
      };
      return etcd.put(`${ACROPOLIS_PREFIX}vms/${uuid}`).value(JSON.stringify(vm));
    }));
  }
  console.log(`wrote ${VMS} VM records in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  etcd.close();

  const ca = (await cvmCall<{ cert: string }>(CVM(0), '/cluster/ca')).cert;
  const agent = new Agent({ connect: { ca } });
  const leaderOf = async (): Promise<string> => {
    const r = await ufetch(`https://${CVM(0)}:9440/api/converge/v1/prism`, { dispatcher: agent });
    return ((await r.json()) as { leader: string | null }).leader ?? CVM(0);
  };
  const leader = await leaderOf();
  const auth = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
  const call = async (method: string, path: string, body?: unknown): Promise<number> => {
    const s = performance.now();
    const r = await ufetch(`https://${leader}:9440${path}`, { dispatcher: agent, method, headers: { Authorization: auth, ...(body ? { 'Content-Type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 300)}`);
    return performance.now() - s;
  };
  const measure = async (label: string, f: (i: number) => Promise<number>): Promise<{ label: string; p50: number; p99: number }> => {
    await f(0); // warm
    const ms: number[] = [];
    for (let i = 0; i < REQUESTS; i++) ms.push(await f(i));
    ms.sort((a, b) => a - b);
    const q = (p: number): number => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] ?? 0;
    const r = { label, p50: q(0.5), p99: q(0.99) };
    console.log(`${label.padEnd(56)} p50 ${r.p50.toFixed(1).padStart(7)} ms   p99 ${r.p99.toFixed(1).padStart(7)} ms`);
    return r;
  };
  const name = (i: number): string => `vm-${String((i * 7919) % VMS).padStart(5, '0')}`;
  console.log('\nlatency, one request at a time, through the Prism leader over HTTPS:');
  const results = [
    await measure('v3 POST /vms/list {length: 100} (Terraform\'s page)', (i) => call('POST', '/api/nutanix/v3/vms/list', { kind: 'vm', length: 100, offset: (i * 100) % VMS })),
    await measure('v3 POST /vms/list {filter: vm_name==…, length: 1} (Ansible)', (i) => call('POST', '/api/nutanix/v3/vms/list', { filter: `vm_name==${name(i)}`, length: 1 })),
    await measure('v4 GET /vmm/v4.3/ahv/config/vms?$limit=50', (i) => call('GET', `/api/vmm/v4.3/ahv/config/vms?$limit=50&$page=${i % Math.ceil(VMS / 50)}`)),
    await measure("v4 GET …/vms?$filter=name eq '…'", (i) => call('GET', `/api/vmm/v4.3/ahv/config/vms?$filter=${encodeURIComponent(`name eq '${name(i)}'`)}`)),
  ];
  await measure('for context: the VM service\'s GET /vms (CVM API, every VM)', async () => {
    const s = performance.now();
    await cvmCall<Vm[]>(CVM(0), '/vms', { timeoutMs: 60_000 });
    return performance.now() - s;
  });
  console.log(`\ngoal (issue 13): p99 under ${GOAL_P99_MS} ms with ${VMS} VMs`);
  for (const r of results) console.log(`  ${r.label.padEnd(56)} p99 ${r.p99.toFixed(1).padStart(7)} ms  ${r.p99 < GOAL_P99_MS ? 'met' : 'not met'}`);
  await agent.close();
} finally {
  await lab.stop();
}
console.log(`\nmachine: ${machineContext()}; bench took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
