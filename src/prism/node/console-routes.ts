/**
 * @module
 * What Prism's browser console needs beyond the public APIs (ADR 017): the console itself (a React
 * app built by Vite from web/prism/ to web/prism/dist, shipped in the release bundle beside
 * prism.mjs) at `/console/`, and a VM's serial console live over a websocket:
 *
 *   GET /console/…                                    the app (no authentication: it holds no data; it logs in)
 *   GET /favicon.ico                                  its icon
 *   GET /api/converge/v1/vms/{uuid}/console/stream    websocket: the guest's serial output as text
 *                                                     frames (the last 64 KiB first), what the browser
 *                                                     sends typed on the serial console
 *
 * The websocket is authenticated like every API call (the session cookie, by the onRequest hook in
 * node/server.ts, before the upgrade); its Origin must be this Prism (a page elsewhere cannot drive
 * it with the user's cookie). The stream polls the VM service's console (a chunk API that any CVM
 * answers from the VM's host) while the socket is open.
 */
import type { FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import type { ConsoleChunk } from '../../hypervisor/protocol/vms.ts';
import { ForbiddenError, NotFoundError, errorMessage } from '../../shared/errors.ts';
import { registerWebUi } from '../../shared/web-ui.ts';
import type { CvmCaller } from './server.ts';
import { vmOf } from './vm-service.ts';

/** The console's paths: served to anyone (they hold no data, and the login page is one of them). */
export const isConsoleAsset = (url: string): boolean => url === '/favicon.ico' || url === '/console' || url.startsWith('/console/');

/** History sent when a console opens. */
const HISTORY_BYTES = 64 * 1024;
/** How often the guest's output is looked for while nothing comes (it comes in 64 KiB chunks when there is more). */
const POLL_MS = 300;
/** A websocket that answers no ping for this long is closed. */
const PING_MS = 20_000;
/** Longest input frame (the VM service takes 4 KiB at most per call). */
const INPUT_MAX = 4096;

const FAVICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f4f8f"/><path d="M4 5h8M4 8h8M4 11h8" stroke="#fff" stroke-width="1.6"/></svg>';

export interface ConsoleDeps {
  /** The built console (index.html and assets/); missing: 503 saying how to build it. */
  dir: string;
  cvm: CvmCaller;
  log: (m: string) => void;
}

export function registerConsole(app: FastifyInstance, d: ConsoleDeps): void {
  registerWebUi(app, d.dir, { base: '/console/', spa: true, what: "Prism's console", hint: 'The API is at /api/nutanix/v3/, /api/nutanix/v2.0/ and the v4 namespaces (docs/prism.md).\n' });
  app.get('/console', (_req, reply) => reply.redirect('/console/', 302));
  app.get('/favicon.ico', (_req, reply) => reply.type('image/svg+xml').header('Cache-Control', 'public, max-age=86400').send(FAVICON));

  // a request to upgrade its connection that is answered instead (no credentials, not a websocket
  // route) leaves its socket outside Node's HTTP server: it is closed once answered
  app.addHook('onResponse', (req, _reply, done) => {
    if (req.headers.upgrade !== undefined) req.raw.socket.destroy();
    done();
  });
  // the websocket route and its plugin in a scope of their own: the plugin wraps the routes declared after it
  void app.register(async (sub) => {
    await sub.register(websocket, { options: { maxPayload: INPUT_MAX } });
    sub.get('/api/converge/v1/vms/:uuid/console/stream', {
      websocket: true,
      // a websocket from a page of another site would carry the user's cookie: the page must be Prism's
      preValidation: (req, _reply, done) => {
        const origin = req.headers.origin;
        done(origin !== undefined && origin !== `https://${req.headers.host ?? ''}` ? new ForbiddenError(`Origin: ${origin.slice(0, 100)} is not this Prism`) : undefined);
      },
    }, async (socket, req) => {
      const uuid = (req.params as Record<string, string>)['uuid'] ?? '';
      let vm: string;
      try {
        vm = (await vmOf(d.cvm, uuid, 'VM')).uuid;
      } catch (e) {
        socket.close(e instanceof NotFoundError ? 4404 : 1011, errorMessage(e).slice(0, 120));
        return;
      }
      stream(socket, vm, d);
    });
  });
}

/** Pumps a VM's console into the socket until it closes; frames from the browser are typed on it. */
function stream(socket: WebSocket, uuid: string, d: ConsoleDeps): void {
  let open = true;
  let alive = true;
  const path = `/vms/${encodeURIComponent(uuid)}/console`;
  const ping = setInterval(() => {
    if (!alive) return socket.terminate();
    alive = false;
    socket.ping();
  }, PING_MS);
  socket.on('pong', () => {
    alive = true;
  });
  socket.on('close', () => {
    open = false;
    clearInterval(ping);
  });
  socket.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer)).toString('utf8');
    if (text.length === 0) return;
    d.cvm(`${path}/input`, { body: { data: text } }).catch((e: unknown) => {
      if (open) socket.send(`\r\n[console input refused: ${errorMessage(e)}]\r\n`);
    });
  });
  void (async () => {
    let offset = -1;
    let said = '';
    while (open) {
      try {
        if (offset < 0) {
          // where the log ends now: the history sent is its last 64 KiB
          const end = await d.cvm<ConsoleChunk>(`${path}?offset=${Number.MAX_SAFE_INTEGER}`);
          offset = Math.max(0, end.next - HISTORY_BYTES);
        }
        const c = await d.cvm<ConsoleChunk>(`${path}?offset=${offset}`);
        // a VM started again writes a new log: read it from its start
        if (c.next < offset) offset = 0;
        else offset = c.next;
        if (c.text !== '' && open) socket.send(c.text);
        said = '';
        if (c.text !== '') continue;
      } catch (e) {
        const why = errorMessage(e);
        if (why !== said && open) socket.send(`\r\n[${why}]\r\n`);
        said = why;
      }
      await new Promise((r) => setTimeout(r, said ? POLL_MS * 10 : POLL_MS));
    }
  })();
}
