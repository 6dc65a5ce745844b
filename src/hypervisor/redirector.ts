/**
 * @module
 * The I/O redirector: the hypervisor serves every vdisk to its own clients over NBD on a Unix
 * socket of the host↔CVM link (only this host's processes reach it; ADR 013) and forwards each request to the local CVM's stargate over the host↔CVM link; when the local CVM is down it switches
 * to a healthy remote CVM, and back when the local one returns. Requests caught in flight by a
 * failing CVM are sent again to the next one, so clients see a stall, never an I/O error (writes
 * resent are the same bytes at the same offset).
 */
import { NbdServer } from '../shared/nbd/server.ts';
import type { NbdBackend } from '../shared/nbd/backend.ts';
import { NbdClient, NbdConnectionLost } from '../shared/nbd/client.ts';
import * as C from '../shared/nbd/constants.ts';
import type { NbdClientTls } from '../shared/nbd/starttls.ts';
import { UnavailableError, errorMessage } from '../shared/errors.ts';

const CVM_NBD_PORT = 10809;
const STALL_LIMIT_MS = 60_000;

export interface RedirectorDeps {
  localCvmIp: () => string;
  /** CVM addresses of the cluster, local first (cached by the caller while the local CVM is down). */
  cvms: () => string[];
  /** Names of the vdisks (asked of a CVM). */
  vdisks: () => Promise<string[]>;
  log: (m: string) => void;
  /** The host↔CVM link's NBD socket: the local CVM is reached through it, not over the network. */
  localLink?: () => string | undefined;
  /** The host's certificate from the cluster CA: how remote CVMs' stargates (NBD over TLS) admit it. */
  tls?: () => NbdClientTls | undefined;
}

/** Connects to a CVM's stargate: the local one over the host↔CVM link, others over TCP. */
function reach(deps: RedirectorDeps, ip: string, name: string, timeoutMs: number): Promise<NbdClient> {
  const link = ip === deps.localCvmIp() ? deps.localLink?.() : undefined;
  if (link) return NbdClient.connectPath(link, name, timeoutMs);
  const tls = deps.tls?.();
  if (!tls) return Promise.reject(new UnavailableError(`no cluster certificate to reach CVM ${ip} with`));
  return NbdClient.connect(ip, CVM_NBD_PORT, name, timeoutMs, { tls });
}

class RedirectBackend implements NbdBackend {
  readonly readOnly = false;
  private upstream: NbdClient | undefined;
  private target = '';
  private connecting: Promise<NbdClient> | undefined;
  private failbackTimer: NodeJS.Timeout;

  constructor(readonly name: string, readonly size: bigint, first: NbdClient, firstIp: string, private readonly deps: RedirectorDeps) {
    this.upstream = first;
    this.target = firstIp;
    // fail back to the local CVM when it returns
    this.failbackTimer = setInterval(() => void this.failback(), 2000);
    this.failbackTimer.unref();
  }

  private async failback(): Promise<void> {
    const local = this.deps.localCvmIp();
    if (this.target === local || this.connecting) return;
    try {
      const c = await reach(this.deps, local, this.name, 1000);
      const old = this.upstream;
      this.upstream = c;
      this.target = local;
      this.deps.log(`redirector: ${this.name} back on the local CVM ${local}`);
      setTimeout(() => old?.close(), 5000).unref(); // let requests in flight on the old path finish
    } catch {
      // still down
    }
  }

  private connect(): Promise<NbdClient> {
    if (this.upstream?.alive) return Promise.resolve(this.upstream);
    this.connecting ??= (async () => {
      const deadline = Date.now() + STALL_LIMIT_MS;
      for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
        for (const ip of this.deps.cvms()) {
          try {
            const c = await reach(this.deps, ip, this.name, 2000);
            if (ip !== this.target) this.deps.log(`redirector: ${this.name} now through CVM ${ip}${ip === this.deps.localCvmIp() ? ' (local)' : ' (the local CVM is down)'}`);
            this.upstream = c;
            this.target = ip;
            return c;
          } catch {
            // next CVM
          }
        }
        if (Date.now() > deadline) throw new UnavailableError(`no CVM serves ${this.name}`);
        await new Promise((r) => setTimeout(r, wait));
      }
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Sends a request, resending it through another CVM when the connection it was on is lost. */
  private async call(type: number, offset: number, length: number, payload?: Buffer, flags = 0): Promise<Buffer | undefined> {
    const deadline = Date.now() + STALL_LIMIT_MS;
    for (;;) {
      const c = await this.connect();
      try {
        return await c.request(type, BigInt(offset), length, payload, flags);
      } catch (e) {
        if (!(e instanceof NbdConnectionLost) || Date.now() > deadline) throw e;
        if (this.upstream === c) this.upstream = undefined;
      }
    }
  }

  async pread(offset: number, length: number): Promise<Buffer> {
    return (await this.call(C.NBD_CMD_READ, offset, length)) ?? Buffer.alloc(length);
  }
  async pwrite(offset: number, data: Buffer, fua: boolean): Promise<void> {
    await this.call(C.NBD_CMD_WRITE, offset, data.length, data, fua ? C.NBD_CMD_FLAG_FUA : 0);
  }
  async flush(): Promise<void> {
    await this.call(C.NBD_CMD_FLUSH, 0, 0);
  }
  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    await this.call(C.NBD_CMD_TRIM, offset, length, undefined, fua ? C.NBD_CMD_FLAG_FUA : 0);
  }
  async zero(offset: number, length: number, fua: boolean): Promise<void> {
    await this.call(C.NBD_CMD_WRITE_ZEROES, offset, length, undefined, fua ? C.NBD_CMD_FLAG_FUA : 0);
  }
  close(): Promise<void> {
    clearInterval(this.failbackTimer);
    this.upstream?.close();
    return Promise.resolve();
  }
}

export class Redirector {
  private server: NbdServer;

  constructor(deps: RedirectorDeps) {
    this.server = new NbdServer({
      list: () => deps.vdisks(),
      open: async (name) => {
        for (const ip of deps.cvms()) {
          try {
            const c = await reach(deps, ip, name, 2000);
            return new RedirectBackend(name, c.size, c, ip, deps);
          } catch (e) {
            deps.log(`redirector: ${name} via ${ip}: ${errorMessage(e)}`);
          }
        }
        return undefined;
      },
    }, deps.log);
  }

  /** Serves this host's clients on the Unix socket at `path`. */
  listen(path: string): Promise<void> {
    return this.server.listenPath(path);
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
