/**
 * @module
 * Domain errors with stable codes (STYLE.md C6). Domain code throws these; each transport
 * (Redfish, Foundation, Prism, NBD) translates them once, at its edge. Every code is listed
 * in docs/errors.md, which a test keeps in step with this file.
 */

export type ErrorCode =
  | 'CVG_ERR_INPUT'
  | 'CVG_ERR_NOT_FOUND'
  | 'CVG_ERR_CONFLICT'
  | 'CVG_ERR_UNAVAILABLE'
  | 'CVG_ERR_TIMEOUT'
  | 'CVG_ERR_AUTH'
  | 'CVG_ERR_FORBIDDEN'
  | 'CVG_ERR_PRECONDITION'
  | 'CVG_ERR_DISK_IO'
  | 'CVG_ERR_DISK_FULL'
  | 'CVG_ERR_RACK_NOT_RUNNING'
  | 'CVG_ERR_INTERNAL';

export abstract class ConvergeError extends Error {
  abstract readonly code: ErrorCode;
  readonly retryable: boolean = false;
}

/** Bad input: names the field and the reason. Changes nothing. */
export class InputError extends ConvergeError {
  readonly code = 'CVG_ERR_INPUT';
  constructor(
    readonly field: string,
    readonly reason: string,
    /** Values the field may take, where the set is closed. */
    readonly allowed?: readonly string[],
    /** The value that was given, for the error message. */
    readonly value?: unknown,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** A request body larger than its endpoint accepts (HTTP 413): nothing was kept. */
export class PayloadTooLargeError extends InputError {
  constructor(field: string, readonly limitBytes: number, reason = `is larger than this endpoint accepts (${limitBytes} bytes)`) {
    super(field, reason);
  }
}

/** A request body of a type the endpoint does not take (HTTP 415). */
export class UnsupportedMediaTypeError extends InputError {}

/** A request that did not arrive in time: the client's slowness (HTTP 408). */
export class RequestTimeoutError extends InputError {}

export class NotFoundError extends ConvergeError {
  readonly code = 'CVG_ERR_NOT_FOUND';
  constructor(readonly what: string, readonly id: string) {
    super(`${what} not found: ${id}`);
  }
}

export class ConflictError extends ConvergeError {
  readonly code = 'CVG_ERR_CONFLICT';
}

export class UnavailableError extends ConvergeError {
  readonly code = 'CVG_ERR_UNAVAILABLE';
  override readonly retryable = true;
}

export class TimeoutError extends ConvergeError {
  readonly code = 'CVG_ERR_TIMEOUT';
  override readonly retryable = true;
}

export class AuthError extends ConvergeError {
  readonly code = 'CVG_ERR_AUTH';
}

/** Too many failed attempts: try again after `retryAfterS` (HTTP 429). */
export class TooManyAttemptsError extends AuthError {
  constructor(readonly retryAfterS: number, message: string) {
    super(message);
  }
}

export class ForbiddenError extends ConvergeError {
  readonly code = 'CVG_ERR_FORBIDDEN';
}

/** An optimistic-concurrency check failed (stale ETag / spec_version). */
export class PreconditionError extends ConvergeError {
  readonly code = 'CVG_ERR_PRECONDITION';
}

/** A disk answered an I/O with an error (failed disk). */
export class DiskIoError extends ConvergeError {
  readonly code = 'CVG_ERR_DISK_IO';
  constructor(readonly disk: string, message: string) {
    super(`disk ${disk}: ${message}`);
  }
}

/** A write would exceed the disk's advertised capacity. */
export class DiskFullError extends ConvergeError {
  readonly code = 'CVG_ERR_DISK_FULL';
  constructor(readonly disk: string, readonly capacityBytes: number) {
    super(`disk ${disk}: no space left (capacity ${capacityBytes} bytes)`);
  }
}

/** No room anywhere a write may go: placement found too few nodes with a healthy disk that has room (NBD: ENOSPC). */
export class PoolFullError extends DiskFullError {
  constructor(message: string) {
    super('pool', 0);
    this.message = message;
  }
}

export class RackNotRunningError extends ConvergeError {
  readonly code = 'CVG_ERR_RACK_NOT_RUNNING';
}

export class InternalError extends ConvergeError {
  readonly code = 'CVG_ERR_INTERNAL';
}

export const ALL_ERROR_CODES: readonly ErrorCode[] = [
  'CVG_ERR_INPUT', 'CVG_ERR_NOT_FOUND', 'CVG_ERR_CONFLICT', 'CVG_ERR_UNAVAILABLE', 'CVG_ERR_TIMEOUT',
  'CVG_ERR_AUTH', 'CVG_ERR_FORBIDDEN', 'CVG_ERR_PRECONDITION', 'CVG_ERR_DISK_IO', 'CVG_ERR_DISK_FULL',
  'CVG_ERR_RACK_NOT_RUNNING', 'CVG_ERR_INTERNAL',
];

export function isConvergeError(e: unknown): e is ConvergeError {
  return e instanceof ConvergeError;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
