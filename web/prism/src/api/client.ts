/**
 * @module
 * The console's calls of Prism's own APIs (v3, v2.0, v4 and Converge's /api/converge/v1), with the
 * session cookie the login set. Every call says `X-Requested-With`, so a 401 comes without the
 * browser's Basic prompt; a 401 tells the app to show its login page. Errors of every API version
 * (v3 `message_list`, v2.0 `message`, v4 `data.error`) become one `ApiError` with the message and
 * the field named.
 */
import type { ClusterView } from '../../../../src/prism/protocol/cluster-view.ts';
import type { NodeInventory, PrecheckResult, Refusal, StoredBundle, UpgradePlan, UpgradeRecord } from '../../../../src/lcm/protocol/lcm.ts';
import { errorOf } from '../model/errors.ts';

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly field?: string) {
    super(message);
  }
}

type Listener = () => void;
const unauthorized = new Set<Listener>();
/** Called when a call answers 401 (the session ended): the app shows the login page. */
export function onUnauthorized(l: Listener): () => void {
  unauthorized.add(l);
  return () => unauthorized.delete(l);
}

const HEADERS = { 'X-Requested-With': 'XMLHttpRequest' };

/** An answer's body: its JSON, or its text when it is not JSON (a proxy's error page), or nothing. */
function parsed(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return text;
  }
}

export async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const r = await fetch(path, {
    method, credentials: 'same-origin',
    headers: { ...HEADERS, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = parsed(await r.text());
  if (r.status === 401 && path !== LOGIN) for (const l of unauthorized) l();
  if (!r.ok) {
    const e = errorOf(json);
    throw new ApiError(r.status, e.message || `${method} ${path}: ${r.status} ${r.statusText}`, e.field);
  }
  return json as T;
}

const LOGIN = '/api/converge/v1/login';
export const login = (username: string, password: string): Promise<{ username: string }> => call('POST', LOGIN, { username, password });
export const logout = (): Promise<unknown> => call('POST', '/api/converge/v1/logout');
export const session = (): Promise<{ username: string }> => call('GET', '/api/converge/v1/session');
export const cluster = (): Promise<ClusterView> => call('GET', '/api/converge/v1/cluster');

const V3 = '/api/nutanix/v3';
const V2 = '/api/nutanix/v2.0';
/** A v3 list, all of it (the console's lists are small enough for one page of 500). */
export const v3List = <T>(kind: 'vms' | 'images' | 'subnets' | 'tasks' | 'hosts', filter?: string): Promise<{ entities: T[] }> =>
  call('POST', `${V3}/${kind}/list`, { kind: kind === 'vms' ? 'vm' : kind.slice(0, -1), length: 500, ...(filter ? { filter } : {}) });
export const v3Get = <T>(kind: 'vms' | 'images' | 'subnets' | 'tasks', uuid: string): Promise<T> => call('GET', `${V3}/${kind}/${encodeURIComponent(uuid)}`);
export const v3Create = (kind: 'vms' | 'images' | 'subnets', body: unknown): Promise<{ metadata: { uuid: string }; status: { execution_context: { task_uuid: string } } }> => call('POST', `${V3}/${kind}`, body);
export const v3Delete = (kind: 'vms' | 'images' | 'subnets', uuid: string): Promise<{ status: { execution_context: { task_uuid: string } } }> => call('DELETE', `${V3}/${kind}/${encodeURIComponent(uuid)}`);
export const v2 = <T>(path: string): Promise<T> => call('GET', `${V2}/${path}`);
export const setPower = (uuid: string, transition: 'ON' | 'OFF' | 'ACPI_SHUTDOWN' | 'ACPI_REBOOT'): Promise<{ task_uuid: string }> =>
  call('POST', `${V2}/vms/${encodeURIComponent(uuid)}/set_power_state`, { transition });
export const alertChange = (change: 'acknowledge' | 'resolve', ids: string[]): Promise<{ successful_alert_ids: string[] }> => call('POST', `${V2}/alerts/${change}`, { alert_ids: ids });
export const maintenance = (clusterUuid: string, hostUuid: string, enter: boolean): Promise<{ data: { extId: string } }> =>
  call('POST', `/api/clustermgmt/v4.3/operations/clusters/${encodeURIComponent(clusterUuid)}/hosts/${encodeURIComponent(hostUuid)}/$actions/${enter ? 'enter' : 'exit'}-host-maintenance`, {});
export const v4Hosts = (): Promise<{ data?: { extId: string; maintenanceState: string }[] }> => call('GET', '/api/clustermgmt/v4.3/config/hosts');
export const stats = <T>(entity: string, minutes: number): Promise<T> => call('GET', `/api/converge/v1/stats?entity=${encodeURIComponent(entity)}&minutes=${minutes}`);

const LCM = '/api/converge/v1/lcm';
export const lcmInventory = (): Promise<NodeInventory[]> => call('GET', `${LCM}/inventory`);
export const lcmBundles = (): Promise<StoredBundle[]> => call('GET', `${LCM}/bundles`);
export const lcmPlan = (to: string): Promise<{ plan: UpgradePlan; refusals: Refusal[] }> => call('GET', `${LCM}/plan?to=${encodeURIComponent(to)}`);
export const lcmPrecheck = (to: string): Promise<PrecheckResult[]> => call('GET', `${LCM}/precheck?to=${encodeURIComponent(to)}`);
/** The current or last upgrade (null: none has run). */
export const lcmUpgrade = (): Promise<UpgradeRecord | null> => call<UpgradeRecord>('GET', `${LCM}/upgrade`).catch((e: unknown) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e instanceof Error ? e : new Error(String(e)))));
export const lcmStart = (to: string): Promise<UpgradeRecord> => call('POST', `${LCM}/upgrade`, { to });
export const lcmChange = (action: 'pause' | 'resume' | 'abort'): Promise<UpgradeRecord> => call('POST', `${LCM}/upgrade/${action}`, {});

