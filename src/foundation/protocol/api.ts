/**
 * @module
 * Foundation's REST request shapes, following the public Foundation API used by Nutanix's own
 * clients (shared/reference/nutanix-facts.md): `image_nodes`, `ipmi_config`, `node_network_details`,
 * and Converge's own: `plan_check`, `abort_session`/`retry_node` bodies, and what the nodes send
 * (installer reports, CVM announcements: protocol/installer.ts). Every JSON route of Foundation
 * parses its body with one of these schemas ({@link parseBody}), so malformed input is an
 * InputError naming the field. Unknown fields of the public shapes are kept and ignored, as
 * scripts written for Foundation send more than Converge uses; every string and list is bounded.
 * Converge's additions are marked.
 */
import { z } from 'zod';
import { InputError } from '../../shared/errors.ts';
import type { PlanInput } from '../core/types.ts';
import { isIpv4 } from '../core/ip-plan.ts';
import type { CvmAnnounce, InstallerReport } from './installer.ts';
import { fieldOf } from '../../shared/schema.ts';

/** Most nodes one request may name (a deployment, a discovery answer). */
export const MAX_NODES = 1024;
/** Longest name, address, version or other short text a request may carry. */
export const MAX_TEXT = 256;
/** Longest free text (an installer's message). */
export const MAX_MESSAGE = 4096;

const text = z.string().max(MAX_TEXT);
const csv = z.union([z.string().max(MAX_MESSAGE), z.array(text).max(64)]).transform((v) => (Array.isArray(v) ? v : v.split(',').map((s) => s.trim()).filter(Boolean)));

export const imageNodeSchema = z.object({
  node_position: text.optional(),
  node_serial: text.optional(),
  node_uuid: text.optional(),
  hypervisor: text.default('kvm'),
  hypervisor_hostname: text.optional(),
  hypervisor_ip: text,
  cvm_ip: text,
  ipmi_ip: text,
  ipmi_mac: text.optional(),
  image_now: z.boolean().default(true),
  ipmi_configure_now: z.boolean().default(false),
  cvm_gb_ram: z.number().int().min(1).max(512).default(16),
  cvm_num_vcpus: z.number().int().min(1).max(128).default(8),
  /** Converge: keep this node even though hardware validation FAILs it. */
  override_validation: z.boolean().default(false),
  /**
   * Converge: image this node even though it is a member of a running cluster (its CVM says so);
   * its data in that cluster is lost. Without it such a node is refused (409).
   */
  reimage: z.boolean().default(false),
}).passthrough();

export const imageClusterSchema = z.object({
  cluster_name: text,
  cluster_external_ip: text.optional(),
  cluster_members: z.array(text).max(MAX_NODES).default([]),
  cluster_init_now: z.boolean().default(false),
  redundancy_factor: z.number().int().min(1).max(3).default(2),
  single_node_cluster: z.boolean().default(false),
  cvm_dns_servers: csv.optional(),
  cvm_ntp_servers: csv.optional(),
  hypervisor_ntp_servers: csv.optional(),
  timezone: text.optional(),
  /** Converge: Prism's initial admin password (kept in memory only; absent: the cluster generates one). */
  admin_password: text.optional(),
}).passthrough();

export const imageNodesSchema = z.object({
  nos_package: text.default(''),
  hypervisor_iso: z.record(text, z.unknown()).default({}),
  cvm_netmask: text,
  cvm_gateway: text,
  hypervisor_netmask: text,
  hypervisor_gateway: text,
  hypervisor_nameserver: csv.optional(),
  ipmi_netmask: text.optional(),
  ipmi_gateway: text.optional(),
  ipmi_user: text.optional(),
  ipmi_password: text.optional(),
  blocks: z.array(z.object({ block_id: text.optional(), nodes: z.array(imageNodeSchema).min(1).max(MAX_NODES) }).passthrough()).min(1).max(MAX_NODES),
  clusters: z.array(imageClusterSchema).max(64).default([]),
  tests: z.object({ run_ncc: z.boolean().optional(), run_syscheck: z.boolean().optional() }).passthrough().optional(),
  /** Converge: how many nodes image at once (default 8). */
  max_parallel: z.number().int().min(1).max(64).optional(),
}).passthrough();

