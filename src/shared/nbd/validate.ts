/**
 * @module
 * Request validation at the edge, once (STYLE.md C8; nbdkit's validate_request): unknown commands
 * and flags, writes to a read-only export, ranges past the end, oversized payloads. After this,
 * backends may assume a well-formed request.
 */
import {
  NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES, NBD_CMD_DISC, NBD_CMD_CACHE,
  NBD_CMD_FLAG_FUA, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_FLAG_DF, NBD_CMD_FLAG_FAST_ZERO,
  NBD_EINVAL, NBD_EPERM, NBD_ENOSPC, NBD_EOVERFLOW, NBD_ENOTSUP, MAX_PAYLOAD,
} from './constants.ts';
import type { Request } from './codec.ts';

export interface Rejection {
  error: number;
  message: string;
}

const FLAGS_ALLOWED: Record<number, number> = {
  [NBD_CMD_READ]: NBD_CMD_FLAG_DF,
  [NBD_CMD_WRITE]: NBD_CMD_FLAG_FUA,
  [NBD_CMD_DISC]: 0,
  [NBD_CMD_FLUSH]: 0,
  [NBD_CMD_TRIM]: NBD_CMD_FLAG_FUA,
  [NBD_CMD_CACHE]: 0,
  [NBD_CMD_WRITE_ZEROES]: NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO,
};

export function validateRequest(req: Request, exportSize: bigint, readOnly: boolean, structured: boolean): Rejection | null {
  const allowed = FLAGS_ALLOWED[req.type];
  if (allowed === undefined) return { error: NBD_EINVAL, message: `unknown command ${req.type}` };
  if ((req.flags & ~allowed) !== 0) return { error: NBD_EINVAL, message: `flags 0x${req.flags.toString(16)} are not valid for command ${req.type}` };
  if (req.type === NBD_CMD_READ && (req.flags & NBD_CMD_FLAG_DF) !== 0 && !structured) return { error: NBD_EINVAL, message: 'DF needs structured replies' };
  if (req.type === NBD_CMD_WRITE_ZEROES && (req.flags & NBD_CMD_FLAG_FAST_ZERO) !== 0) return { error: NBD_ENOTSUP, message: 'fast zero is not supported' };
  const ranged = req.type === NBD_CMD_READ || req.type === NBD_CMD_WRITE || req.type === NBD_CMD_TRIM || req.type === NBD_CMD_WRITE_ZEROES || req.type === NBD_CMD_CACHE;
  if (ranged) {
    if (req.length === 0) return { error: NBD_EINVAL, message: 'zero-length request' };
    if ((req.type === NBD_CMD_READ || req.type === NBD_CMD_WRITE) && req.length > MAX_PAYLOAD) {
      return { error: req.type === NBD_CMD_READ ? NBD_EINVAL : NBD_EOVERFLOW, message: `length ${req.length} exceeds the maximum payload ${MAX_PAYLOAD}` };
    }
    if (req.offset + BigInt(req.length) > exportSize) {
      return { error: req.type === NBD_CMD_WRITE || req.type === NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL, message: `range ${req.offset}+${req.length} is past the end of the export (${exportSize} bytes)` };
    }
  } else if (req.type === NBD_CMD_FLUSH && (req.offset !== 0n || req.length !== 0)) {
    return { error: NBD_EINVAL, message: 'FLUSH takes no offset or length' };
  }
  if (readOnly && (req.type === NBD_CMD_WRITE || req.type === NBD_CMD_TRIM || req.type === NBD_CMD_WRITE_ZEROES)) {
    return { error: NBD_EPERM, message: 'the export is read-only' };
  }
  return null;
}
