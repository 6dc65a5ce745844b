/**
 * @module
 * Prism's read model of the VM service's VMs, for lists (v3 `vms/list`, v4 `vms`): the VMs and
 * what their shapes need, fetched at most once per `maxAgeMs` and shared by every list meanwhile;
 * each API version's entities built once per fetch. A list older than `maxAgeMs` is answered as it
 * is while a fresh one is fetched (one at a time), so no list waits for the VM service unless
 * Prism has none or changed a VM itself (`invalidate`: the next list waits for a fresh fetch).
 * A VM changed elsewhere (the CLI, HA) shows in lists within about a second. Single VMs (GET
 * `/vms/{uuid}`) are always read fresh.
 */
import type { Vm } from '../../cvm/protocol/vms.ts';
import type { V3VmContext } from '../core/v3-vms.ts';

export interface VmView {
  vms: Vm[];
  ctx: V3VmContext;
  at: number;
  /** Built once per view, on first use, by `shape`. */
  memo: Map<string, unknown>;
}

export class VmListView {
  private view: VmView | undefined;
  private fetching: { gen: number; p: Promise<VmView> } | undefined;
  private generation = 0;

  constructor(private readonly fetch: () => Promise<{ vms: Vm[]; ctx: V3VmContext }>, private readonly maxAgeMs = 1000, private readonly now: () => number = Date.now) {}

  async get(): Promise<VmView> {
    const v = this.view;
    if (!v) return this.refresh();
    if (this.now() - v.at > this.maxAgeMs) void this.refresh().catch(() => undefined); // answered stale meanwhile
    return v;
  }

  /** Prism changed a VM: the next list waits for a fresh fetch. */
  invalidate(): void {
    this.generation++;
    this.view = undefined;
  }

  /** Something built from a view once (the v3 entities, the v4 objects). */
  static shape<T>(v: VmView, key: string, build: () => T): T {
    if (!v.memo.has(key)) v.memo.set(key, build());
    return v.memo.get(key) as T;
  }

  /**
   * Each VM of a view in one API version's shape, reusing the shape built for the previous view
   * when the VM and the context it names are unchanged: a view of 10,000 VMs costs map look-ups,
   * not 10,000 entities (which stalled the lists answered meanwhile).
   */
  shapes<T>(v: VmView, version: string, build: (vm: Vm, ctx: V3VmContext) => T): T[] {
    return VmListView.shape(v, version, () => {
      const ctxKey = contextKey(v.ctx);
      const old = this.built.get(version) ?? new Map<string, { key: string; shape: unknown }>();
      const next = new Map<string, { key: string; shape: unknown }>();
      const out = v.vms.map((vm) => {
        const key = `${vmKey(vm)}#${ctxKey}`;
        const hit = old.get(vm.uuid);
        const shape = hit && hit.key === key ? (hit.shape as T) : build(vm, v.ctx);
        next.set(vm.uuid, { key, shape });
        return shape;
      });
      this.built.set(version, next);
      return out;
    });
  }

  private readonly built = new Map<string, Map<string, { key: string; shape: unknown }>>();

  private refresh(): Promise<VmView> {
    // a fetch begun before an invalidation may predate the change: the caller waits for a new one
    if (this.fetching?.gen === this.generation) return this.fetching.p;
    const gen = this.generation;
    const started = this.now();
    const p = this.fetch().then(({ vms, ctx }) => {
      const v: VmView = { vms, ctx, at: started, memo: new Map() };
      if (gen === this.generation) this.view = v;
      return v;
    }).finally(() => {
      if (this.fetching?.p === p) this.fetching = undefined;
    });
    this.fetching = { gen, p };
    return p;
  }
}

/** What a VM's shapes depend on (every spec change raises specVersion; state, placement and addresses do not). */
function vmKey(vm: Vm & { lastTask?: string | null }): string {
  return `${vm.specVersion}|${vm.powerState}|${vm.runtimeState}|${vm.host?.serial ?? ''}|${vm.epoch}|${vm.haBlocked ?? ''}|${vm.lastTask ?? ''}|${vm.nics.map((n) => n.ip ?? '').join(',')}`;
}

/** What the shapes read of the context: names of the cluster, hosts, subnets and images. */
function contextKey(c: V3VmContext): string {
  return [c.cluster.uuid, c.cluster.name, ...c.hosts.map((h) => `${h.serial}=${h.uuid}=${h.name}`), ...c.subnets.map((x) => `${x.uuid}=${x.name}`), ...c.images.map((x) => `${x.uuid}=${x.name}`)].join('|');
}
