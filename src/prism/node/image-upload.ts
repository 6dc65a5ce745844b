/**
 * @module
 * Image upload through Prism's v3 API, in the two steps Nutanix's own clients take (the Terraform
 * provider's `nutanix_image` and the Ansible collection's `ntnx_images` with `source_path`,
 * prism-go-client's `UploadImage`):
 *
 *   1. `POST /api/nutanix/v3/images` without `spec.resources.source_uri` → 202 with `metadata.uuid`
 *      and `status.execution_context.task_uuid`. Prism records a pending image under a new uuid;
 *      its task (Prism's `kImageCreate`) succeeds at once, because the clients wait for it to
 *      succeed before they upload. Until the file arrives, GET and list show the image `PENDING`,
 *      with that task in `status.execution_context.task_uuid`.
 *   2. `PUT /api/nutanix/v3/images/{uuid}/file`, `Content-Type: application/octet-stream`, the file
 *      as the body (Terraform and Ansible may add `X-Nutanix-Checksum-Type: SHA_1|SHA_256` and
 *      `X-Nutanix-Checksum-Bytes`) → the body goes on as it arrives to the VM service's
 *      `PUT /images/upload?uuid=` (the image keeps the uuid the client was given), never held in
 *      memory; when the VM service has it all, 202 with the image `PENDING` and the import's task.
 *      The clients look at the status only (any 2xx; Ansible reads the body as JSON, so there is
 *      one). Terraform then GETs the image and fails on a `FAILED` task of its
 *      `status.execution_context.task_uuid` list: the import's task is listed there.
 *
 * The PUT takes up to 8 GiB, as long as the body keeps arriving (`longBody`: exempt from the 30 s
 * request and handler deadlines), and drops a stalled one after a minute without data
 * (shared/http-api.ts boundRequestArrival). Its checks come before the body is read: who calls
 * (server.ts's onRequest hook: 401), the image (404 ENTITY_NOT_FOUND; 409 while another upload of it
 * runs), the content type (415), an empty or announced-too-large body (400, 413). A file that grows
 * past the limit (sent without a length), or whose checksum differs, is cut off on the way: the VM
 * service keeps nothing.
 *
 * Decision (ADR): a pending image is held in the leading Prism's memory, not in etcd. It holds no
 * data (a name, a description, a type, a checksum), its life is the seconds between the clients'
 * two calls, and the VM service's image record is only made, under the same uuid, once the file is
 * in; so nothing half-made is left in the VM service's store to clean up. A Prism leader change
 * forgets pending images: the PUT then answers 404 ENTITY_NOT_FOUND, a failed upload the clients
 * report (Terraform deletes the image), and the image is created again. A pending image that never gets its file is forgotten after a
 * day; at most `maxPending` (100) wait at once.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConflictError, InputError, NotFoundError, PayloadTooLargeError, TimeoutError, UnsupportedMediaTypeError } from '../../shared/errors.ts';
import type { Accepted, Image } from '../../cvm/protocol/vms.ts';
import { accepted, deleting, parseChecksum, type V3Checksum, type V3ImageUpload } from '../core/v3-vms.ts';
import type { Tasks } from './accounts.ts';
import type { CvmCaller } from './server.ts';

/** How large and how slow an upload may be, and how many images may wait for their file. */
export interface UploadLimits {
  /** The largest file (the VM service's own limit). */
  maxBytes: number;
  /** The longest wait for the next chunk of the body: a stalled upload is dropped. */
  idleMs: number;
  /** Once the whole file is sent on, how long the VM service may take to answer. */
  answerMs: number;
  /** How long a pending image waits for its file. */
  pendingMs: number;
  /** How many images may wait for their file at once. */
  maxPending: number;
}

export const UPLOAD_LIMITS: UploadLimits = { maxBytes: 8 * 1024 ** 3, idleMs: 60_000, answerMs: 30_000, pendingMs: 24 * 60 * 60_000, maxPending: 100 };

