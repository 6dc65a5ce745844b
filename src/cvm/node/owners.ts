/**
 * @module
 * The vdisk owners of one CVM (storage engine v2, docs/adr/015-storage-engine-v2.md): one
 * configuration-store lease per CVM, the VdiskOwner of each vdisk this CVM holds, forwarding to
 * the owner elsewhere, and ownership following the VM. (Being built; this is its interface.)
 */
import type { VdiskOwner } from '../core/engine/owner.ts';

/** What the repair loop needs of the registry. */
export interface HeldOwners {
  /** This CVM's owner of a vdisk (by uuid), acquiring ownership if no CVM holds it; null when another CVM does or the vdisk is gone. */
  acquire(uuid: string): Promise<VdiskOwner | null>;
  /** The owners this CVM holds now. */
  held(): readonly VdiskOwner[];
  /** Gives up a vdisk this CVM holds only for repair (no client uses it); a no-op otherwise. */
  releaseIfIdle(uuid: string): Promise<void>;
}
