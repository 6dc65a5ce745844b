/**
 * @module
 * The rack's control API (HTTP on <bmc-network>.255.254:8080, loopback only): what the CLI,
 * Foundation's discovery and tests use to list BMCs, rack nodes and inject faults.
 *
 *   GET    /rack                           RackStatus
 *   GET    /rack/bmcs                      { bmcs: [{ serial, uuid, model, url, mac }] }  (discovery where multicast does not work)
 *   POST   /rack/nodes                     { count?, model? | modelFile? } → 201 { nodes: RackNodeSummary[] }
 *   GET    /rack/nodes/{serial}            RackNodeSummary
 *   PATCH  /rack/nodes/{serial}/faults     FaultPatch → { faults }
 *   DELETE /rack/nodes/{serial}/faults     {} → { faults } (all cleared)
 *   POST   /rack/shutdown                  {} → 202 { stopping: true } (rack down)
 *   POST   /rack/token                     {} → { rotated: true }: a new token, written to the token file
 *
 * Every request carries `Authorization: Bearer <token>`, the token in `<data-dir>/rack/control-token`
 * (access.ts reads it); without it the answer is 401 and nothing is read or changed. POST, PATCH and
 * DELETE take a JSON object (`{}` when there is nothing to say, at most CONTROL_BODY_LIMIT bytes)
 * with `Content-Type: application/json`, checked against the route's schema below.
 * Errors: { error: { code, message, field?, allowed? } } with 400 (field names what is wrong), 401,
 * 404, 405 (+ Allow), 409, 413, 500, and 501 for an HTTP method the server does not know.
 */
import { z } from 'zod';
import { InputError } from '../../shared/errors.ts';

/** The largest request body the control API reads. */
export const CONTROL_BODY_LIMIT = 64 << 10;

/** A fault injection: any subset of the faults (protocol of PATCH /rack/nodes/{serial}/faults). */
export const faultPatchSchema = z.strictObject({
  bmcUnreachable: z.boolean(),
  bmcSlowMs: z.number().int().min(0).max(600_000),
  failedDisks: z.array(z.string().max(128)).max(256),
  powerOnFailure: z.boolean(),
  bootFailure: z.boolean(),
  nicLinkDown: z.array(z.string().max(128)).max(256),
  installerCrashAtPercent: z.number().min(0).max(100).nullable(),
}).partial();

/** POST /rack/nodes: how many nodes, of a known model (by name) or of a model definition. */
export const addNodesSchema = z.strictObject({
  count: z.number().int().min(1).max(1000).default(1),
  model: z.string().min(1).max(128).optional(),
  /** A hardware model definition (core/models.ts checks it). */
  modelFile: z.unknown().optional(),
});

/** The body of a route that takes no parameters. */
export const emptySchema = z.strictObject({});

/**
 * Checks a request body against its schema. The error names the field (a path like
 * `failedDisks.0`; `body` when the body itself is not an object) and changes nothing.
 */
export function parseControlBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (!issue) throw new InputError('body', 'is not valid');
  if (issue.code === 'unrecognized_keys') {
    const allowed = schema instanceof z.ZodObject ? Object.keys(schema.shape) : undefined;
    throw new InputError(issue.keys[0] ?? 'body', allowed && allowed.length > 0 ? 'is not a field of this request' : 'is not a field of this request (it takes none)', allowed);
  }
  const field = issue.path.map(String).join('.') || 'body';
  throw new InputError(field, issue.path.length === 0 && issue.code === 'invalid_type' ? 'must be a JSON object' : issue.message);
}

export interface RackFaults {
  bmcUnreachable: boolean;
  bmcSlowMs: number;
  failedDisks: string[];
  powerOnFailure: boolean;
  bootFailure: boolean;
  nicLinkDown: string[];
  installerCrashAtPercent: number | null;
}

export type FaultPatch = z.input<typeof faultPatchSchema>;

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

export interface RackBmc {
  serial: string;
  uuid: string;
  model: string;
  /** The service root, https://<ip>:<port>/redfish/v1/ */
  url: string;
  mac: string;
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