/** PUTs a file with progress (XMLHttpRequest: fetch cannot tell an upload's progress); its answer's JSON. */
function putFile<T>(path: string, file: File, progress: (sent: number, total: number) => void, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', path);
    x.setRequestHeader('X-Requested-With', 'XMLHttpRequest');
    x.setRequestHeader('Content-Type', 'application/octet-stream');
    x.upload.onprogress = (e) => progress(e.loaded, e.lengthComputable ? e.total : file.size);
    x.onload = () => {
      const body = parsed(x.responseText);
      if (x.status >= 200 && x.status < 300) return resolve(body as T);
      const e = errorOf(body);
      reject(new ApiError(x.status, e.message || `upload: ${x.status}`, e.field));
    };
    x.onerror = () => reject(new ApiError(0, 'upload: the connection failed'));
    x.onabort = () => reject(new ApiError(0, 'upload: cancelled'));
    signal?.addEventListener('abort', () => x.abort());
    x.send(file);
  });
}

/** Uploads a release bundle into the cluster's repository (verified there, copied to every CVM). */
export const uploadBundle = (file: File, progress: (sent: number, total: number) => void, signal?: AbortSignal): Promise<StoredBundle> => putFile(`${LCM}/bundles`, file, progress, signal);

/**
 * Uploads a file as a new image (v3: the image made, then its bytes PUT to /images/{uuid}/file),
 * reporting the bytes sent; XMLHttpRequest, because fetch cannot tell an upload's progress.
 */
export async function uploadImage(name: string, file: File, progress: (sent: number, total: number) => void, signal?: AbortSignal): Promise<string> {
  const made = await v3Create('images', {
    api_version: '3.1.0', metadata: { kind: 'image' },
    spec: { name, resources: { image_type: /\.iso$/i.test(file.name) ? 'ISO_IMAGE' : 'DISK_IMAGE' } },
  });
  const uuid = made.metadata.uuid;
  await putFile(`${V3}/images/${encodeURIComponent(uuid)}/file`, file, progress, signal);
  return uuid;
}
