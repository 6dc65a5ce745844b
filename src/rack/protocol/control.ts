/**
 * @module
 * The rack's control API (HTTP on <bmc-network>.255.254:8080, loopback only): what the CLI,
 * Foundation's discovery and tests use to list BMCs, rack nodes and inject faults.
 *
 *   GET    /rack                           RackStatus
 *   GET    /rack/bmcs                      { bmcs: [{ serial, uuid, model, url, mac }] }  (discovery where multicast does not work)
 *   POST   /rack/nodes                     { count, model? | modelFile? } → { nodes: RackNodeSummary[] }
 *   GET    /rack/nodes/{serial}            RackNodeSummary
 *   PATCH  /rack/nodes/{serial}/faults     FaultPatch → { faults }
 *   DELETE /rack/nodes/{serial}/faults     → { faults } (all cleared)
 *   POST   /rack/shutdown                  stops the rack (rack down)
 * POST, PATCH and DELETE take a JSON object (`{}` when there is nothing to say) with
 * `Content-Type: application/json`; anything else is 400 (field "Content-Type" or "body").
 * Errors: { error: { code, message, field?, allowed? } } with 400 / 404 / 409 / 500.
 */

export interface RackFaults {
  bmcUnreachable: boolean;
  bmcSlowMs: number;
  failedDisks: string[];
  powerOnFailure: boolean;
  bootFailure: boolean;
  nicLinkDown: string[];
  installerCrashAtPercent: number | null;
}

export type FaultPatch = Partial<RackFaults>;

export interface RackNodeSummary {
  serial: string;
  uuid: string;
  model: string;
  block: string;
  position: string;
  bmc: { url: string; ip: string; mac: string; reachable: boolean };
  power: string;
  bootProgress: string;
  running?: { source: string; name: string; version: string };
  faults: RackFaults;
}

export interface RackStatus {
  dataDir: string;
  controlUrl: string;
  caCert: string;
  pace: number;
  bmcUser: string;
  ssdp: boolean;
  pid: number;
  nodes: RackNodeSummary[];
}
