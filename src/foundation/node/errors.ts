/**
 * @module
 * Foundation's refinements of the domain errors (shared/errors.ts) that its HTTP edge answers
 * with a more precise status, still under the same stable codes: a body past its limit (413,
 * CVG_ERR_INPUT) and a conflict about one named part of a request (409, CVG_ERR_CONFLICT, the
 * field in the envelope's details).
 */
import { ConflictError } from '../../shared/errors.ts';

export { PayloadTooLargeError } from '../../shared/errors.ts';

/** A conflict with the current state about one part of the request, named by `field`. */
export class FieldConflictError extends ConflictError {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
  }
}
