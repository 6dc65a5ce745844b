/**
 * @module
 * The VM service's VM records (ACROPOLIS_PREFIX `vms/`, cvm/protocol/vms.ts), mirrored in Prism's
 * memory from the configuration store: read once (in pages, at one revision), then kept by a
 * watch from the next revision. What Prism's list read model (vm-view.ts) takes its VMs from, so a
 * refresh costs a copy of the list, not the VM service's whole list over its API (5 MB with
 * 10,000 VMs, parsed on the event loop). A watch that fails (the store compacted past it, the
 * connection lost for good) makes the next list read everything again.
 */
import type { Etcd3, Watcher } from 'etcd3';
import { errorMessage } from '../../shared/errors.ts';
import { rangeAt } from '../../shared/etcd-range.ts';
import { ACROPOLIS_PREFIX, type Vm } from '../../cvm/protocol/vms.ts';

export const VMS_PREFIX = `${ACROPOLIS_PREFIX}vms/`;

export class VmRecords {
  private vms = new Map<string, Vm>();
  private ready: Promise<void> | undefined;
  private watcher: Watcher | undefined;
  private stopped = false;

  constructor(private readonly etcd: Etcd3, private readonly log: (m: string) => void) {}

  /** Every VM, in the order they were created (as the VM service lists them). */
  async list(): Promise<Vm[]> {
    this.ready ??= this.load().catch((e: unknown) => {
      this.ready = undefined;
      throw e;
    });
    await this.ready;
    return [...this.vms.values()];
  }

  private async load(): Promise<void> {
    const { kvs, revision } = await rangeAt(this.etcd, VMS_PREFIX);
    const next = new Map<string, Vm>();
    for (const kv of [...kvs].sort((a, b) => Number(BigInt(a.create_revision) - BigInt(b.create_revision)))) next.set(kv.key.toString().slice(VMS_PREFIX.length), JSON.parse(kv.value.toString()) as Vm);
    await this.watcher?.cancel().catch(() => undefined);
    if (this.stopped) return;
    // every change after the revision the records were read at
    const w = await this.etcd.watch().prefix(VMS_PREFIX).startRevision(String(BigInt(revision) + 1n)).create();
    this.vms = next;
    w.on('put', (kv) => this.vms.set(kv.key.toString().slice(VMS_PREFIX.length), JSON.parse(kv.value.toString()) as Vm)); // a new key goes last: creation order
    w.on('delete', (kv) => this.vms.delete(kv.key.toString().slice(VMS_PREFIX.length)));
    w.on('error', (e: unknown) => {
      this.log(`VM records: the watch failed (${errorMessage(e)}); reading them again`);
      this.ready = undefined;
    });
    this.watcher = w;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel().catch(() => undefined);
  }
}
