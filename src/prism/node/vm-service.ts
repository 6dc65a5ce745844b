/**
 * @module
 * Reading one VM, image or subnet of the VM service (through the local CVM's API) for Prism's
 * routes of every API version: a 404 names the entity and the uuid asked.
 */
import { NotFoundError } from '../../shared/errors.ts';
import type { Vm } from '../../cvm/protocol/vms.ts';
import type { CvmCaller } from './server.ts';

/** The entity of `xs` with that uuid (NotFoundError naming `what` otherwise). */
export function byUuid<T extends { uuid: string }>(xs: readonly T[], uuid: string, what: string): T {
  const x = xs.find((e) => e.uuid === uuid);
  if (!x) throw new NotFoundError(what, uuid);
  return x;
}

/** One VM, asked of the VM service now; its 404 as this API's (`what`: how the API names a VM). */
export const vmOf = (cvm: CvmCaller, uuid: string, what: string): Promise<Vm> => cvm<Vm>(`/vms/${encodeURIComponent(uuid)}`).catch((e: unknown) => {
  throw e instanceof NotFoundError ? new NotFoundError(what, uuid) : e;
});
