/**
 * @module
 * What the VM service asks of a host agent (hypervisor/protocol/vms.ts), as a port: the real one
 * calls the agent over mutual TLS with the CVM's member certificate (role `cvm`); tests may pass
 * their own.
 */
import type { Identity } from '../../shared/identity.ts';
import { hostCall } from '../../hypervisor/protocol/client.ts';
import type { ConsoleChunk, HostNetwork, HostResources, HostVm, HostVmSpec, PowerAction } from '../../hypervisor/protocol/vms.ts';

export interface HostApi {
  resources(hostIp: string): Promise<HostResources>;
  vms(hostIp: string): Promise<HostVm[]>;
  /** PUT /vms/:uuid: define and power on. */
  define(hostIp: string, spec: HostVmSpec): Promise<HostVm>;
  power(hostIp: string, uuid: string, action: PowerAction): Promise<HostVm>;
  /** DELETE /vms/:uuid: forget a VM that is off. */
  forget(hostIp: string, uuid: string): Promise<void>;
  console(hostIp: string, uuid: string, offset: number): Promise<ConsoleChunk>;
  network(hostIp: string, net: HostNetwork): Promise<void>;
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
    network: async (ip, net) => {
      await hostCall<unknown>(ip, '/network', { ...o, method: 'PUT', body: net });
    },
  };
}
