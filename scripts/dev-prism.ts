/**
 * @module
 * Prism's API and console over in-memory fakes (src/prism/node/fakes.ts) at https://127.0.0.1:9440
 * (user admin, password lab-secret-1), for work on the console without a cluster: `npm run
 * dev:prism`, then open https://127.0.0.1:9440/console/ (built: `npm run build:web`) or run `npm
 * run dev:prism-ui` for hot reload (Vite sends the API here). VMs, images and subnets live in
 * memory; a VM's console prints a line every 2 s; performance answers are empty; an LCM upgrade
 * moves a step every 3 s.
 */
import { ADMIN, FakeHealth, FakeLcm, FakeVmService, testPrism } from '../src/prism/node/fakes.ts';
import { member, snapshot } from '../src/prism/core/fixtures.ts';
import type { CallOptions } from '../src/cvm/protocol/client.ts';
import { createCa, issueCert } from '../src/shared/tls.ts';

const host = process.env['PRISM_HOST'] ?? '127.0.0.1';
const vms = new FakeVmService();
const snap = snapshot([member(1), member(2), member(3)]);
const health = new FakeHealth(() => ({ snapshot: snap, vms: [...vms.vms.values()], resiliency: null, certificateDaysLeft: 20 }));
const started = Date.now();
const consoleText = (): string => Array.from({ length: Math.floor((Date.now() - started) / 2000) }, (_, i) => `[${i * 2} s] guest: write-and-verify pass ${i} ok\r\n`).join('');
const cvm = <T>(path: string, o: CallOptions = {}): Promise<T> => {
  const m = /^\/vms\/([^/]+)\/console(\/input)?(?:\?offset=(\d+))?$/.exec(path);
  if (m) {
    const text = `converge-guest login: boot ok\r\n${consoleText()}`;
    return Promise.resolve((m[2] ? {} : { text: text.slice(Math.min(Number(m[3] ?? 0), text.length)), next: text.length }) as T);
  }
  if (path === '/hosts') return Promise.resolve(snap.members.map((x) => ({ serial: x.serial, hostIp: x.hostIp, cvmIp: x.cvmIp, state: 'up', memoryMiB: 65536, freeMemoryMiB: 60000, vcpus: 32, freeVcpus: 30, vms: 0 })) as T);
  return vms.call<T>(path, o);
};
await vms.call('/vms', { body: { name: 'web-1', vcpus: 2, memoryMiB: 512, powerOn: true, disks: [{ image: 'guest' }] } });
await vms.call('/vms', { body: { name: 'db-1', vcpus: 4, memoryMiB: 2048, powerOn: false, disks: [{ image: 'guest' }] } });
const lcm = new FakeLcm();
setInterval(() => lcm.advance(), 3000).unref();
const { app } = await testPrism({ snapshot: snap, cvm, health, lcm: lcm.call, tls: await issueCert(await createCa('prism-dev'), { cn: host, ips: [host], usage: 'server' }) });
await app.listen({ host, port: 9440 });
process.stdout.write(`Prism over fakes: https://${host}:9440/console/  user ${ADMIN.user}, password ${ADMIN.password}\n`);
