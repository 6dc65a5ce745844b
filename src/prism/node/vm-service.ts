/**
 * @module
 * Reading one VM, image or subnet of the VM service (through the local CVM's API) for Prism's
 * routes of every API version: a 404 names the entity and the uuid asked; and the VM service's
 * errors as each API version names what it was sent.
 */
import { InputError, NotFoundError } from '../../shared/errors.ts';
import type { Vm } from '../../cvm/protocol/vms.ts';
import type { CvmCaller } from './server.ts';

/** The entity of `xs` with that uuid (NotFoundError naming `what` otherwise). */
export function byUuid<T extends { uuid: string }>(xs: readonly T[], uuid: string, what: string): T {
  const x = xs.find((e) => e.uuid === uuid);
  if (!x) throw new NotFoundError(what, uuid);
  return x;
}

/** A VM service 404 as this API's own: the entity, by the uuid asked. */
export const notFoundAs = (what: string, uuid: string) => (e: unknown): never => {
  throw e instanceof NotFoundError ? new NotFoundError(what, uuid) : e;
};

/** A VM service InputError's field as the request named it (`rename`: the VM service's field → the API's). */
export const fieldAs = (rename: (field: string) => string) => (e: unknown): never => {
  throw e instanceof InputError ? new InputError(rename(e.field), e.reason) : e;
};

/** One VM, asked of the VM service now; its 404 as this API's (`what`: how the API names a VM). */
export const vmOf = (cvm: CvmCaller, uuid: string, what: string): Promise<Vm> => cvm<Vm>(`/vms/${encodeURIComponent(uuid)}`).catch(notFoundAs(what, uuid));
