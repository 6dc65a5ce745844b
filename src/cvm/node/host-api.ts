/**
 * @module
 * What the VM service asks of a host agent (hypervisor/protocol/vms.ts), as a port: the real one
 * calls the agent over mutual TLS with the CVM's member certificate (role `cvm`); tests may pass
 * their own.
 */
import type { Identity } from '../../shared/identity.ts';
import { hostCall } from '../../hypervisor/protocol/client.ts';
import type { ConsoleChunk, HostNetwork, HostResources, HostVm, HostVmSpec, MigrationResult, PowerAction } from '../../hypervisor/protocol/vms.ts';

export interface HostApi {
  resources(hostIp: string): Promise<HostResources>;
  vms(hostIp: string): Promise<HostVm[]>;
  /** PUT /vms/:uuid: define and power on. */
  define(hostIp: string, spec: HostVmSpec): Promise<HostVm>;
  power(hostIp: string, uuid: string, action: PowerAction): Promise<HostVm>;
  /** DELETE /vms/:uuid: forget a VM that is off. */
  forget(hostIp: string, uuid: string): Promise<void>;
  console(hostIp: string, uuid: string, offset: number): Promise<ConsoleChunk>;
  /** POST /vms/:uuid/console/input: typed on the VM's serial console. */
  consoleInput(hostIp: string, uuid: string, data: string): Promise<void>;
  network(hostIp: string, net: HostNetwork): Promise<void>;
  /** PUT /vms/:uuid/incoming: a QEMU waiting for the VM's migration; the port it listens on. */
  incoming(hostIp: string, spec: HostVmSpec): Promise<{ port: number }>;
  /** POST /vms/:uuid/migrate on the source: sends the VM to the target; answers when it is done. */
  migrate(hostIp: string, uuid: string, to: { targetHostIp: string; port: number }, signal?: AbortSignal): Promise<MigrationResult>;
}

export function hostApiOf(identity: Identity, timeoutMs = 10_000): HostApi {
  const o = { identity, timeoutMs };
  const vm = (uuid: string): string => `/vms/${encodeURIComponent(uuid)}`;
  return {
    resources: (ip) => hostCall<HostResources>(ip, '/resources', { ...o, timeoutMs: 3000 }),
    vms: (ip) => hostCall<HostVm[]>(ip, '/vms', { ...o, timeoutMs: 3000 }),
    define: (ip, spec) => hostCall<HostVm>(ip, vm(spec.uuid), { ...o, method: 'PUT', body: spec, timeoutMs: 60_000 }),
    power: (ip, uuid, action) => hostCall<HostVm>(ip, `${vm(uuid)}/power`, { ...o, body: { action }, timeoutMs: 60_000 }),
    forget: async (ip, uuid) => {
      await hostCall<unknown>(ip, vm(uuid), { ...o, method: 'DELETE' });
    },
    console: (ip, uuid, offset) => hostCall<ConsoleChunk>(ip, `${vm(uuid)}/console?offset=${offset}`, o),
    consoleInput: async (ip, uuid, data) => {
      await hostCall<unknown>(ip, `${vm(uuid)}/console/input`, { ...o, body: { data } });
    },
    incoming: (ip, spec) => hostCall<{ port: number }>(ip, `${vm(spec.uuid)}/incoming`, { ...o, method: 'PUT', body: spec, timeoutMs: 60_000 }),
    // a migration of a large guest takes as long as its memory takes to cross (the task's timeout bounds it)
    migrate: (ip, uuid, to, signal) => hostCall<MigrationResult>(ip, `${vm(uuid)}/migrate`, { ...o, body: to, timeoutMs: 30 * 60_000, ...(signal ? { signal } : {}) }),
    network: async (ip, net) => {
      await hostCall<unknown>(ip, '/network', { ...o, method: 'PUT', body: net });
    },
  };
}