/** The upload's path under v3. */
export const UPLOAD_PATH = '/api/nutanix/v3/images/:uuid/file';
/** The longest timer Node keeps: the upload's handler deadline (it is bounded by `idleMs` and `answerMs` instead). */
const NO_DEADLINE_MS = 2 ** 31 - 1;
/** The uploads whose import task GET still lists (the newest; older ones are forgotten). */
const RECENT_UPLOADS = 1000;
/** An image name as the VM service takes it (cvm/core/vm-spec.ts): checked on create, not after the file. */
const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]*$/;

/** What the upload needs: the local CVM's API, Prism's tasks, and a clock (tests move it). */
export interface ImageUploadDeps {
  cvm: CvmCaller;
  tasks: Pick<Tasks, 'start'>;
  limits?: Partial<UploadLimits>;
  now?: () => number;
}

interface Pending extends V3ImageUpload {
  uuid: string;
  /** The create's spec, answered back. */
  spec: Record<string, unknown>;
  createdAt: string;
  createTask: string;
  /** A PUT of it is under way. */
  uploading: boolean;
}

/** An image of the VM service, or one waiting for its file, as core/v3-vms.ts's imageEntity shows it. */
export type ShownImage = Image & { lastTask?: string; description?: string };

/** The images created for an upload and waiting for their file, and the uploads made lately. */
export class ImageUploads {
  readonly limits: UploadLimits;
  private readonly pending = new Map<string, Pending>();
  /** Image uuid → its import task, for the uploads made lately. */
  private readonly recent = new Map<string, string>();
  private readonly now: () => number;

  constructor(private readonly d: ImageUploadDeps) {
    this.limits = { ...UPLOAD_LIMITS, ...d.limits };
    this.now = d.now ?? Date.now;
  }

  /** POST /images without source_uri: a pending image, and its task (done at once) → the 202 answer. */
  async create(u: V3ImageUpload, spec: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.expire();
    const name = u.name.trim();
    if (!IMAGE_NAME.test(name)) throw new InputError('spec.name', 'letters, digits, space, . _ -, starting with a letter or digit');
    if (this.pending.size >= this.limits.maxPending) throw new ConflictError(`${this.pending.size} images are waiting for their file (PUT /api/nutanix/v3/images/{uuid}/file); upload or delete one first`);
    const taken = [...(await this.d.cvm<Image[]>('/images')).map((i) => i.name), ...[...this.pending.values()].map((p) => p.name)];
    if (taken.includes(name)) throw new ConflictError(`spec.name: an image named ${name} exists`);
    const uuid = randomUUID();
    const createTask = await this.d.tasks.start('kImageCreate', [{ kind: 'image', uuid, name }], () => Promise.resolve());
    this.pending.set(uuid, { ...u, name, uuid, spec, createdAt: new Date(this.now()).toISOString(), createTask, uploading: false });
    return accepted('image', uuid, 0, spec, createTask);
  }

  /** The VM service's images, each with its upload's import task if it was uploaded lately, and the images waiting for their file. */
  withPending(images: readonly Image[]): ShownImage[] {
    this.expire();
    const shown: ShownImage[] = images.map((i) => {
      const task = this.recent.get(i.uuid);
      return task === undefined ? i : { ...i, lastTask: task };
    });
    for (const p of this.pending.values()) {
      if (images.some((i) => i.uuid === p.uuid)) continue;
      shown.push({
        uuid: p.uuid, name: p.name, format: p.format ?? 'raw', vdisk: '', sizeBytes: 0, state: 'importing', source: 'upload', createdAt: p.createdAt,
        lastTask: p.createTask, ...(p.description === undefined ? {} : { description: p.description }),
      });
    }
    return shown;
  }

  /** DELETE /images/{uuid} of an image waiting for its file → the 202 answer; undefined when it is not one (the VM service's then). */
  async delete(uuid: string): Promise<Record<string, unknown> | undefined> {
    const p = this.pending.get(uuid);
    if (!p) return undefined;
    if (p.uploading) throw new ConflictError(`image ${p.name} is being uploaded; delete it once the upload has ended`);
    this.pending.delete(uuid);
    return deleting('image', uuid, await this.d.tasks.start('kImageDelete', [{ kind: 'image', uuid, name: p.name }], () => Promise.resolve()));
  }

