/**
 * @module
 * The OpenAPI description Foundation serves at /foundation/openapi.json: the public Foundation
 * endpoints Converge offers and its own additions.
 */
const ok = { '200': { description: 'OK' } };
const err = { '400': { description: 'bad input: Foundation error envelope naming the field' }, '404': { description: 'unknown session, node or bundle' } };
const sid = { name: 'session_id', in: 'query', required: true, schema: { type: 'string' } };

export const OPENAPI = {
  openapi: '3.0.3',
  info: { title: 'Converge Foundation', version: '0.1.0', description: 'Public Foundation API shapes plus Converge additions (x-converge: true).' },
  components: {
    schemas: {
      Error: { type: 'object', properties: { error: { type: 'object', properties: { message: { type: 'string' }, code: { type: 'string' }, details: { type: 'object', additionalProperties: { type: 'string' } }, session_id: { type: 'string', nullable: true } } } } },
    },
  },
  paths: {
    '/foundation/version': { get: { summary: 'Foundation version (text)', responses: ok } },
    '/foundation/discover_nodes': { get: { summary: 'Discover nodes: blocks with nodes (rack lists, SSDP, optional range=a-b)', responses: ok } },
    '/foundation/node_network_details': { post: { summary: 'Network details of discovered nodes by ipv6_address', responses: ok } },
    '/foundation/ipmi_config': { post: { summary: 'Set BMC addresses (by ipmi_mac)', responses: { ...ok, ...err } } },
    '/foundation/image_nodes': { post: { summary: 'Start imaging; returns { session_id }', responses: { ...ok, ...err } } },
    '/foundation/progress': { get: { summary: 'Session progress; success = imaging_stopped && aggregate_percent_complete == 100', parameters: [sid], responses: { ...ok, ...err } } },
    '/foundation/abort_session': { get: { summary: 'Abort a session', parameters: [sid], responses: ok }, post: { summary: 'Abort a session', parameters: [sid], responses: ok } },
    '/foundation/enumerate_nos_packages': { get: { summary: 'Bundles in the repository', responses: ok } },
    '/foundation/enumerate_hypervisor_isos': { get: { summary: 'Hypervisors (bundled with the release bundles)', responses: ok } },
    '/foundation/upload': { post: { summary: 'Upload a bundle (installer_type=nos&filename=...), octet-stream', responses: { ...ok, ...err } } },
    '/foundation/node_log': { get: { summary: 'A node log (serial or hypervisor_ip)', parameters: [sid], responses: ok } },
    '/foundation/cluster_log': { get: { summary: 'The session log', parameters: [sid], responses: ok } },
    '/foundation/events': { get: { 'x-converge': true, summary: 'Server-sent events of a session (event: progress; after=N or Last-Event-ID); the replay of the log ends with event: caught-up, data {"seq": N}', parameters: [sid], responses: ok } },
    '/foundation/validation': { get: { 'x-converge': true, summary: 'Hardware validation report of the discovered nodes (profile, redundancy_factor, overrides)', responses: ok } },
    '/foundation/plan_check': { post: { 'x-converge': true, summary: 'Check an IP plan input; returns { plan, errors }', responses: ok } },
    '/foundation/retry_node': { post: { 'x-converge': true, summary: 'Retry a failed node of a session (serial=)', parameters: [sid], responses: { ...ok, ...err } } },
    '/foundation/sessions': { get: { 'x-converge': true, summary: 'All sessions', responses: ok } },
    '/foundation/media/{session}/{serial}/installer.tar': { get: { 'x-converge': true, summary: 'Virtual media for a node (the installer)', responses: ok } },
    '/foundation/media/{session}/{serial}/config.json': { get: { 'x-converge': true, summary: "A node's install configuration", responses: ok } },
    '/foundation/installer/{session}/{serial}/report': { post: { 'x-converge': true, summary: 'Installer progress report', responses: ok } },
    '/foundation/cvm_announce': { post: { 'x-converge': true, summary: 'A CVM announces itself (serial, versions, configured)', responses: ok } },
    '/foundation/bundles/{file}': { get: { 'x-converge': true, summary: 'Download a bundle', responses: ok } },
  },
} as const;