export type ImageNodesRequest = z.infer<typeof imageNodesSchema>;
/** The body a client sends (defaults not yet applied). */
export type ImageNodesInput = z.input<typeof imageNodesSchema>;

export const ipmiConfigSchema = z.object({
  ipmi_user: text.optional(),
  ipmi_password: text.optional(),
  ipmi_netmask: text,
  ipmi_gateway: text,
  blocks: z.array(z.object({ nodes: z.array(z.object({ ipmi_mac: text, ipmi_ip: text, ipmi_configure_now: z.boolean().default(true) }).passthrough()).min(1).max(MAX_NODES) }).passthrough()).min(1).max(MAX_NODES),
}).passthrough();

export type IpmiConfigRequest = z.infer<typeof ipmiConfigSchema>;

/** `node_network_details`: the nodes (by `ipv6_address`) whose addresses to report; none = every discovered node. */
export const nodeNetworkDetailsSchema = z.object({
  nodes: z.array(z.object({ ipv6_address: text }).passthrough()).max(MAX_NODES).default([]),
}).passthrough();

export type NodeNetworkDetailsRequest = z.infer<typeof nodeNetworkDetailsSchema>;

const networkSpecSchema = z.object({
  netmask: text,
  gateway: text,
  vlan: z.number().exactOptional(),
  start: text.exactOptional(),
});

/**
 * Converge: `plan_check`'s body, a PlanInput (core/types.ts). The schema checks the shape; the
 * plan's own rules (formats, subnets, VLAN range, uniqueness) are the plan's errors in the answer.
 */
export const planInputSchema: z.ZodType<PlanInput> = z.object({
  clusterName: text,
  clusterVip: text.exactOptional(),
  dns: z.array(text).max(16),
  ntp: z.array(text).max(16),
  hostnamePrefix: text,
  bmc: networkSpecSchema,
  host: networkSpecSchema,
  cvm: networkSpecSchema,
  nodes: z.array(z.object({
    serial: text,
    bmcIp: text.exactOptional(),
    hostIp: text.exactOptional(),
    cvmIp: text.exactOptional(),
    hostname: text.exactOptional(),
  })).max(MAX_NODES),
  lab: z.boolean(),
});

/**
 * `abort_session` and `retry_node` (POST): no body, or a JSON object; the session (and node)
 * may be named here instead of in the query.
 */
export const sessionActionSchema = z.object({
  session_id: text.optional(),
  /** retry_node: the node to retry. */
  serial: text.optional(),
}).passthrough();

// ---- what the nodes send (protocol/installer.ts) ------------------------------------------------

/** A node's serial: letters, digits, dot, dash, underscore; at most 64. */
export const SERIAL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const serial = z.string().regex(SERIAL_PATTERN, 'must be a node serial (letters, digits, . _ -; at most 64)');
const version = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$/, 'must be a version (letters, digits, . + _ -; at most 64)');
const ipv4 = z.string().max(15).refine(isIpv4, 'must be a dotted IPv4 address');

/** An installer's progress report. */
export const installerReportSchema: z.ZodType<InstallerReport> = z.object({
  serial,
  percent: z.number().int().min(0).max(100),
  message: z.string().max(MAX_MESSAGE),
  status: z.enum(['running', 'done', 'failed']),
});

/** A CVM's announcement; only these fields are kept. */
export const cvmAnnounceSchema: z.ZodType<CvmAnnounce> = z.object({
  serial,
  cvmIp: ipv4,
  hostIp: ipv4,
  hypervisorVersion: version,
  nosVersion: version,
  configured: z.boolean(),
  clusterId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'must be a cluster id (at most 128 characters)').nullable(),
});

/** Foundation's error envelope. */
export interface FoundationError {
  error: { message: string; code: string; details: Record<string, string>; session_id: string | null };
}

/**
 * Parses a request body with its schema. The first problem becomes an InputError naming the field
 * (`body` when the body itself is wrong, e.g. missing or not an object).
 */
export function parseBody<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const i = r.error.issues[0];
  const path = i?.path ?? [];
  throw new InputError(fieldOf(path), input === undefined && path.length === 0 ? 'is required (a JSON object)' : (i?.message ?? 'invalid'));
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