  /** What can be refused from the headers alone, before the body is read. */
  check(uuid: string, headers: FastifyRequest['headers']): void {
    this.expire();
    const p = this.pending.get(uuid);
    if (!p) throw new NotFoundError('image', uuid);
    if (p.uploading) throw new ConflictError(`image ${p.name}: an upload of its file is under way`);
    octetStreamOnly(headers, 'the image file');
    const length = headers['content-length'];
    if (headers['transfer-encoding'] === undefined && (length === undefined || Number(length) === 0)) throw new InputError('body', 'is empty: send the image file as the body');
    if (length !== undefined && Number(length) > this.limits.maxBytes) throw new PayloadTooLargeError('body', this.limits.maxBytes, `is larger than an image upload may be (${this.limits.maxBytes} bytes)`);
    checksumOf(headers);
  }

  /**
   * PUT /images/{uuid}/file: the body streamed on to the VM service's upload under the image's
   * uuid, counted (and hashed, with a checksum to match) on the way → the 202 answer.
   */
  async upload(uuid: string, body: Readable, headers: FastifyRequest['headers']): Promise<Record<string, unknown>> {
    this.check(uuid, headers);
    const p = this.pending.get(uuid)!;
    const checksum = checksumOf(headers) ?? p.checksum;
    p.uploading = true;
    const answered = new AbortController();
    const meter = new UploadMeter(this.limits.maxBytes, checksum, () => {
      const t = setTimeout(() => answered.abort(), this.limits.answerMs);
      t.unref();
      answered.signal.addEventListener('abort', () => clearTimeout(t));
    });
    body.on('error', (e: Error) => meter.destroy(e));
    try {
      // a name taken since the create is refused now, not by the VM service after the whole file
      if ((await this.d.cvm<Image[]>('/images')).some((i) => i.name === p.name && i.uuid !== uuid)) throw new ConflictError(`spec.name: an image named ${p.name} was made since this one was created; delete this one and create it under another name`);
      body.pipe(meter);
      const q = new URLSearchParams({ name: p.name, uuid, ...(p.format ? { format: p.format } : {}) });
      const a = await this.d.cvm<Accepted>(`/images/upload?${q.toString()}`, { method: 'PUT', stream: meter, timeoutMs: NO_DEADLINE_MS, signal: answered.signal }).catch((e: unknown) => {
        if (answered.signal.aborted) throw new TimeoutError(`the VM service did not answer within ${Math.round(this.limits.answerMs / 1000)} s of the upload's end; GET the image to see whether it is importing`);
        // the body's own failure (too large, checksum, cut off) says more than the call's
        throw meter.failure ?? (e instanceof InputError && e.field === 'name' ? new InputError('spec.name', e.reason) : e);
      });
      this.pending.delete(uuid);
      this.recent.set(uuid, a.taskUuid);
      for (const old of this.recent.keys()) {
        if (this.recent.size <= RECENT_UPLOADS) break;
        this.recent.delete(old);
      }
      return accepted('image', uuid, 0, p.spec, a.taskUuid);
    } finally {
      p.uploading = false;
      answered.abort();
      body.unpipe(meter);
      meter.destroy();
      // what was not read stays unread (the answer closes the connection), and its idle timer ends
      if (!body.readableEnded) body.destroy();
    }
  }

  /** Forgets pending images whose file never came. */
  private expire(): void {
    const before = this.now() - this.limits.pendingMs;
    for (const [uuid, p] of this.pending) if (!p.uploading && Date.parse(p.createdAt) < before) this.pending.delete(uuid);
  }
}

