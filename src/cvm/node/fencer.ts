/**
 * @module
 * Fencing through a host's BMC over Redfish (docs/ha.md): find the system (`GET /redfish/v1/Systems`,
 * its first member), `POST …/Actions/ComputerSystem.Reset {ResetType: 'ForceOff'}`, then read
 * `PowerState` until it is `Off` (or the timeout). Only an `Off` answered by the BMC confirms a
 * fence; anything else is a failure with its reason, and HA restarts nothing. Also `powerOn`, to
 * return a fenced host. HTTPS with the BMC's CA pinned (undici, through the Redfish client); the
 * password is sent to the BMC only, never logged nor put in an error.
 */
import type { Clock } from '../../shared/clock.ts';
import { errorMessage, TimeoutError, UnavailableError } from '../../shared/errors.ts';
import { RedfishClient, RedfishClientError } from '../../rack/protocol/redfish-client.ts';
import { bmcBaseUrl, type BmcAccess } from '../protocol/bmcs.ts';

export { BMCS_PREFIX, bmcBaseUrl, type BmcAccess, type StoredBmc } from '../protocol/bmcs.ts';

export interface FencerOptions {
  clock: Clock;
  /** How long the BMC gets to report Off (or On) after the reset (default 60 s). */
  timeoutMs?: number;
  /** How often PowerState is read meanwhile (default 500 ms). */
  pollMs?: number;
  /** Each Redfish request's own timeout (default 10 s). */
  requestTimeoutMs?: number;
}

export interface FenceResult {
  /** Whether ForceOff was sent (false: the BMC already said Off). */
  sent: boolean;
  /** How long it took until the BMC reported Off. */
  tookMs: number;
}

type Json = Record<string, unknown>;

export class RedfishFencer {
  private readonly client: RedfishClient;
  private system: string | undefined;
  private readonly o: Required<FencerOptions>;

  constructor(readonly bmc: BmcAccess, opts: FencerOptions) {
    this.o = { timeoutMs: 60_000, pollMs: 500, requestTimeoutMs: 10_000, ...opts };
    this.client = new RedfishClient(bmcBaseUrl(bmc.address), bmc.user, bmc.password, bmc.ca ?? undefined, this.o.requestTimeoutMs);
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** The first member of /redfish/v1/Systems. */
  async systemPath(): Promise<string> {
    if (this.system) return this.system;
    const first = await this.call('list its systems', () => this.client.firstSystem());
    if (first === null) throw new UnavailableError(`the BMC at ${this.bmc.address} lists no system`);
    this.system = first;
    return first;
  }

  /** PowerState as the BMC reports it (On, Off, PoweringOn, PoweringOff). */
  async powerState(): Promise<string> {
    const path = await this.systemPath();
    const sys = await this.call('read the power state', () => this.client.get<Json>(path));
    return typeof sys['PowerState'] === 'string' ? sys['PowerState'] : 'Unknown';
  }

  /** Powers the host off (ForceOff) and waits until the BMC reports Off. Throws when it cannot confirm it. */
  async fence(signal?: AbortSignal): Promise<FenceResult> {
    const t0 = this.o.clock.now();
    const path = await this.systemPath();
    let sent = false;
    if ((await this.powerState()) !== 'Off') {
      await this.call('power the host off', () => this.client.reset(path, 'ForceOff'));
      sent = true;
    }
    await this.until('Off', t0, signal);
    return { sent, tookMs: this.o.clock.now() - t0 };
  }

  /** Powers the host on (Reset On) unless it is on, and waits until the BMC reports On. */
  async powerOn(signal?: AbortSignal): Promise<{ sent: boolean }> {
    const t0 = this.o.clock.now();
    const path = await this.systemPath();
    const state = await this.powerState();
    if (state === 'On') return { sent: false };
    await this.call('power the host on', () => this.client.reset(path, 'On'));
    await this.until('On', t0, signal);
    return { sent: true };
  }

  private async until(want: 'On' | 'Off', t0: number, signal?: AbortSignal): Promise<void> {
    let last = '';
    for (;;) {
      signal?.throwIfAborted();
      last = await this.powerState();
      if (last === want) return;
      const left = t0 + this.o.timeoutMs - this.o.clock.now();
      if (left <= 0) throw new TimeoutError(`the BMC at ${this.bmc.address} did not report ${want} within ${Math.round(this.o.timeoutMs / 1000)} s (PowerState ${last})`);
      await this.o.clock.sleep(Math.min(this.o.pollMs, left), signal);
    }
  }

  /** A Redfish call whose failure says what was being done, at which BMC (never with the credentials). */
  private async call<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof RedfishClientError) {
        const why = e.status === 401 ? 'it refused the credentials' : e.status === 403 ? 'the account may not do this' : errorMessage(e);
        throw new UnavailableError(`could not ${what} through the BMC at ${this.bmc.address}: ${why}`);
      }
      throw new UnavailableError(`could not ${what} through the BMC at ${this.bmc.address}: ${causeOf(e)}`);
    }
  }
}

/** fetch failed → its cause (ECONNREFUSED, a certificate error, a timeout). */
function causeOf(e: unknown): string {
  const c = (e as { cause?: unknown }).cause;
  const msg = errorMessage(e);
  if (c instanceof Error) return `${msg} (${(c as { code?: string }).code ?? c.message})`;
  return msg;
}

/**
 * Fencing by host serial with the credentials the cluster keeps (`read`: the StoredBmc under
 * BMCS_PREFIX + serial): what HaPorts.fence and HaPorts.powerOn are wired to. A host without a
 * known BMC cannot be fenced, and says so (its VMs are ha-blocked with that reason).
 */
export class BmcFencing {
  constructor(private readonly d: { clock: Clock; read: (serial: string) => Promise<BmcAccess | undefined>; timeoutMs?: number; pollMs?: number }) {}

  async fence(serial: string, signal?: AbortSignal): Promise<FenceResult> {
    return this.with(serial, (f) => f.fence(signal));
  }

  async powerOn(serial: string, signal?: AbortSignal): Promise<{ sent: boolean }> {
    return this.with(serial, (f) => f.powerOn(signal));
  }

  private async with<T>(serial: string, op: (f: RedfishFencer) => Promise<T>): Promise<T> {
    const bmc = await this.d.read(serial);
    if (!bmc) throw new UnavailableError(`no BMC is known for host ${serial} (give it in the cluster create request, bmcs[])`);
    const f = new RedfishFencer(bmc, { clock: this.d.clock, ...(this.d.timeoutMs ? { timeoutMs: this.d.timeoutMs } : {}), ...(this.d.pollMs ? { pollMs: this.d.pollMs } : {}) });
    try {
      return await op(f);
    } finally {
      await f.close();
    }
  }
}
