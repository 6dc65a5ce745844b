/**
 * @module
 * The parts of Prism's v3 entities the console shows, and the create bodies its forms send
 * (pure). The same shapes Nutanix's Ansible modules and Terraform provider use (core/v3-vms.ts on
 * the server).
 */
export interface Ref { kind: string; uuid: string; name?: string }

export interface V3Vm {
  metadata: { uuid: string; spec_version: number; creation_time?: string };
  spec: { name: string };
  status: {
    state: string;
    name: string;
    resources: {
      power_state: string;
      num_sockets: number;
      num_vcpus_per_socket: number;
      memory_size_mib: number;
      host_reference?: Ref;
      disk_list: { uuid: string; disk_size_bytes: number; device_properties: { device_type: string; disk_address: { adapter_type: string; device_index: number } }; data_source_reference?: Ref }[];
      nic_list: { uuid: string; mac_address: string; subnet_reference?: Ref; ip_endpoint_list?: { ip: string }[] }[];
    };
  };
}

export interface V3Image {
  metadata: { uuid: string; creation_time?: string };
  spec: { name: string; description?: string };
  status: { state: string; resources: { image_type: string; size_bytes?: number; source_uri?: string } };
}

export interface V3Subnet {
  metadata: { uuid: string };
  spec: { name: string; resources: { vlan_id: number; subnet_type: string; ip_config?: { subnet_ip: string; prefix_length: number; default_gateway_ip?: string; pool_list: { range: string }[] } } };
  status: { resources: { ip_usage_stats?: { num_assigned_ips: number } } };
}

export interface V3Task {
  uuid: string;
  status: string;
  percentage_complete: number;
  progress_message: string;
  operation_type: string;
  entity_reference_list: Ref[];
  error_detail: string;
  creation_time: string;
  start_time: string;
  completion_time: string;
  parent_task_reference?: Ref;
}

/** A VM's row: what the table shows. */
export function vmRow(v: V3Vm): { uuid: string; name: string; power: string; host: string; vcpus: number; memoryMiB: number; ips: string[]; disks: number } {
  const r = v.status.resources;
  return {
    uuid: v.metadata.uuid, name: v.status.name || v.spec.name, power: r.power_state, host: r.host_reference?.name ?? '–',
    vcpus: r.num_sockets * r.num_vcpus_per_socket, memoryMiB: r.memory_size_mib,
    ips: r.nic_list.flatMap((n) => (n.ip_endpoint_list ?? []).map((e) => e.ip)), disks: r.disk_list.length,
  };
}

/** Whether a task has ended. */
export const taskDone = (t: Pick<V3Task, 'status'>): boolean => ['SUCCEEDED', 'FAILED', 'ABORTED'].includes(t.status);

/** The create-VM wizard's answers. */
export interface VmDraft {
  name: string;
  vcpus: number;
  memoryMiB: number;
  image: string;
  /** An empty data disk beside the boot disk, MiB (0: none). */
  dataDiskMiB: number;
  subnet: string;
  powerOn: boolean;
}

/** What is wrong with a draft, by field (empty: it can be sent). */
export function draftProblems(d: VmDraft, names: readonly string[]): Partial<Record<keyof VmDraft, string>> {
  const p: Partial<Record<keyof VmDraft, string>> = {};
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(d.name)) p.name = 'letters, digits, dots, dashes and underscores, 1 to 63, starting with a letter or digit';
  else if (names.includes(d.name)) p.name = 'a VM of this name exists';
  if (!Number.isInteger(d.vcpus) || d.vcpus < 1 || d.vcpus > 64) p.vcpus = 'a whole number from 1 to 64';
  if (!Number.isInteger(d.memoryMiB) || d.memoryMiB < 16 || d.memoryMiB > 4 * 2 ** 20) p.memoryMiB = 'a whole number of MiB from 16';
  if (d.image === '') p.image = 'choose the image to boot from';
  if (!Number.isInteger(d.dataDiskMiB) || d.dataDiskMiB < 0 || d.dataDiskMiB > 64 * 2 ** 20) p.dataDiskMiB = 'a whole number of MiB (0: no data disk)';
  return p;
}

/** The v3 create body of a draft: a boot disk cloned from the image, an empty data disk and a NIC on the subnet (if chosen). */
export function vmCreateBody(d: VmDraft, clusterUuid: string): Record<string, unknown> {
  return {
    api_version: '3.1.0',
    metadata: { kind: 'vm' },
    spec: {
      name: d.name,
      cluster_reference: { kind: 'cluster', uuid: clusterUuid },
      resources: {
        num_sockets: d.vcpus, num_vcpus_per_socket: 1, memory_size_mib: d.memoryMiB, power_state: d.powerOn ? 'ON' : 'OFF',
        disk_list: [
          { device_properties: { device_type: 'DISK', disk_address: { adapter_type: 'SCSI', device_index: 0 } }, data_source_reference: { kind: 'image', uuid: d.image } },
          ...(d.dataDiskMiB > 0 ? [{ device_properties: { device_type: 'DISK', disk_address: { adapter_type: 'SCSI', device_index: 1 } }, disk_size_mib: d.dataDiskMiB }] : []),
        ],
        nic_list: d.subnet ? [{ nic_type: 'NORMAL_NIC', is_connected: true, subnet_reference: { kind: 'subnet', uuid: d.subnet } }] : [],
      },
    },
  };
}

/** The subnet create form's answers. */
export interface SubnetDraft { name: string; vlanId: string; cidr: string; gateway: string; poolStart: string; poolEnd: string }

/** The v3 create body of a subnet form (VLAN, with IPAM when a network is given). */
export function subnetCreateBody(s: SubnetDraft, clusterUuid: string): Record<string, unknown> {
  const [ip, prefix] = s.cidr.split('/');
  const ipConfig = s.cidr.trim() === '' ? undefined : {
    subnet_ip: ip, prefix_length: Number(prefix),
    ...(s.gateway ? { default_gateway_ip: s.gateway } : {}),
    pool_list: s.poolStart && s.poolEnd ? [{ range: `${s.poolStart} ${s.poolEnd}` }] : [],
  };
  return {
    api_version: '3.1.0',
    metadata: { kind: 'subnet' },
    spec: { name: s.name, cluster_reference: { kind: 'cluster', uuid: clusterUuid }, resources: { subnet_type: 'VLAN', vlan_id: Number(s.vlanId), ...(ipConfig ? { ip_config: ipConfig } : {}) } },
  };
}