/** The checksum an upload's headers give (X-Nutanix-Checksum-Type and -Bytes, as Terraform and Ansible send them). */
function checksumOf(headers: FastifyRequest['headers']): V3Checksum | undefined {
  const type = headers['x-nutanix-checksum-type'];
  const bytes = headers['x-nutanix-checksum-bytes'];
  if (type === undefined && bytes === undefined) return undefined;
  return parseChecksum(type, bytes, { algorithm: 'X-Nutanix-Checksum-Type', value: 'X-Nutanix-Checksum-Bytes' });
}

/**
 * The body on its way to the VM service: counted against the limit, hashed when a checksum is
 * given, and failed (so the VM service's upload is cut off and keeps nothing) past the limit, when
 * empty, or when the hash differs at the end. `ended` runs once the whole body has gone through.
 */
class UploadMeter extends Transform {
  failure: Error | undefined;
  private bytes = 0;
  private readonly hash: Hash | undefined;

  constructor(private readonly limit: number, private readonly checksum: V3Checksum | undefined, private readonly ended: () => void) {
    super();
    this.hash = checksum ? createHash(checksum.algorithm === 'SHA_1' ? 'sha1' : 'sha256') : undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return done(this.fail(new PayloadTooLargeError('body', this.limit, `is larger than an image upload may be (${this.limit} bytes); nothing was kept`)));
    this.hash?.update(chunk);
    done(null, chunk);
  }

  override _flush(done: (e?: Error | null) => void): void {
    if (this.bytes === 0) return done(this.fail(new InputError('body', 'is empty: send the image file as the body')));
    const got = this.hash?.digest('hex');
    if (this.checksum && got !== this.checksum.value) return done(this.fail(new InputError('X-Nutanix-Checksum-Bytes', `the file received (${this.bytes} bytes) has ${this.checksum.algorithm} ${got ?? ''}, not ${this.checksum.value}; nothing was kept`)));
    this.ended();
    done();
  }

  override _destroy(e: Error | null, done: (e?: Error | null) => void): void {
    if (e && !this.failure) this.failure = e;
    done(e);
  }

  private fail(e: Error): Error {
    this.failure = e;
    return e;
  }
}

/** Refuses (415) an upload whose Content-Type is not application/octet-stream, naming what the body must be. */
export function octetStreamOnly(headers: FastifyRequest['headers'], what: string): void {
  const type = (headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type !== 'application/octet-stream') throw new UnsupportedMediaTypeError('Content-Type', `must be application/octet-stream: ${what} as it is${type ? ` (got ${JSON.stringify(type.slice(0, 100))})` : ''}`);
}

/**
 * Makes a route scope take only application/octet-stream bodies, handed on as the request stream
 * (never parsed, never buffered). An answer sent before the body was read to its end (refused, or
 * the service behind failed) closes the connection: it cannot carry another request, and closing it
 * is how the rest is left unread.
 */
export function octetStreamScope(scope: FastifyInstance): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('application/octet-stream', (_req, payload, next) => next(null, payload));
  scope.addHook('onSend', (req, reply, payload, next) => {
    if (!req.raw.complete) void reply.header('Connection', 'close');
    next(null, payload);
  });
}

/**
 * PUT /api/nutanix/v3/images/{uuid}/file, in a context of its own: the only route whose body is
 * octet-stream (handed on as a stream, never parsed), and the only one exempt from the request and
 * handler deadlines (`longBody`; the app bounds its requests with boundRequestArrival).
 */
export function registerImageUpload(app: FastifyInstance, uploads: ImageUploads): void {
  void app.register((scope, _opts, done) => {
    octetStreamScope(scope);
    const uuidOf = (req: FastifyRequest): string => (req.params as { uuid?: string }).uuid ?? '';
    scope.put(UPLOAD_PATH, {
      config: { longBody: true },
      handlerTimeout: NO_DEADLINE_MS,
      // after the app's authentication (its onRequest hook): nothing of the body is read before these checks
      onRequest: (req, _reply, next) => {
        try {
          uploads.check(uuidOf(req), req.headers);
          next();
        } catch (e) {
          next(e as Error);
        }
      },
    }, async (req, reply) => reply.status(202).send(await uploads.upload(uuidOf(req), req.body as Readable, req.headers)));
    done();
  });
}
