/**
 * @module
 * The OpenAPI description Foundation serves at /foundation/openapi.json: the public Foundation
 * endpoints Converge offers and its own additions. Request bodies are generated from the zod
 * schemas the routes validate with (protocol/api.ts), so the document cannot drift from them.
 */
import { z } from 'zod';
import { cvmAnnounceSchema, imageNodesSchema, installerReportSchema, ipmiConfigSchema, nodeNetworkDetailsSchema, planInputSchema, sessionActionSchema } from '../protocol/api.ts';

/** A JSON request body described by the schema its route parses it with. */
const body = (schema: z.ZodType): Record<string, unknown> => ({
  required: false,
  content: { 'application/json': { schema: z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) } },
});
const ok = { '200': { description: 'OK' } };
const env = (description: string): Record<string, unknown> => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
const err = {
  '400': env('bad input: the envelope names the field'),
  '401': env('no or a wrong credential (the API token beyond loopback; a node\'s own credential on node callbacks)'),
  '404': env('unknown session, node, bundle or endpoint'),
  '413': env('the body is larger than this endpoint takes'),
  '415': env('a content type this endpoint does not take'),
};
const nodeAuth = [{ nodeCredential: [] }];
const media = (summary: string): Record<string, unknown> => ({ get: { 'x-converge': true, summary, security: [], responses: { ...ok, ...err } } });
const sid = { name: 'session_id', in: 'query', required: true, schema: { type: 'string' } };

export const OPENAPI = {
  openapi: '3.0.3',
  info: {
    title: 'Converge Foundation', version: '0.1.0',
    description: 'Public Foundation API shapes plus Converge additions (x-converge: true). Open on loopback; beyond it, the API token printed at start (Bearer, or the cookie /login sets). Node callbacks take the node\'s own credential; media paths carry the media token.',
  },
  security: [{}, { apiToken: [] }, { apiCookie: [] }],
  components: {
    securitySchemes: {
      apiToken: { type: 'http', scheme: 'bearer', description: 'Foundation\'s API token (beyond loopback)' },
      apiCookie: { type: 'apiKey', in: 'cookie', name: 'converge_foundation' },
      nodeCredential: { type: 'http', scheme: 'bearer', description: 'the node\'s foundationToken from its install configuration' },
    },
    schemas: {
      Error: { type: 'object', properties: { error: { type: 'object', properties: { message: { type: 'string' }, code: { type: 'string' }, details: { type: 'object', additionalProperties: { type: 'string' } }, session_id: { type: 'string', nullable: true } } } } },
    },
  },
  paths: {
    '/foundation/version': { get: { summary: 'Foundation version (text)', responses: ok } },
    '/foundation/discover_nodes': { get: { summary: 'Discover nodes: blocks with nodes (rack lists, SSDP, optional range=a-b)', responses: ok } },
    '/foundation/node_network_details': { post: { summary: 'Network details of discovered nodes by ipv6_address', requestBody: body(nodeNetworkDetailsSchema), responses: { ...ok, ...err } } },
    '/foundation/ipmi_config': { post: { summary: 'Set BMC addresses (by ipmi_mac)', requestBody: body(ipmiConfigSchema), responses: { ...ok, ...err } } },
    '/foundation/image_nodes': { post: { summary: 'Start imaging; returns { session_id }', requestBody: body(imageNodesSchema), responses: { ...ok, ...err, '409': env('a node is in a running cluster (set reimage: true on it)') } } },
    '/foundation/progress': { get: { summary: 'Session progress; success = imaging_stopped && aggregate_percent_complete == 100', parameters: [sid], responses: { ...ok, ...err } } },
    '/foundation/abort_session': { get: { summary: 'Abort a session', parameters: [sid], responses: ok }, post: { summary: 'Abort a session', parameters: [sid], requestBody: body(sessionActionSchema), responses: ok } },
    '/foundation/enumerate_nos_packages': { get: { summary: 'Bundles in the repository', responses: ok } },
    '/foundation/enumerate_hypervisor_isos': { get: { summary: 'Hypervisors (bundled with the release bundles)', responses: ok } },
    '/foundation/upload': { post: { summary: 'Upload a bundle (installer_type=nos&filename=...), octet-stream', responses: { ...ok, ...err } } },
    '/foundation/node_log': { get: { summary: 'A node log (serial or hypervisor_ip)', parameters: [sid], responses: ok } },
    '/foundation/cluster_log': { get: { summary: 'The session log', parameters: [sid], responses: ok } },
    '/foundation/events': { get: { 'x-converge': true, summary: 'Server-sent events of a session (event: progress; after=N or Last-Event-ID); the replay of the log ends with event: caught-up, data {"seq": N}', parameters: [sid], responses: ok } },
    '/foundation/validation': { get: { 'x-converge': true, summary: 'Hardware validation report of the discovered nodes (profile, redundancy_factor, overrides, nos_package: whose minimum firmware; default the newest bundle)', responses: { ...ok, ...err } } },
    '/foundation/plan_check': { post: { 'x-converge': true, summary: 'Check an IP plan input; returns { plan, errors }', requestBody: body(planInputSchema), responses: { ...ok, ...err } } },
    '/foundation/retry_node': { post: { 'x-converge': true, summary: 'Retry a failed node of a session (serial=)', parameters: [sid], requestBody: body(sessionActionSchema), responses: { ...ok, ...err } } },
    '/foundation/openapi.json': { get: { 'x-converge': true, summary: 'This document', responses: ok } },
    '/foundation/sessions': { get: { 'x-converge': true, summary: 'All sessions', responses: ok } },
    '/foundation/media/{session}/{serial}/{token}/installer.tar': media('Virtual media for a node (the installer); token = the media token'),
    '/foundation/media/{session}/{serial}/{token}/config.json': media("A node's install configuration, with its node credential (foundationToken)"),
    '/foundation/media/{session}/{serial}/{token}/bundle.tar.gz': media("The session's bundle, for the node's installer"),
    '/foundation/installer/{session}/{serial}/report': { post: { 'x-converge': true, summary: 'Installer progress report (the node credential)', security: nodeAuth, requestBody: body(installerReportSchema), responses: { ...ok, ...err, '403': env('another node\'s credential') } } },
    '/foundation/cvm_announce': { post: { 'x-converge': true, summary: 'A CVM announces itself (serial, addresses, versions, configured, clusterId), with its node credential', security: nodeAuth, requestBody: body(cvmAnnounceSchema), responses: { ...ok, ...err, '403': env('another node\'s credential') } } },
    '/foundation/bundles/{file}': { get: { 'x-converge': true, summary: 'Download a bundle', responses: { ...ok, ...err } } },
    '/login': { get: { 'x-converge': true, summary: 'Sets the API token cookie (token=) and sends the browser to the web UI', security: [], responses: { '303': { description: 'to /' }, '401': env('not the API token') } } },
  },
} as const;
