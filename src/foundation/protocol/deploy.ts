/**
 * @module
 * What every client of Foundation needs to deploy, in one place so the CLI, the web UI and the
 * tests agree (STYLE.md C14): the wire types of the validation report, the IP plan and the event
 * stream, and the two pure steps between the API calls — a plan input from discovered nodes, and
 * an `image_nodes` body from a checked plan. Free of runtime dependencies: the browser bundles it.
 */
import type { DiscoverNode, ImageNodesInput } from './api.ts';
import type { Plan, PlanInput } from '../core/types.ts';

export type {
  CheckResult, NetworkSpec, NodeReport, Plan, PlanError, PlanInput, PlanNode, PlanNodeInput, Profile, ValidationReport, Verdict,
} from '../core/types.ts';
export type { PlanResult } from '../core/ip-plan.ts';
export type { Stage as ImagingStage } from '../core/imaging.ts';
import type { ClusterStage, ClusterCheck } from '../core/cluster-stage.ts';
export type { ClusterStage, ClusterCheck };
export type { DiscoverBlock, DiscoverNode, ImageNodesInput, ProgressNode, ProgressResponse, UploadReply, FoundationError } from './api.ts';

/**
 * Converge: one event of `GET /foundation/events` (and of the session's log): `serial` names the
 * node, or is null for the session and its clusters; `stage` is the node's imaging stage after the
 * step ('cluster' on a cluster's events, which also carry `cluster`, the entry's `cluster_stage`
 * after the step and, on a validation's result, the `check`), `percent` its percent.
 */
export interface FoundationEvent {
  seq: number;
  /** ISO time on Foundation's clock. */
  time: string;
  serial: string | null;
  stage: string | null;
  percent: number | null;
  message: string;
  cluster?: string;
  cluster_stage?: ClusterStage;
  check?: ClusterCheck;
}

/**
 * The event type the stream sends once it has replayed the log (data: `{"seq": N}`, the last
 * replayed seq); live events follow. A client that rebuilds its view from the log can draw once
 * here instead of once per replayed event.
 */
export const EVENTS_CAUGHT_UP = 'caught-up';

/** `GET /foundation/sessions`: one entry per session. */
export interface SessionSummary {
  session_id: string;
  created: string;
  imaging_stopped: boolean;
  aggregate_percent_complete: number;
}

export interface PlanChoices {
  clusterName: string;
  vip?: string;
  dns: string[];
  ntp: string[];
  hostnamePrefix: string;
  /** First BMC address; absent = every BMC keeps its current address. */
  bmcStart?: string;
  bmcNetmask: string;
  /** Default: x.y.255.254 of the first BMC's /16. */
  bmcGateway?: string;
  hostStart: string;
  cvmStart: string;
  /** Host and CVM netmask and gateway. */
  netmask: string;
  gateway: string;
  /** A lab: every address must be loopback. */
  lab: boolean;
}

/** The plan input (for `plan_check`) that assigns addresses to these nodes, in this order. */
export function planInputFor(nodes: readonly Pick<DiscoverNode, 'node_serial' | 'ipmi_ip'>[], c: PlanChoices): PlanInput {
  const firstBmc = c.bmcStart ?? nodes[0]?.ipmi_ip ?? '127.10.0.1';
  const input: PlanInput = {
    clusterName: c.clusterName, dns: c.dns, ntp: c.ntp, hostnamePrefix: c.hostnamePrefix,
    bmc: { netmask: c.bmcNetmask, gateway: c.bmcGateway ?? firstBmc.replace(/\.\d+\.\d+$/, '.255.254'), ...(c.bmcStart ? { start: c.bmcStart } : {}) },
    host: { netmask: c.netmask, gateway: c.gateway, start: c.hostStart },
    cvm: { netmask: c.netmask, gateway: c.gateway, start: c.cvmStart },
    nodes: nodes.map((n) => (c.bmcStart ? { serial: n.node_serial } : { serial: n.node_serial, bmcIp: n.ipmi_ip })),
    lab: c.lab,
  };
  if (c.vip) input.clusterVip = c.vip;
  return input;
}

export interface ImageChoices {
  /** A bundle in the repository (enumerate_nos_packages). */
  bundle: string;
  vcpus: number;
  ramGiB: number;
  /** Where each node's BMC answers now (serial → address): a plan that moves it configures it. */
  current: ReadonlyMap<string, string>;
  /** The RF of the cluster to create and validate from the plan's nodes, or null for imaging only. */
  cluster: 1 | 2 | 3 | null;
  /** Serials whose hardware-validation FAIL the user overrides. */
  overrides?: readonly string[];
  /** Prism's initial admin password for the cluster (absent: the cluster generates one). */
  adminPassword?: string;
}

/** A checked plan as the public `image_nodes` body. */
export function imageNodesBody(plan: Plan, o: ImageChoices): ImageNodesInput {
  return {
    nos_package: o.bundle,
    hypervisor_iso: {},
    cvm_netmask: plan.cvm.netmask, cvm_gateway: plan.cvm.gateway,
    hypervisor_netmask: plan.host.netmask, hypervisor_gateway: plan.host.gateway, hypervisor_nameserver: plan.dns.join(','),
    ipmi_netmask: plan.bmc.netmask, ipmi_gateway: plan.bmc.gateway,
    blocks: [{
      nodes: plan.nodes.map((n) => ({
        node_serial: n.serial, hypervisor: 'kvm', image_now: true, ipmi_ip: n.bmcIp,
        ipmi_configure_now: o.current.get(n.serial) !== undefined && o.current.get(n.serial) !== n.bmcIp,
        hypervisor_ip: n.hostIp, cvm_ip: n.cvmIp, hypervisor_hostname: n.hostname, cvm_num_vcpus: o.vcpus, cvm_gb_ram: o.ramGiB,
        ...(o.overrides?.includes(n.serial) ? { override_validation: true } : {}),
      })),
    }],
    clusters: o.cluster === null ? [] : [{
      cluster_name: plan.clusterName, cluster_members: plan.nodes.map((n) => n.cvmIp), cluster_init_now: true, redundancy_factor: o.cluster,
      ...(plan.clusterVip ? { cluster_external_ip: plan.clusterVip } : {}), cvm_dns_servers: plan.dns, cvm_ntp_servers: plan.ntp,
      ...(o.adminPassword ? { admin_password: o.adminPassword } : {}),
    }],
  };
}
