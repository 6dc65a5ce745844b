/**
 * @module
 * A stand-in host agent for test/hypervisor/vm-runtime.test.ts: a process that makes a VmRuntime,
 * starts one VM and prints `{"qemuPid": n}`, then idles until it is killed (the test kills it with
 * SIGKILL and checks its QEMU died with it). Argument: a JSON { stateDir, vdiskSocket, spec }.
 */
import { VmRuntime } from '../../src/hypervisor/vm/runtime.ts';
import type { HostVmSpec } from '../../src/hypervisor/protocol/vms.ts';

const a = JSON.parse(process.argv[2] ?? '{}') as { stateDir: string; vdiskSocket: string; spec: HostVmSpec };
const rt = new VmRuntime({
  hostIp: () => '127.101.0.3', vdiskSocket: a.vdiskSocket, stateDir: a.stateDir,
  capacity: () => ({ memoryMiB: 2048, vcpus: 2, cvmMemoryMiB: 512, cvmVcpus: 1 }),
  nicSocket: () => '/nonexistent', migrationTlsDir: () => undefined, log: () => undefined, accel: 'tcg',
});
const vm = await rt.start(a.spec);
process.stdout.write(JSON.stringify({ qemuPid: vm.pid }) + '\n');
setInterval(() => undefined, 60_000);
