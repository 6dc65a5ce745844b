/**
 * @module
 * Foundation's REST request shapes, following the public Foundation API used by Nutanix's own
 * clients (shared/reference/nutanix-facts.md): `image_nodes`, `ipmi_config`. Unknown fields are
 * kept and ignored, as scripts written for Foundation send more than Converge uses. Converge's
 * additions are marked.
 */
import { z } from 'zod';

const csv = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : v.split(',').map((s) => s.trim()).filter(Boolean)));

export const imageNodeSchema = z.object({
  node_position: z.string().optional(),
  node_serial: z.string().optional(),
  node_uuid: z.string().optional(),
  hypervisor: z.string().default('kvm'),
  hypervisor_hostname: z.string().optional(),
  hypervisor_ip: z.string(),
  cvm_ip: z.string(),
  ipmi_ip: z.string(),
  ipmi_mac: z.string().optional(),
  image_now: z.boolean().default(true),
  ipmi_configure_now: z.boolean().default(false),
  cvm_gb_ram: z.number().int().min(1).max(512).default(16),
  cvm_num_vcpus: z.number().int().min(1).max(128).default(8),
  /** Converge: keep this node even though hardware validation FAILs it. */
  override_validation: z.boolean().default(false),
}).passthrough();

export const imageClusterSchema = z.object({
  cluster_name: z.string(),
  cluster_external_ip: z.string().optional(),
  cluster_members: z.array(z.string()).default([]),
  cluster_init_now: z.boolean().default(false),
  redundancy_factor: z.number().int().min(1).max(3).default(2),
  single_node_cluster: z.boolean().default(false),
  cvm_dns_servers: csv.optional(),
  cvm_ntp_servers: csv.optional(),
  hypervisor_ntp_servers: csv.optional(),
  timezone: z.string().optional(),
  /** Converge: Prism's initial admin password (kept in memory only; absent: the cluster generates one). */
  admin_password: z.string().optional(),
}).passthrough();

export const imageNodesSchema = z.object({
  nos_package: z.string().default(''),
  hypervisor_iso: z.record(z.string(), z.unknown()).default({}),
  cvm_netmask: z.string(),
  cvm_gateway: z.string(),
  hypervisor_netmask: z.string(),
  hypervisor_gateway: z.string(),
  hypervisor_nameserver: csv.optional(),
  ipmi_netmask: z.string().optional(),
  ipmi_gateway: z.string().optional(),
  ipmi_user: z.string().optional(),
  ipmi_password: z.string().optional(),
  blocks: z.array(z.object({ block_id: z.string().optional(), nodes: z.array(imageNodeSchema).min(1) }).passthrough()).min(1),
  clusters: z.array(imageClusterSchema).default([]),
  tests: z.object({ run_ncc: z.boolean().optional(), run_syscheck: z.boolean().optional() }).passthrough().optional(),
  /** Converge: how many nodes image at once (default 8). */
  max_parallel: z.number().int().min(1).max(64).optional(),
}).passthrough();

export type ImageNodesRequest = z.infer<typeof imageNodesSchema>;
/** The body a client sends (defaults not yet applied). */
export type ImageNodesInput = z.input<typeof imageNodesSchema>;

export const ipmiConfigSchema = z.object({
  ipmi_user: z.string().optional(),
  ipmi_password: z.string().optional(),
  ipmi_netmask: z.string(),
  ipmi_gateway: z.string(),
  blocks: z.array(z.object({ nodes: z.array(z.object({ ipmi_mac: z.string(), ipmi_ip: z.string(), ipmi_configure_now: z.boolean().default(true) }).passthrough()).min(1) }).passthrough()).min(1),
}).passthrough();

export type IpmiConfigRequest = z.infer<typeof ipmiConfigSchema>;

/** Foundation's error envelope. */
export interface FoundationError {
  error: { message: string; code: string; details: Record<string, string>; session_id: string | null };
}

/** Parses with a zod schema; the first problem becomes "path: reason" with the Foundation field path. */
export function fieldOf(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
}

/** discover_nodes: one block. */
export interface DiscoverBlock {
  block_id: string;
  model: string;
  chassis_n: number;
  nodes: DiscoverNode[];
}

export interface DiscoverNode {
  node_uuid: string;
  node_serial: string;
  node_position: string;
  ipv6_address: string;
  ipmi_mac: string;
  ipmi_ip: string;
  hypervisor: string | null;
  hypervisor_version: string | null;
  svm_ip: string | null;
  nos_version: string | null;
  cluster_id: string | null;
  configured: boolean;
  model: string;
  foundation_version: string;
  current_cvm_vlan_tag: number | null;
}

export interface ProgressNode {
  node_serial: string;
  hypervisor_ip: string;
  cvm_ip: string;
  ipmi_ip: string;
  status: string;
  stage: string;
  messages: string[];
  percent_complete: number;
  time_elapsed: number;
  time_total: number;
}

export interface ProgressResponse {
  session_id: string;
  action: string;
  imaging_stopped: boolean;
  abort_session: boolean;
  aggregate_percent_complete: number;
  results: unknown[];
  nodes: ProgressNode[];
  /** Converge adds stage, cluster_id and checks (name, ok, evidence) to each entry. */
  clusters: { cluster_name: string; cluster_members: string[]; status: string; percent_complete: number; messages: string[]; time_elapsed: number; time_total: number; stage?: string; cluster_id?: string | null; checks?: { name: string; ok: boolean; evidence: string }[]; prism?: { url: string; ca_file: string; admin_password_file: string | null } | null }[];
}

export interface UploadReply {
  name: string;
  md5sum: string;
  in_whitelist: boolean;
  version: string;
}
