/**
 * @module
 * The BMC's Redfish resources, built from a node's state on every request (so a GET always shows
 * the truth), and the handlers that change it. Ids follow common BMC practice: Systems/1,
 * Chassis/1, Managers/1. Schema versions come from protocol/redfish.ts.
 */
import { InputError, NotFoundError, ConflictError, ForbiddenError, errorMessage } from '../../../shared/errors.ts';
import type { Clock } from '../../../shared/clock.ts';
import type { Random } from '../../../shared/random.ts';
import { hashPassword } from '../../../shared/passwords.ts';
import { BOOT_ENABLED, BOOT_TARGETS, RESET_TYPES, paced, BASE_DELAYS, parseResetType } from '../../core/power.ts';
import { T, REDFISH_VERSION, BASE_REGISTRY, message } from '../../protocol/redfish.ts';
import type { NodeRuntime } from '../node-runtime.ts';
import { basicAuth, DownloadTooLarge, readLimited, redactUrl, splitUserInfo, type Credentials } from '../http-util.ts';
import type { BmcMemory, BmcTask } from './bmc-state.ts';
import { RedfishError } from './http-error.ts';
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { Agent, fetch as ufetch } from 'undici';
import { need, type Ctx, type Route, type Reply, ROLE_PRIVILEGES } from './router.ts';

export interface BmcHost {
  clock: Clock;
  random: Random;
  pace: number;
  /** Whether this address belongs to another BMC or to the rack itself (its control API). */
  addressInUse(node: NodeRuntime, ip: string): boolean;
  /**
   * Moves the node's BMC to a new address (ipmi_config): the rack binds the new address, then runs
   * `commit` (which applies and persists the change), then leaves the old address. Throws, with
   * nothing changed, when the address cannot be bound or `commit` fails.
   */
  rebind(node: NodeRuntime, ip: string, commit: () => void): Promise<void>;
}

/** Largest firmware image SimpleUpdate downloads. */
export const MAX_FIRMWARE_BYTES = 16 * 1024 * 1024;

const V1 = '/redfish/v1';
const SYS = `${V1}/Systems/1`;
const CH = `${V1}/Chassis/1`;
const MGR = `${V1}/Managers/1`;
const link = (id: string): { '@odata.id': string } => ({ '@odata.id': id });
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');

function collection(id: string, type: string, name: string, members: readonly string[]): Record<string, unknown> {
  return { '@odata.id': id, '@odata.type': type, Name: name, Members: members.map(link), 'Members@odata.count': members.length };
}

const ok = { State: 'Enabled', Health: 'OK' } as const;

function systemHealth(n: NodeRuntime): 'OK' | 'Warning' | 'Critical' {
  const f = n.state.faults;
  if (f.failedDisks.length > 0 || f.powerOnFailure || f.bootFailure) return 'Critical';
  if (f.nicLinkDown.length > 0) return 'Warning';
  return 'OK';
}

function system(n: NodeRuntime): Record<string, unknown> {
  const p = n.state.power;
  const inv = n.inventory;
  const cores = inv.cpu.sockets * inv.cpu.coresPerSocket;
  const health = systemHealth(n);
  const bp: Record<string, unknown> = { LastState: p.bootProgress.lastState, LastStateTime: iso(p.bootProgress.time) };
  if (p.bootProgress.oemLastState) bp['OemLastState'] = p.bootProgress.oemLastState;
  return {
    '@odata.id': SYS,
    '@odata.type': T.ComputerSystem,
    Id: '1',
    Name: 'System',
    SystemType: 'Physical',
    Manufacturer: n.model.vendor,
    Model: n.model.name,
    SerialNumber: n.identity.serial,
    UUID: n.identity.uuid,
    AssetTag: n.state.assetTag,
    HostName: p.running ? `${p.running.name}-${n.identity.serial.toLowerCase()}` : '',
    BiosVersion: n.state.firmware.bios,
    PowerState: p.power,
    PowerRestorePolicy: 'LastState',
    LocationIndicatorActive: n.state.indicatorLed !== 'Off',
    Status: { State: 'Enabled', Health: health, HealthRollup: health },
    ProcessorSummary: { Count: inv.cpu.sockets, CoreCount: cores, LogicalProcessorCount: cores * inv.cpu.threadsPerCore, Model: inv.cpu.model, Status: ok },
    MemorySummary: { TotalSystemMemoryGiB: inv.dimms.reduce((a, d) => a + d.sizeMiB, 0) / 1024, MemoryMirroring: 'None', Status: ok },
    Boot: {
      BootSourceOverrideEnabled: p.bootOverride.enabled,
      BootSourceOverrideTarget: p.bootOverride.target,
      'BootSourceOverrideTarget@Redfish.AllowableValues': [...BOOT_TARGETS],
      'BootSourceOverrideEnabled@Redfish.AllowableValues': [...BOOT_ENABLED],
      BootSourceOverrideMode: 'UEFI',
    },
    BootProgress: bp,
    Processors: link(`${SYS}/Processors`),
    Memory: link(`${SYS}/Memory`),
    Storage: link(`${SYS}/Storage`),
    EthernetInterfaces: link(`${SYS}/EthernetInterfaces`),
    PCIeDevices: [link(`${SYS}/PCIeDevices/${inv.hba.id}`)],
    'PCIeDevices@odata.count': 1,
    Bios: link(`${SYS}/Bios`),
    Links: { Chassis: [link(CH)], ManagedBy: [link(MGR)] },
    Actions: {
      '#ComputerSystem.Reset': {
        target: `${SYS}/Actions/ComputerSystem.Reset`,
        'ResetType@Redfish.AllowableValues': [...RESET_TYPES],
        '@Redfish.ActionInfo': `${SYS}/ResetActionInfo`,
      },
    },
  };
}

function cpuVendor(model: string): string {
  return /amd/i.test(model) ? 'AMD' : /intel/i.test(model) ? 'Intel(R) Corporation' : 'Unknown';
}

const driveId = (slot: number): string => `Disk.Bay.${slot}`;
/** FirmwareInventory's members: the BMC's, the BIOS's, and each data drive's. */
const firmwareIds = (n: NodeRuntime): string[] => ['BMC', 'BIOS', ...n.inventory.disks.map((d) => driveId(d.slot))];

function drive(n: NodeRuntime, slot: number): Record<string, unknown> {
  const d = n.inventory.disks.find((x) => x.slot === slot);
  if (!d) throw new NotFoundError('Drive', driveId(slot));
  const failed = n.state.faults.failedDisks.includes(d.serial);
  const out: Record<string, unknown> = {
    '@odata.id': `${SYS}/Storage/1/Drives/${driveId(slot)}`,
    '@odata.type': T.Drive,
    Id: driveId(slot),
    Name: `Drive in bay ${slot}`,
    Manufacturer: d.model.split(' ')[0],
    Model: d.model,
    SerialNumber: d.serial,
    MediaType: d.mediaType,
    Protocol: d.protocol,
    CapacityBytes: d.capacityBytes,
    BlockSizeBytes: d.mediaType === 'HDD' ? 4096 : 512,
    Revision: d.firmware,
    FailurePredicted: failed,
    PhysicalLocation: { PartLocation: { LocationOrdinalValue: slot, LocationType: 'Bay', ServiceLabel: `Bay ${slot}` } },
    Status: { State: 'Enabled', Health: failed ? 'Critical' : 'OK' },
    Links: { Chassis: link(CH) },
  };
  if (d.mediaType === 'HDD') out['RotationSpeedRPM'] = 7200;
  return out;
}

function bootDrive(n: NodeRuntime): Record<string, unknown> {
  const b = n.inventory.bootDevice;
  return {
    '@odata.id': `${SYS}/Storage/2/Drives/Boot.0`,
    '@odata.type': T.Drive,
    Id: 'Boot.0',
    Name: `${b.type} boot device`,
    Model: b.model,
    SerialNumber: b.serial,
    MediaType: 'SSD',
    Protocol: b.type === 'M.2' ? 'NVMe' : 'SATA',
    CapacityBytes: b.capacityBytes,
    BlockSizeBytes: 512,
    Status: ok,
    Links: { Chassis: link(CH) },
  };
}

function storage(n: NodeRuntime, id: string): Record<string, unknown> {
  const isHba = id === '1';
  if (!isHba && id !== '2') throw new NotFoundError('Storage', id);
  const drives = isHba ? n.inventory.disks.map((d) => `${SYS}/Storage/1/Drives/${driveId(d.slot)}`) : [`${SYS}/Storage/2/Drives/Boot.0`];
  const ctrl = isHba ? n.inventory.hba.model : 'Onboard boot controller';
  const failed = isHba && n.state.faults.failedDisks.length > 0;
  return {
    '@odata.id': `${SYS}/Storage/${id}`,
    '@odata.type': T.Storage,
    Id: id,
    Name: isHba ? 'Storage HBA (data disks)' : 'Boot device controller',
    Status: { State: 'Enabled', Health: 'OK', HealthRollup: failed ? 'Critical' : 'OK' },
    Drives: drives.map(link),
    'Drives@odata.count': drives.length,
    Controllers: link(`${SYS}/Storage/${id}/Controllers`),
    StorageControllers: [{ '@odata.id': `${SYS}/Storage/${id}#/StorageControllers/0`, MemberId: '0', Name: ctrl, Model: ctrl, Status: ok, SupportedDeviceProtocols: isHba ? ['SAS', 'SATA', 'NVMe'] : ['SATA', 'NVMe'] }],
    Links: { Enclosures: [link(CH)] },
  };
}

function storageController(n: NodeRuntime, id: string): Record<string, unknown> {
  const isHba = id === '1';
  const h = n.inventory.hba;
  const out: Record<string, unknown> = {
    '@odata.id': `${SYS}/Storage/${id}/Controllers/0`,
    '@odata.type': T.StorageController,
    Id: '0',
    Name: isHba ? h.model : 'Onboard boot controller',
    Model: isHba ? h.model : 'Onboard boot controller',
    Status: ok,
    SupportedControllerProtocols: ['PCIe'],
    SupportedDeviceProtocols: isHba ? ['SAS', 'SATA', 'NVMe'] : ['SATA', 'NVMe'],
  };
  if (isHba) out['Links'] = { PCIeFunctions: [link(`${SYS}/PCIeDevices/${h.id}/PCIeFunctions/0`)] };
  return out;
}

function pcieDevice(n: NodeRuntime, id: string): Record<string, unknown> {
  const h = n.inventory.hba;
  if (id !== h.id) throw new NotFoundError('PCIeDevice', id);
  return {
    '@odata.id': `${SYS}/PCIeDevices/${h.id}`,
    '@odata.type': T.PCIeDevice,
    Id: h.id,
    Name: h.model,
    Manufacturer: h.model.split(' ')[0],
    Model: h.model,
    DeviceType: 'SingleFunction',
    Status: ok,
    PCIeFunctions: link(`${SYS}/PCIeDevices/${h.id}/PCIeFunctions`),
    Oem: { Converge: { PciAddress: h.pciAddress, PassthroughCapable: h.passthroughCapable, Role: 'StorageHBA' } },
  };
}

function pcieFunction(n: NodeRuntime): Record<string, unknown> {
  const h = n.inventory.hba;
  return {
    '@odata.id': `${SYS}/PCIeDevices/${h.id}/PCIeFunctions/0`,
    '@odata.type': T.PCIeFunction,
    Id: '0',
    Name: `${h.model} function 0`,
    FunctionId: 0,
    FunctionType: 'Physical',
    DeviceClass: 'MassStorageController',
    ClassCode: '0x010700',
    VendorId: h.vendorId,
    DeviceId: h.deviceId,
    Status: ok,
    Links: { Drives: n.inventory.disks.map((d) => link(`${SYS}/Storage/1/Drives/${driveId(d.slot)}`)), PCIeDevice: link(`${SYS}/PCIeDevices/${h.id}`) },
  };
}

function manager(n: NodeRuntime, host: BmcHost): Record<string, unknown> {
  const now = host.clock.now();
  return {
    '@odata.id': MGR,
    '@odata.type': T.Manager,
    Id: '1',
    Name: 'Baseboard Management Controller',
    ManagerType: 'BMC',
    Manufacturer: n.model.vendor,
    Model: 'Converge Rack BMC',
    FirmwareVersion: n.state.firmware.bmc,
    UUID: n.identity.uuid.replace(/^.{8}/, 'b0c0b0c0'),
    PowerState: 'On',
    DateTime: iso(now),
    DateTimeLocalOffset: '+00:00',
    Status: ok,
    EthernetInterfaces: link(`${MGR}/EthernetInterfaces`),
    VirtualMedia: link(`${MGR}/VirtualMedia`),
    LogServices: link(`${MGR}/LogServices`),
    Links: { ManagerForServers: [link(SYS)], ManagerForChassis: [link(CH)], ManagerInChassis: link(CH) },
    Actions: { '#Manager.Reset': { target: `${MGR}/Actions/Manager.Reset`, 'ResetType@Redfish.AllowableValues': ['GracefulRestart', 'ForceRestart'] } },
  };
}

function bmcNic(n: NodeRuntime): Record<string, unknown> {
  const b = n.state.bmcNetwork;
  const origin = b.dhcp ? 'DHCP' : 'Static';
  return {
    '@odata.id': `${MGR}/EthernetInterfaces/1`,
    '@odata.type': T.EthernetInterface,
    Id: '1',
    Name: 'BMC dedicated management port',
    MACAddress: n.inventory.bmcMac,
    PermanentMACAddress: n.inventory.bmcMac,
    HostName: b.hostName,
    FQDN: `${b.hostName}.lab`,
    SpeedMbps: 1000,
    FullDuplex: true,
    AutoNeg: true,
    LinkStatus: 'LinkUp',
    InterfaceEnabled: true,
    DHCPv4: { DHCPEnabled: b.dhcp },
    IPv4Addresses: [{ Address: b.address, SubnetMask: b.subnetMask, Gateway: b.gateway, AddressOrigin: origin }],
    IPv4StaticAddresses: [{ Address: b.address, SubnetMask: b.subnetMask, Gateway: b.gateway }],
    Status: ok,
  };
}

/** The file name of an image URL, %-decoded where that is valid (a stored Image must never break the GET). */
function imageName(image: string): string {
  const last = image.split('?')[0]?.split('/').pop() ?? '';
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

function virtualMedia(n: NodeRuntime): Record<string, unknown> {
  const v = n.state.virtualMedia;
  const base = `${MGR}/VirtualMedia/CD1`;
  return {
    '@odata.id': base,
    '@odata.type': T.VirtualMedia,
    Id: 'CD1',
    Name: 'Virtual CD/DVD',
    MediaTypes: ['CD', 'DVD'],
    Image: v.image,
    ImageName: v.image ? imageName(v.image) : null,
    Inserted: v.inserted,
    WriteProtected: v.writeProtected,
    ConnectedVia: v.inserted ? 'URI' : 'NotConnected',
    TransferMethod: 'Stream',
    TransferProtocolType: v.transferProtocolType,
    Actions: {
      '#VirtualMedia.InsertMedia': { target: `${base}/Actions/VirtualMedia.InsertMedia` },
      '#VirtualMedia.EjectMedia': { target: `${base}/Actions/VirtualMedia.EjectMedia` },
    },
  };
}

function sensors(n: NodeRuntime, host: BmcHost): { watts: number; cpuC: number; inletC: number; fanRpm: number } {
  const on = n.state.power.power === 'On' || n.state.power.power === 'PoweringOn';
  const running = n.state.power.phase === 'running';
  const cores = n.inventory.cpu.sockets * n.inventory.cpu.coresPerSocket;
  const wobble = ((host.clock.now() / 1000) % 7) - 3; // a reading that moves a little, as real sensors do
  const watts = on ? Math.round(90 + cores * 3 + n.inventory.disks.length * 7 + (running ? 60 : 0) + wobble * 2) : 12;
  return { watts, cpuC: on ? Math.round(42 + (running ? 14 : 4) + wobble) : 24, inletC: 22 + Math.round(wobble / 2), fanRpm: on ? 6000 + (running ? 2400 : 0) + Math.round(wobble * 40) : 0 };
}

function logEntries(n: NodeRuntime, log: string): Record<string, unknown>[] {
  const base = `${MGR}/LogServices/${log}/Entries`;
  if (log === 'SEL') {
    return n.eventLog().map((e) => ({
      '@odata.id': `${base}/${e.id}`, '@odata.type': T.LogEntry, Id: String(e.id), Name: `Event ${e.id}`,
      EntryType: 'SEL', Created: e.created.replace(/\.\d{3}Z$/, '+00:00'), Severity: e.severity, Message: e.message,
    }));
  }
  return n.consoleEntries().map(({ id, line }) => {
    const m = /^\[([^\]]+)\] (.*)$/.exec(line);
    return {
      '@odata.id': `${base}/${id}`, '@odata.type': T.LogEntry, Id: String(id), Name: `Console line ${id}`,
      EntryType: 'Oem', OemRecordFormat: 'SerialConsole', Created: (m?.[1] ?? new Date(0).toISOString()).replace(/\.\d{3}Z$/, '+00:00'), Severity: 'OK', Message: m?.[2] ?? line,
    };
  });
}

function task(t: BmcTask): Record<string, unknown> {
  const out: Record<string, unknown> = {
    '@odata.id': `${V1}/TaskService/Tasks/${t.id}`,
    '@odata.type': T.Task,
    Id: t.id,
    Name: t.name,
    TaskState: t.state,
    TaskStatus: t.status,
    PercentComplete: t.percent,
    StartTime: iso(t.start),
    TaskMonitor: `${V1}/TaskService/TaskMonitors/${t.id}`,
    Messages: t.messages.map((m) => ({ ...message(m.severity === 'OK' ? 'Success' : 'GeneralError'), Message: m.text, Severity: m.severity, MessageSeverity: m.severity })),
  };
  if (t.end !== undefined) out['EndTime'] = iso(t.end);
  return out;
}

function account(c: Ctx, id: string): Record<string, unknown> {
  const a = c.node.state.accounts.find((x) => x.id === id);
  if (!a) throw new NotFoundError('ManagerAccount', id);
  return {
    '@odata.id': `${V1}/AccountService/Accounts/${a.id}`, '@odata.type': T.ManagerAccount, Id: a.id, Name: 'User Account',
    UserName: a.userName, RoleId: a.roleId, Enabled: a.enabled, Locked: a.locked || c.lockedOut(a.userName), Password: null, AccountTypes: ['Redfish'],
    Links: { Role: link(`${V1}/AccountService/Roles/${a.roleId}`) },
  };
}

const ROLES = Object.keys(ROLE_PRIVILEGES) as ('Administrator' | 'Operator' | 'ReadOnly')[];
const MIN_PASSWORD = 8;

function checkPassword(pw: string): void {
  if (pw.length < MIN_PASSWORD || pw.length > 64) throw new InputError('Password', `must be ${MIN_PASSWORD} to 64 characters long`, undefined, '(hidden)');
}

/** Firmware image (what SimpleUpdate's ImageURI serves): a JSON document. See docs/rack.md. */
interface FirmwareImage {
  ConvergeFirmware: 1;
  Component: 'BMC' | 'BIOS';
  Version: string;
  Models?: string[];
}

/** Ends a task as failed: Exception, Critical, with its end time and the reason (and a SEL entry). */
function failTask(n: NodeRuntime, host: BmcHost, t: BmcTask, text: string): void {
  t.state = 'Exception';
  t.status = 'Critical';
  t.end = host.clock.now();
  t.messages.push({ severity: 'Critical', text });
  try {
    n.addEvent('Warning', `Firmware update failed: ${text}`);
  } catch {
    // the task says it; the SEL may be unwritable
  }
}

async function runFirmwareUpdate(n: NodeRuntime, mem: BmcMemory, host: BmcHost, t: BmcTask, imageUri: string, targets: string[] | undefined, credentials: Credentials | undefined): Promise<void> {
  const fail = (text: string): void => failTask(n, host, t, text);
  t.state = 'Running';
  const split = splitUserInfo(imageUri);
  const shown = split.url;
  const creds = credentials ?? split.credentials;
  let img: FirmwareImage;
  try {
    const headers: Record<string, string> = {};
    if (creds) headers['Authorization'] = basicAuth(creds);
    // HTTPS: the server must present a certificate of a public CA or of one in RemoteServerCertificates
    const cas = (n.state.remoteCertificates ?? []).map((c) => c.pem);
    const dispatcher = cas.length > 0 ? new Agent({ connect: { ca: [...rootCertificates, ...cas] } }) : undefined;
    const chunks: Uint8Array[] = [];
    try {
      const res = await ufetch(split.url, { headers, signal: AbortSignal.timeout(60_000), ...(dispatcher ? { dispatcher } : {}) });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        return fail(`cannot download ${shown}: HTTP ${res.status}`);
      }
      await readLimited(res, MAX_FIRMWARE_BYTES, (c) => {
        chunks.push(c);
      });
    } finally {
      void dispatcher?.close();
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      parsed = undefined;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      return fail('the image is not a Converge firmware image (a JSON object with ConvergeFirmware: 1, Component: BMC|BIOS, Version)');
    }
    img = parsed as FirmwareImage;
  } catch (e) {
    if (e instanceof DownloadTooLarge) return fail(`the image at ${shown} is too large (${e.message})`);
    return fail(`cannot download ${shown}: ${errorMessage(e)}`);
  }
  if (img.ConvergeFirmware !== 1 || (img.Component !== 'BMC' && img.Component !== 'BIOS') || typeof img.Version !== 'string' || img.Version === '') {
    return fail('the image is not a Converge firmware image (ConvergeFirmware: 1, Component: BMC|BIOS, Version)');
  }
  if (img.Models !== undefined && (!Array.isArray(img.Models) || !img.Models.includes(n.model.name))) return fail(`the image is for models ${Array.isArray(img.Models) ? img.Models.join(', ') : String(img.Models)}, not ${n.model.name}`);
  const target = `${V1}/UpdateService/FirmwareInventory/${img.Component}`;
  if (targets && targets.length > 0 && !targets.includes(target)) return fail(`the image updates ${img.Component}, but Targets names ${targets.join(', ')}`);
  t.messages.push({ severity: 'OK', text: `Flashing ${img.Component} firmware ${img.Version}` });
  const total = paced(img.Component === 'BMC' ? BASE_DELAYS.bmcFirmwareUpdateMs : BASE_DELAYS.biosFirmwareUpdateMs, host.pace, host.random);
  for (let pct = 10; pct <= 100; pct += 10) {
    await host.clock.sleep(total / 10);
    t.percent = pct;
  }
  if (img.Component === 'BMC') n.state.firmware.bmc = img.Version;
  else n.state.firmware.bios = img.Version;
  n.persist();
  n.addEvent('OK', `${img.Component} firmware updated to ${img.Version}`);
  t.state = 'Completed';
  t.end = host.clock.now();
  t.messages.push({ severity: 'OK', text: `${img.Component} firmware is now ${img.Version}` });
  if (img.Component === 'BMC') mem.reboot(host.clock.now() + paced(BASE_DELAYS.bmcRebootMs, host.pace, host.random));
}

function metadataXml(): string {
  const refs = Object.values(T).map((t) => {
    const full = t.slice(1);
    const parts = full.split('.');
    const ns = parts[0] as string;
    const versioned = parts.length === 3 ? `${ns}.${parts[1]}` : undefined;
    return `  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/${ns}_v1.xml">\n    <edmx:Include Namespace="${ns}"/>${versioned ? `\n    <edmx:Include Namespace="${versioned}"/>` : ''}\n  </edmx:Reference>`;
  });
  const uniq = [...new Set(refs)];
  return `<?xml version="1.0" encoding="UTF-8"?>\n<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n${uniq.join('\n')}\n  <edmx:DataServices>\n    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n      <EntityContainer Name="Service" Extends="${T.ServiceRoot.slice(1, T.ServiceRoot.lastIndexOf('.'))}.ServiceContainer"/>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n`;
}

const noContent: Reply = { status: 204 };

/** A trusted CA certificate as Redfish shows one. */
function certificate(cert: X509Certificate, id: string): Record<string, unknown> {
  const cn = (dn: string): string => /CN=([^\n,]+)/.exec(dn)?.[1] ?? dn;
  return {
    '@odata.id': `${V1}/UpdateService/RemoteServerCertificates/${id}`, '@odata.type': T.Certificate, Id: id, Name: `Remote server certificate ${id}`,
    CertificateString: cert.toString(), CertificateType: 'PEM', Subject: { CommonName: cn(cert.subject) }, Issuer: { CommonName: cn(cert.issuer) },
    ValidNotBefore: new Date(cert.validFrom).toISOString(), ValidNotAfter: new Date(cert.validTo).toISOString(), Fingerprint: cert.fingerprint256, FingerprintHashAlgorithm: 'TPM_ALG_SHA256',
  };
}

/** The BMC's whole resource table. */
export function redfishRoutes(host: BmcHost): Route[] {
  const ser = (c: Ctx): NodeRuntime => c.node;
  const metadata = metadataXml();
  return [
    { path: '/redfish', public: true, get: () => ({ v1: `${V1}/` }) },
    {
      path: `${V1}/`, public: true, get: (c) => ({
        '@odata.id': `${V1}/`, '@odata.type': T.ServiceRoot, Id: 'RootService', Name: 'Root Service', RedfishVersion: REDFISH_VERSION,
        UUID: c.node.identity.uuid, Product: 'Converge Rack BMC', Vendor: c.node.model.vendor,
        ProtocolFeaturesSupported: { ExpandQuery: { ExpandAll: false, Levels: false, Links: false, NoLinks: false }, FilterQuery: false, SelectQuery: false, ExcerptQuery: false, OnlyMemberQuery: false },
        Systems: link(`${V1}/Systems`), Chassis: link(`${V1}/Chassis`), Managers: link(`${V1}/Managers`),
        SessionService: link(`${V1}/SessionService`), AccountService: link(`${V1}/AccountService`), UpdateService: link(`${V1}/UpdateService`),
        Tasks: link(`${V1}/TaskService`), Registries: link(`${V1}/Registries`),
        Links: { Sessions: link(`${V1}/SessionService/Sessions`) },
      }),
    },
    {
      path: `${V1}/odata`, public: true, get: () => ({
        '@odata.context': `${V1}/$metadata`,
        value: [['Service', `${V1}/`], ['Systems', `${V1}/Systems`], ['Chassis', `${V1}/Chassis`], ['Managers', `${V1}/Managers`], ['SessionService', `${V1}/SessionService`],
          ['AccountService', `${V1}/AccountService`], ['UpdateService', `${V1}/UpdateService`], ['Tasks', `${V1}/TaskService`], ['Registries', `${V1}/Registries`], ['Sessions', `${V1}/SessionService/Sessions`]]
          .map(([name, url]) => ({ name, kind: 'Singleton', url })),
      }),
    },
    { path: `${V1}/$metadata`, public: true, contentType: 'application/xml', get: () => metadata },
    { path: `${V1}/Systems`, get: () => collection(`${V1}/Systems`, T.ComputerSystemCollection, 'Computer System Collection', [SYS]) },
    {
      path: SYS,
      get: (c) => system(ser(c)),
      patch: {
        privilege: 'ConfigureComponents',
        writable: ['Boot/BootSourceOverrideTarget', 'Boot/BootSourceOverrideEnabled', 'Boot/BootSourceOverrideMode', 'AssetTag', 'LocationIndicatorActive'],
        apply: (c) => {
          const b = (c.body['Boot'] ?? {}) as Record<string, unknown>;
          if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new InputError('Boot', 'must be an object', undefined, b);
          if (b['BootSourceOverrideMode'] !== undefined && b['BootSourceOverrideMode'] !== 'UEFI') throw new InputError('Boot/BootSourceOverrideMode', 'this system boots UEFI only', ['UEFI'], b['BootSourceOverrideMode']);
          const tag = need.string(c.body, 'AssetTag', false);
          if (tag !== undefined && tag.length > 64) throw new InputError('AssetTag', 'at most 64 characters', undefined, tag);
          const led = need.boolean(c.body, 'LocationIndicatorActive');
          if (b['BootSourceOverrideTarget'] !== undefined || b['BootSourceOverrideEnabled'] !== undefined) {
            c.node.setBootOverride(b['BootSourceOverrideTarget'], b['BootSourceOverrideEnabled']); // validates before changing
          }
          if (tag !== undefined) c.node.state.assetTag = tag;
          if (led !== undefined) c.node.state.indicatorLed = led ? 'Lit' : 'Off';
          c.node.persist();
        },
      },
    },
    {
      path: `${SYS}/Actions/ComputerSystem.Reset`,
      post: {
        privilege: 'ConfigureComponents', action: 'ComputerSystem.Reset', parameters: ['ResetType'],
        handle: (c) => {
          if (c.body['ResetType'] === undefined) throw new InputError('ResetType', 'is required');
          c.node.reset(parseResetType(c.body['ResetType']));
          return noContent;
        },
      },
    },
    {
      path: `${SYS}/ResetActionInfo`, get: () => ({
        '@odata.id': `${SYS}/ResetActionInfo`, '@odata.type': T.ActionInfo, Id: 'ResetActionInfo', Name: 'Reset Action Info',
        Parameters: [{ Name: 'ResetType', Required: true, DataType: 'String', AllowableValues: [...RESET_TYPES] }],
      }),
    },
    { path: `${SYS}/Processors`, get: (c) => collection(`${SYS}/Processors`, T.ProcessorCollection, 'Processors Collection', Array.from({ length: c.node.inventory.cpu.sockets }, (_x, i) => `${SYS}/Processors/CPU${i + 1}`)) },
    {
      path: `${SYS}/Processors/{id}`, get: (c) => {
        const cpu = c.node.inventory.cpu;
        const i = Number(/^CPU(\d+)$/.exec(c.params['id'] ?? '')?.[1] ?? 0);
        if (i < 1 || i > cpu.sockets) throw new NotFoundError('Processor', c.params['id'] ?? '');
        return {
          '@odata.id': `${SYS}/Processors/CPU${i}`, '@odata.type': T.Processor, Id: `CPU${i}`, Name: `Processor ${i}`, Socket: `CPU ${i}`,
          ProcessorType: 'CPU', ProcessorArchitecture: 'x86', InstructionSet: 'x86-64', Manufacturer: cpuVendor(cpu.model), Model: cpu.model,
          MaxSpeedMHz: cpu.speedMHz, OperatingSpeedMHz: cpu.speedMHz, TotalCores: cpu.coresPerSocket, TotalEnabledCores: cpu.coresPerSocket,
          TotalThreads: cpu.coresPerSocket * cpu.threadsPerCore, Status: ok,
        };
      },
    },
    { path: `${SYS}/Memory`, get: (c) => collection(`${SYS}/Memory`, T.MemoryCollection, 'Memory Collection', c.node.inventory.dimms.map((d) => `${SYS}/Memory/${d.slot}`)) },
    {
      path: `${SYS}/Memory/{id}`, get: (c) => {
        const d = c.node.inventory.dimms.find((x) => x.slot === c.params['id']);
        if (!d) throw new NotFoundError('Memory', c.params['id'] ?? '');
        return {
          '@odata.id': `${SYS}/Memory/${d.slot}`, '@odata.type': T.Memory, Id: d.slot, Name: `DIMM ${d.slot}`, DeviceLocator: d.slot,
          MemoryType: 'DRAM', MemoryDeviceType: d.type, CapacityMiB: d.sizeMiB, OperatingSpeedMhz: d.speedMTs, DataWidthBits: 64, BusWidthBits: 72,
          Manufacturer: 'Samsung', ErrorCorrection: 'MultiBitECC', Status: ok,
        };
      },
    },
    { path: `${SYS}/Storage`, get: () => collection(`${SYS}/Storage`, T.StorageCollection, 'Storage Collection', [`${SYS}/Storage/1`, `${SYS}/Storage/2`]) },
    { path: `${SYS}/Storage/{id}`, get: (c) => storage(c.node, c.params['id'] ?? '') },
    {
      path: `${SYS}/Storage/{id}/Controllers`, get: (c) => {
        storage(c.node, c.params['id'] ?? '');
        return collection(`${SYS}/Storage/${c.params['id']}/Controllers`, T.StorageControllerCollection, 'Storage Controllers', [`${SYS}/Storage/${c.params['id']}/Controllers/0`]);
      },
    },
    {
      path: `${SYS}/Storage/{id}/Controllers/0`, get: (c) => {
        storage(c.node, c.params['id'] ?? '');
        return storageController(c.node, c.params['id'] ?? '');
      },
    },
    {
      path: `${SYS}/Storage/{sid}/Drives/{id}`, get: (c) => {
        if (c.params['sid'] === '2' && c.params['id'] === 'Boot.0') return bootDrive(c.node);
        const m = /^Disk\.Bay\.(\d+)$/.exec(c.params['id'] ?? '');
        if (c.params['sid'] !== '1' || !m) throw new NotFoundError('Drive', c.params['id'] ?? '');
        return drive(c.node, Number(m[1]));
      },
    },
    {
      path: `${SYS}/EthernetInterfaces`,
      get: (c) => collection(`${SYS}/EthernetInterfaces`, T.EthernetInterfaceCollection, 'Ethernet Interfaces', c.node.inventory.nics.map((n) => `${SYS}/EthernetInterfaces/${n.id}`)),
    },
    {
      path: `${SYS}/EthernetInterfaces/{id}`, get: (c) => {
        const n = c.node.inventory.nics.find((x) => x.id === c.params['id']);
        if (!n) throw new NotFoundError('EthernetInterface', c.params['id'] ?? '');
        const down = c.node.state.faults.nicLinkDown.includes(n.id);
        return {
          '@odata.id': `${SYS}/EthernetInterfaces/${n.id}`, '@odata.type': T.EthernetInterface, Id: n.id, Name: `Network port ${n.id}`,
          MACAddress: n.mac, PermanentMACAddress: n.mac, SpeedMbps: down ? 0 : n.speedMbps, FullDuplex: true, AutoNeg: true, MTUSize: 1500,
          LinkStatus: down ? 'LinkDown' : 'LinkUp', InterfaceEnabled: true, Status: ok,
          Oem: { Converge: { CapableSpeedMbps: n.speedMbps } },
        };
      },
    },
    { path: `${SYS}/PCIeDevices`, get: (c) => collection(`${SYS}/PCIeDevices`, T.PCIeDeviceCollection, 'PCIe Devices', [`${SYS}/PCIeDevices/${c.node.inventory.hba.id}`]) },
    { path: `${SYS}/PCIeDevices/{id}`, get: (c) => pcieDevice(c.node, c.params['id'] ?? '') },
    {
      path: `${SYS}/PCIeDevices/{id}/PCIeFunctions`, get: (c) => {
        pcieDevice(c.node, c.params['id'] ?? '');
        return collection(`${SYS}/PCIeDevices/${c.params['id']}/PCIeFunctions`, T.PCIeFunctionCollection, 'PCIe Functions', [`${SYS}/PCIeDevices/${c.params['id']}/PCIeFunctions/0`]);
      },
    },
    {
      path: `${SYS}/PCIeDevices/{id}/PCIeFunctions/0`, get: (c) => {
        pcieDevice(c.node, c.params['id'] ?? '');
        return pcieFunction(c.node);
      },
    },
    {
      path: `${SYS}/Bios`,
      get: (c) => ({
        '@odata.id': `${SYS}/Bios`, '@odata.type': T.Bios, Id: 'BIOS', Name: 'BIOS Configuration', AttributeRegistry: 'BiosAttributeRegistry.v1_0_0',
        Attributes: { ...c.node.state.biosAttributes },
      }),
      patch: {
        privilege: 'ConfigureComponents',
        writable: Object.keys({ BootMode: 1, SecureBoot: 1, ProcessorHyperThreading: 1, ProcessorVirtualization: 1, SriovGlobalEnable: 1, IommuSupport: 1, PowerProfile: 1, PxeRetryCount: 1 }).map((k) => `Attributes/${k}`),
        apply: (c) => {
          const attrs = c.body['Attributes'] as Record<string, unknown>;
          const cur = c.node.state.biosAttributes;
          for (const [k, v] of Object.entries(attrs)) {
            if (typeof v !== typeof cur[k]) throw new InputError(`Attributes/${k}`, `must be a ${typeof cur[k]}`, undefined, v);
          }
          Object.assign(cur, attrs);
          c.node.persist();
        },
      },
    },
    { path: `${V1}/Chassis`, get: () => collection(`${V1}/Chassis`, T.ChassisCollection, 'Chassis Collection', [CH]) },
    {
      path: CH, get: (c) => {
        const n = c.node;
        return {
          '@odata.id': CH, '@odata.type': T.Chassis, Id: '1', Name: `Node ${n.identity.position} of block ${n.identity.blockSerial}`,
          ChassisType: n.model.nodesPerBlock > 1 ? 'Sled' : 'RackMount', Manufacturer: n.model.vendor, Model: n.model.name, SerialNumber: n.identity.serial,
          PartNumber: `${n.model.name}-NODE`, PowerState: n.state.power.power, Status: { State: 'Enabled', Health: systemHealth(n) },
          Location: { PartLocation: { ServiceLabel: `Block ${n.identity.blockSerial} node ${n.identity.position}`, LocationType: 'Slot', LocationOrdinalValue: n.identity.position.charCodeAt(0) - 64 } },
          Power: link(`${CH}/Power`), Thermal: link(`${CH}/Thermal`),
          Links: { ComputerSystems: [link(SYS)], ManagedBy: [link(MGR)], Drives: n.inventory.disks.map((d) => link(`${SYS}/Storage/1/Drives/${driveId(d.slot)}`)) },
          Oem: { Converge: { BlockSerial: n.identity.blockSerial, NodePosition: n.identity.position, NodesPerBlock: n.model.nodesPerBlock } },
        };
      },
    },
    {
      path: `${CH}/Power`, get: (c) => {
        const s = sensors(c.node, host);
        return {
          '@odata.id': `${CH}/Power`, '@odata.type': T.Power, Id: 'Power', Name: 'Power',
          PowerControl: [{ '@odata.id': `${CH}/Power#/PowerControl/0`, MemberId: '0', Name: 'Node power', PowerConsumedWatts: s.watts, PowerCapacityWatts: 1200, Status: ok }],
          PowerSupplies: [1, 2].map((i) => ({ '@odata.id': `${CH}/Power#/PowerSupplies/${i - 1}`, MemberId: String(i - 1), Name: `PSU${i}`, PowerCapacityWatts: 1200, LineInputVoltage: 230, Status: ok })),
        };
      },
    },
    {
      path: `${CH}/Thermal`, get: (c) => {
        const s = sensors(c.node, host);
        const temp = (i: number, name: string, v: number, crit: number): Record<string, unknown> => ({
          '@odata.id': `${CH}/Thermal#/Temperatures/${i}`, MemberId: String(i), Name: name, ReadingCelsius: v, UpperThresholdCritical: crit, Status: ok,
        });
        return {
          '@odata.id': `${CH}/Thermal`, '@odata.type': T.Thermal, Id: 'Thermal', Name: 'Thermal',
          Temperatures: [temp(0, 'Inlet Temp', s.inletC, 45), ...Array.from({ length: c.node.inventory.cpu.sockets }, (_x, i) => temp(i + 1, `CPU${i + 1} Temp`, s.cpuC - i, 95))],
          Fans: [1, 2, 3, 4].map((i) => ({ '@odata.id': `${CH}/Thermal#/Fans/${i - 1}`, MemberId: String(i - 1), Name: `FAN${i}`, Reading: s.fanRpm, ReadingUnits: 'RPM', Status: ok })),
        };
      },
    },
    { path: `${V1}/Managers`, get: () => collection(`${V1}/Managers`, T.ManagerCollection, 'Manager Collection', [MGR]) },
    { path: MGR, get: (c) => manager(c.node, host) },
    {
      path: `${MGR}/Actions/Manager.Reset`,
      post: {
        privilege: 'ConfigureManager', action: 'Manager.Reset', parameters: ['ResetType'],
        handle: (c) => {
          need.oneOf(c.body, 'ResetType', ['GracefulRestart', 'ForceRestart'], false);
          c.node.addEvent('OK', 'BMC reset requested');
          c.mem.reboot(host.clock.now() + paced(BASE_DELAYS.bmcRebootMs, host.pace, host.random));
          return noContent;
        },
      },
    },
    { path: `${MGR}/EthernetInterfaces`, get: () => collection(`${MGR}/EthernetInterfaces`, T.EthernetInterfaceCollection, 'BMC Ethernet Interfaces', [`${MGR}/EthernetInterfaces/1`]) },
    {
      path: `${MGR}/EthernetInterfaces/1`,
      get: (c) => bmcNic(c.node),
      patch: {
        privilege: 'ConfigureManager',
        writable: ['HostName', 'DHCPv4/DHCPEnabled', 'IPv4StaticAddresses'],
        apply: async (c) => {
          const host0 = need.string(c.body, 'HostName', false);
          if (host0 !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(host0)) throw new InputError('HostName', 'must be a DNS label (letters, digits, dashes; at most 63)', undefined, host0);
          const dhcp = c.body['DHCPv4'] as Record<string, unknown> | undefined;
          const dhcpOn = dhcp ? need.boolean(dhcp, 'DHCPEnabled') : undefined;
          if (dhcpOn === true) throw new InputError('DHCPv4/DHCPEnabled', 'lab BMCs have no DHCP server to ask; set IPv4StaticAddresses', ['false'], true);
          const list = c.body['IPv4StaticAddresses'];
          let next: { address: string; subnetMask: string; gateway: string } | undefined;
          if (list !== undefined) {
            if (!Array.isArray(list) || list.length !== 1 || typeof list[0] !== 'object' || list[0] === null) throw new InputError('IPv4StaticAddresses', 'must be a list of one {Address, SubnetMask, Gateway}', undefined, list);
            const e = list[0] as Record<string, unknown>;
            const ipRe = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
            const address = need.string(e, 'Address', true) as string;
            const subnetMask = need.string(e, 'SubnetMask', false) ?? c.node.state.bmcNetwork.subnetMask;
            const gateway = need.string(e, 'Gateway', false) ?? c.node.state.bmcNetwork.gateway;
            for (const [f, v] of [['Address', address], ['SubnetMask', subnetMask], ['Gateway', gateway]] as const) {
              if (!ipRe.test(v)) throw new InputError(`IPv4StaticAddresses/0/${f}`, 'must be a dotted IPv4 address', undefined, v);
            }
            if (!address.startsWith('127.')) throw new InputError('IPv4StaticAddresses/0/Address', 'a lab BMC lives on loopback: use an address in 127.0.0.0/8', undefined, address);
            next = { address, subnetMask, gateway };
          }
          const b = c.node.state.bmcNetwork;
          const moved = next !== undefined && next.address !== b.address;
          if (moved && next && host.addressInUse(c.node, next.address)) {
            throw new RedfishError(409, `IPv4StaticAddresses/0/Address: ${next.address} is in use by another BMC or the rack; nothing was changed`, [message('ResourceInUse')]);
          }
          const commit = (): void => {
            const before = { ...b };
            try {
              if (host0 !== undefined) b.hostName = host0;
              if (dhcpOn === false) b.dhcp = false;
              if (next) Object.assign(b, next);
              c.node.persist();
            } catch (e) {
              Object.assign(b, before);
              throw e;
            }
          };
          // the new address is bound before anything is saved; the answer still leaves by the old one
          if (moved && next) await host.rebind(c.node, next.address, commit);
          else commit();
        },
      },
    },
    { path: `${MGR}/VirtualMedia`, get: () => collection(`${MGR}/VirtualMedia`, T.VirtualMediaCollection, 'Virtual Media Services', [`${MGR}/VirtualMedia/CD1`]) },
    {
      path: `${MGR}/VirtualMedia/CD1`,
      get: (c) => virtualMedia(c.node),
      patch: {
        privilege: 'ConfigureComponents',
        writable: ['Image', 'Inserted', 'WriteProtected'],
        apply: (c) => {
          const img = c.body['Image'];
          const inserted = need.boolean(c.body, 'Inserted');
          const wp = need.boolean(c.body, 'WriteProtected');
          if (img !== undefined && img !== null && typeof img !== 'string') throw new InputError('Image', 'must be a URL or null', undefined, img);
          if (img === null || inserted === false) c.node.ejectMedia();
          else if (typeof img === 'string') c.node.insertMedia(img, wp ?? true, img.startsWith('https:') ? 'HTTPS' : 'HTTP');
          else if (wp !== undefined) {
            c.node.state.virtualMedia.writeProtected = wp;
            c.node.persist();
          }
        },
      },
    },
    {
      path: `${MGR}/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia`,
      post: {
        privilege: 'ConfigureComponents', action: 'VirtualMedia.InsertMedia',
        parameters: ['Image', 'Inserted', 'WriteProtected', 'TransferMethod', 'TransferProtocolType', 'UserName', 'Password'],
        handle: (c) => {
          const image = need.string(c.body, 'Image', true) as string;
          const inserted = need.boolean(c.body, 'Inserted') ?? true;
          const wp = need.boolean(c.body, 'WriteProtected') ?? true;
          need.oneOf(c.body, 'TransferMethod', ['Stream'], false);
          const proto = need.oneOf(c.body, 'TransferProtocolType', ['HTTP', 'HTTPS'], false);
          const userName = need.string(c.body, 'UserName', false);
          const password = need.string(c.body, 'Password', false);
          if (proto && !image.toLowerCase().startsWith(proto.toLowerCase() + ':')) throw new InputError('TransferProtocolType', `${proto} does not match the Image URL's scheme`, ['HTTP', 'HTTPS'], proto);
          if (!wp) throw new InputError('WriteProtected', 'virtual CD media is read-only', ['true'], false);
          // UserName/Password are HTTP Basic credentials for the image server
          const creds = userName !== undefined || password !== undefined ? { userName: userName ?? '', password: password ?? '' } : undefined;
          c.node.insertMedia(image, wp, proto ?? (image.startsWith('https:') ? 'HTTPS' : 'HTTP'), creds);
          if (!inserted) c.node.ejectMedia();
          return noContent;
        },
      },
    },
    {
      path: `${MGR}/VirtualMedia/CD1/Actions/VirtualMedia.EjectMedia`,
      post: { privilege: 'ConfigureComponents', action: 'VirtualMedia.EjectMedia', parameters: [], handle: (c) => { c.node.ejectMedia(); return noContent; } },
    },
    { path: `${MGR}/LogServices`, get: () => collection(`${MGR}/LogServices`, T.LogServiceCollection, 'Log Services', [`${MGR}/LogServices/SEL`, `${MGR}/LogServices/Console`]) },
    {
      path: `${MGR}/LogServices/{log}`, get: (c) => {
        const log = c.params['log'];
        if (log !== 'SEL' && log !== 'Console') throw new NotFoundError('LogService', log ?? '');
        const out: Record<string, unknown> = {
          '@odata.id': `${MGR}/LogServices/${log}`, '@odata.type': T.LogService, Id: log, Name: log === 'SEL' ? 'System Event Log' : 'Serial console log',
          ServiceEnabled: true, MaxNumberOfRecords: log === 'SEL' ? 500 : 1000, OverWritePolicy: 'WrapsWhenFull', LogEntryType: log === 'SEL' ? 'SEL' : 'OEM',
          DateTime: iso(host.clock.now()), Entries: link(`${MGR}/LogServices/${log}/Entries`), Status: ok,
        };
        if (log === 'SEL') out['Actions'] = { '#LogService.ClearLog': { target: `${MGR}/LogServices/SEL/Actions/LogService.ClearLog` } };
        return out;
      },
    },
    {
      path: `${MGR}/LogServices/{log}/Entries`, get: (c) => {
        const log = c.params['log'] ?? '';
        if (log !== 'SEL' && log !== 'Console') throw new NotFoundError('LogService', log);
        const entries = logEntries(c.node, log);
        return { '@odata.id': `${MGR}/LogServices/${log}/Entries`, '@odata.type': T.LogEntryCollection, Name: `${log} entries`, Members: entries, 'Members@odata.count': entries.length };
      },
    },
    {
      path: `${MGR}/LogServices/{log}/Entries/{id}`, get: (c) => {
        const log = c.params['log'] ?? '';
        if (log !== 'SEL' && log !== 'Console') throw new NotFoundError('LogService', log);
        const e = logEntries(c.node, log).find((x) => x['Id'] === c.params['id']);
        if (!e) throw new NotFoundError('LogEntry', c.params['id'] ?? '');
        return e;
      },
    },
    {
      path: `${MGR}/LogServices/SEL/Actions/LogService.ClearLog`,
      post: { privilege: 'ConfigureManager', action: 'LogService.ClearLog', parameters: [], handle: (c) => { c.node.clearEventLog(); return noContent; } },
    },
    {
      path: `${V1}/SessionService`,
      get: (c) => ({
        '@odata.id': `${V1}/SessionService`, '@odata.type': T.SessionService, Id: 'SessionService', Name: 'Session Service',
        ServiceEnabled: true, SessionTimeout: c.mem.sessionTimeoutS, Sessions: link(`${V1}/SessionService/Sessions`), Status: ok,
      }),
      patch: {
        privilege: 'ConfigureManager', writable: ['SessionTimeout'],
        apply: (c) => {
          const v = c.body['SessionTimeout'];
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 30 || v > 86400) throw new InputError('SessionTimeout', 'must be a whole number of seconds from 30 to 86400', undefined, v);
          c.mem.sessionTimeoutS = v;
        },
      },
    },
    {
      path: `${V1}/SessionService/Sessions`,
      get: (c) => collection(`${V1}/SessionService/Sessions`, T.SessionCollection, 'Session Collection',
        [...c.mem.sessions.values()].filter((s) => c.can('ConfigureManager') || s.userName === c.principal?.userName).map((s) => `${V1}/SessionService/Sessions/${s.id}`)),
      publicPost: true,
      post: {
        privilege: 'Login', parameters: ['UserName', 'Password'],
        handle: async (c) => {
          const user = need.string(c.body, 'UserName', true) as string;
          const pw = need.string(c.body, 'Password', true) as string;
          const p = await c.login(user, pw);
          const s = c.mem.createSession(p.userName, p.roleId);
          const loc = `${V1}/SessionService/Sessions/${s.id}`;
          return { status: 201, headers: { Location: loc, 'X-Auth-Token': s.token }, body: sessionBody(s) };
        },
      },
    },
    {
      path: `${V1}/SessionService/Sessions/{id}`,
      get: (c) => sessionBody(ownSession(c)),
      delete: {
        privilege: 'Login',
        handle: (c) => {
          const s = ownSession(c);
          c.mem.sessions.delete(s.id);
          return noContent;
        },
      },
    },
    {
      path: `${V1}/AccountService`, get: () => ({
        '@odata.id': `${V1}/AccountService`, '@odata.type': T.AccountService, Id: 'AccountService', Name: 'Account Service', ServiceEnabled: true,
        MinPasswordLength: MIN_PASSWORD, MaxPasswordLength: 64, AccountLockoutThreshold: 5, AccountLockoutDuration: 60, AccountLockoutCounterResetAfter: 60,
        Accounts: link(`${V1}/AccountService/Accounts`), Roles: link(`${V1}/AccountService/Roles`), Status: ok,
      }),
    },
    {
      path: `${V1}/AccountService/Accounts`,
      get: (c) => collection(`${V1}/AccountService/Accounts`, T.ManagerAccountCollection, 'Accounts Collection', c.node.state.accounts.map((a) => `${V1}/AccountService/Accounts/${a.id}`)),
      post: {
        privilege: 'ConfigureUsers', parameters: ['UserName', 'Password', 'RoleId', 'Enabled', 'AccountTypes'],
        handle: (c) => {
          const user = need.string(c.body, 'UserName', true) as string;
          const pw = need.string(c.body, 'Password', true) as string;
          const role = need.oneOf(c.body, 'RoleId', ROLES, true) as 'Administrator';
          const enabled = need.boolean(c.body, 'Enabled') ?? true;
          if (!/^[A-Za-z][A-Za-z0-9._-]{0,31}$/.test(user)) throw new InputError('UserName', 'must start with a letter; letters, digits, . _ -; at most 32', undefined, user);
          checkPassword(pw);
          if (c.node.state.accounts.some((a) => a.userName === user)) throw new RedfishError(409, `account ${user} already exists`, [message('ResourceAlreadyExists', ['ManagerAccount', 'UserName', user])]);
          const id = String(c.node.state.accounts.reduce((m, a) => Math.max(m, Number(a.id)), 0) + 1);
          c.node.state.accounts.push({ id, userName: user, passwordHash: hashPassword(pw), roleId: role, enabled, locked: false });
          c.node.persist();
          return { status: 201, headers: { Location: `${V1}/AccountService/Accounts/${id}` }, body: account(c, id) };
        },
      },
    },
    {
      path: `${V1}/AccountService/Accounts/{id}`,
      get: (c) => account(c, c.params['id'] ?? ''),
      patch: {
        privilege: 'ConfigureSelf', writable: ['Password', 'UserName', 'RoleId', 'Enabled', 'Locked'],
        apply: (c) => {
          const a = c.node.state.accounts.find((x) => x.id === c.params['id']);
          if (!a) throw new NotFoundError('ManagerAccount', c.params['id'] ?? '');
          const own = a.userName === c.principal?.userName;
          const onlyPassword = Object.keys(c.body).every((k) => k === 'Password');
          if (!c.can('ConfigureUsers') && !(own && onlyPassword)) throw new ForbiddenError('changing another account, or more than your own password, needs the ConfigureUsers privilege');
          const pw = need.string(c.body, 'Password', false);
          const user = need.string(c.body, 'UserName', false);
          const role = need.oneOf(c.body, 'RoleId', ROLES, false);
          const enabled = need.boolean(c.body, 'Enabled');
          const locked = need.boolean(c.body, 'Locked');
          if (pw !== undefined) checkPassword(pw);
          if (user !== undefined && c.node.state.accounts.some((x) => x.userName === user && x !== a)) throw new RedfishError(409, `account ${user} already exists`, [message('ResourceAlreadyExists', ['ManagerAccount', 'UserName', user])]);
          if (locked === true) throw new InputError('Locked', 'an account can only be unlocked (false)', ['false'], true);
          const admins = c.node.state.accounts.filter((x) => x.roleId === 'Administrator' && x.enabled);
          if (a.roleId === 'Administrator' && admins.length === 1 && ((role && role !== 'Administrator') || enabled === false)) throw new ConflictError('the last enabled Administrator account cannot be demoted or disabled');
          const oldName = a.userName;
          const before = { ...a };
          // a new password, name or role, or disabling, ends the account's sessions
          const endSessions = pw !== undefined || (user !== undefined && user !== a.userName) || (role !== undefined && role !== a.roleId) || (enabled === false && a.enabled);
          if (pw !== undefined) a.passwordHash = hashPassword(pw);
          if (user !== undefined) a.userName = user;
          if (role !== undefined) a.roleId = role;
          if (enabled !== undefined) a.enabled = enabled;
          if (locked === false) a.locked = false;
          try {
            c.node.persist();
          } catch (e) {
            Object.assign(a, before);
            throw e;
          }
          if (locked === false) c.clearLockout(oldName);
          if (endSessions) c.mem.dropSessionsOf(oldName);
        },
      },
      delete: {
        privilege: 'ConfigureUsers',
        handle: (c) => {
          const a = c.node.state.accounts.find((x) => x.id === c.params['id']);
          if (!a) throw new NotFoundError('ManagerAccount', c.params['id'] ?? '');
          const enabledAdmins = c.node.state.accounts.filter((x) => x.roleId === 'Administrator' && x.enabled);
          if (a.roleId === 'Administrator' && a.enabled && enabledAdmins.length === 1) throw new ConflictError('the last enabled Administrator account cannot be deleted');
          const before = c.node.state.accounts;
          c.node.state.accounts = before.filter((x) => x !== a);
          try {
            c.node.persist();
          } catch (e) {
            c.node.state.accounts = before;
            throw e;
          }
          c.mem.dropSessionsOf(a.userName);
          return noContent;
        },
      },
    },
    { path: `${V1}/AccountService/Roles`, get: () => collection(`${V1}/AccountService/Roles`, T.RoleCollection, 'Roles Collection', ROLES.map((r) => `${V1}/AccountService/Roles/${r}`)) },
    {
      path: `${V1}/AccountService/Roles/{id}`, get: (c) => {
        const r = c.params['id'] ?? '';
        const privs = ROLE_PRIVILEGES[r];
        if (!privs) throw new NotFoundError('Role', r);
        return { '@odata.id': `${V1}/AccountService/Roles/${r}`, '@odata.type': T.Role, Id: r, Name: `${r} role`, RoleId: r, IsPredefined: true, AssignedPrivileges: [...privs] };
      },
    },
    {
      path: `${V1}/UpdateService`, get: () => ({
        '@odata.id': `${V1}/UpdateService`, '@odata.type': T.UpdateService, Id: 'UpdateService', Name: 'Update Service', ServiceEnabled: true,
        FirmwareInventory: link(`${V1}/UpdateService/FirmwareInventory`), Status: ok,
        // HTTPS image servers are always verified: against public CAs and the ones added here
        VerifyCertificate: true, RemoteServerCertificates: link(`${V1}/UpdateService/RemoteServerCertificates`),
        Actions: { '#UpdateService.SimpleUpdate': { target: `${V1}/UpdateService/Actions/UpdateService.SimpleUpdate`, 'TransferProtocol@Redfish.AllowableValues': ['HTTP', 'HTTPS'] } },
      }),
    },
    {
      path: `${V1}/UpdateService/Actions/UpdateService.SimpleUpdate`,
      post: {
        privilege: 'ConfigureManager', action: 'UpdateService.SimpleUpdate', parameters: ['ImageURI', 'TransferProtocol', 'Targets', 'Username', 'Password', 'ForceUpdate'],
        handle: (c) => {
          const uri = need.string(c.body, 'ImageURI', true) as string;
          const proto = need.oneOf(c.body, 'TransferProtocol', ['HTTP', 'HTTPS'], false);
          let url: URL;
          try {
            url = new URL(uri.includes('://') ? uri : `${(proto ?? 'HTTP').toLowerCase()}://${uri}`);
          } catch {
            throw new InputError('ImageURI', 'is not a URL', undefined, uri);
          }
          if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError('ImageURI', 'only HTTP and HTTPS images can be fetched', ['HTTP', 'HTTPS'], uri);
          const targets = c.body['Targets'];
          const valid = ['BMC', 'BIOS'].map((x) => `${V1}/UpdateService/FirmwareInventory/${x}`);
          if (targets !== undefined && (!Array.isArray(targets) || targets.some((t) => typeof t !== 'string' || !valid.includes(t)))) {
            throw new InputError('Targets', 'must be a list of firmware inventory URIs', valid, targets);
          }
          if (c.mem.tasks.some((t) => t.name.startsWith('Firmware update') && (t.state === 'Running' || t.state === 'New'))) throw new RedfishError(409, 'a firmware update is already running', [message('ResourceInUse')]);
          const userName = need.string(c.body, 'Username', false);
          const password = need.string(c.body, 'Password', false);
          const creds = userName !== undefined || password !== undefined ? { userName: userName ?? '', password: password ?? '' } : undefined;
          const t = c.mem.newTask(`Firmware update from ${redactUrl(url.href)}`);
          void runFirmwareUpdate(c.node, c.mem, host, t, url.href, targets as string[] | undefined, creds).catch((e: unknown) => failTask(c.node, host, t, errorMessage(e)));
          return { status: 202, headers: { Location: `${V1}/TaskService/TaskMonitors/${t.id}` }, body: task(t) };
        },
      },
    },
    {
      path: `${V1}/UpdateService/RemoteServerCertificates`,
      get: (c) => collection(`${V1}/UpdateService/RemoteServerCertificates`, T.CertificateCollection, 'Remote Server Certificates', (c.node.state.remoteCertificates ?? []).map((x) => `${V1}/UpdateService/RemoteServerCertificates/${x.id}`)),
      post: {
        privilege: 'ConfigureManager', parameters: ['CertificateString', 'CertificateType'],
        handle: (c) => {
          const pem = need.string(c.body, 'CertificateString', true) as string;
          need.oneOf(c.body, 'CertificateType', ['PEM'], true);
          let cert: X509Certificate;
          try {
            cert = new X509Certificate(pem);
          } catch {
            throw new InputError('CertificateString', 'is not a PEM certificate', undefined, pem.slice(0, 40));
          }
          if (!cert.ca) throw new InputError('CertificateString', 'must be a CA certificate (basicConstraints CA:TRUE): it verifies the image servers\' certificates');
          const certs = (c.node.state.remoteCertificates ??= []);
          if (certs.some((x) => new X509Certificate(x.pem).fingerprint256 === cert.fingerprint256)) throw new RedfishError(409, 'this certificate is already trusted', [message('ResourceAlreadyExists', ['Certificate', 'CertificateString', cert.subject])]);
          if (certs.length >= 16) throw new RedfishError(409, 'at most 16 remote server certificates', [message('CreateLimitReachedForResource')]);
          const id = String(certs.reduce((m, x) => Math.max(m, Number(x.id)), 0) + 1);
          certs.push({ id, pem: cert.toString() });
          c.node.persist();
          return { status: 201, headers: { Location: `${V1}/UpdateService/RemoteServerCertificates/${id}` }, body: certificate(cert, id) };
        },
      },
    },
    {
      path: `${V1}/UpdateService/RemoteServerCertificates/{id}`,
      get: (c) => {
        const x = (c.node.state.remoteCertificates ?? []).find((r) => r.id === c.params['id']);
        if (!x) throw new NotFoundError('Certificate', c.params['id'] ?? '');
        return certificate(new X509Certificate(x.pem), x.id);
      },
      delete: {
        privilege: 'ConfigureManager',
        handle: (c) => {
          const certs = c.node.state.remoteCertificates ?? [];
          const i = certs.findIndex((r) => r.id === c.params['id']);
          if (i < 0) throw new NotFoundError('Certificate', c.params['id'] ?? '');
          certs.splice(i, 1);
          c.node.persist();
          return noContent;
        },
      },
    },
    { path: `${V1}/UpdateService/FirmwareInventory`, get: (c) => collection(`${V1}/UpdateService/FirmwareInventory`, T.SoftwareInventoryCollection, 'Firmware Inventory', firmwareIds(c.node).map((x) => `${V1}/UpdateService/FirmwareInventory/${x}`)) },
    {
      path: `${V1}/UpdateService/FirmwareInventory/{id}`, get: (c) => {
        const id = c.params['id'] ?? '';
        if (id === 'BMC' || id === 'BIOS') {
          return {
            '@odata.id': `${V1}/UpdateService/FirmwareInventory/${id}`, '@odata.type': T.SoftwareInventory, Id: id, Name: `${id} firmware`,
            Version: id === 'BMC' ? c.node.state.firmware.bmc : c.node.state.firmware.bios, Updateable: true, SoftwareId: `${c.node.model.name}-${id}`, Status: ok,
          };
        }
        // a drive's firmware, as servers list it beside the BMC's and BIOS's (read only here: SimpleUpdate flashes BMC and BIOS)
        const d = c.node.inventory.disks.find((x) => driveId(x.slot) === id);
        if (!d) throw new NotFoundError('SoftwareInventory', id);
        return {
          '@odata.id': `${V1}/UpdateService/FirmwareInventory/${id}`, '@odata.type': T.SoftwareInventory, Id: id, Name: `${d.model} firmware (bay ${d.slot})`,
          Version: d.firmware, Updateable: false, SoftwareId: d.model, Status: ok,
          RelatedItem: [link(`${SYS}/Storage/1/Drives/${id}`)], 'RelatedItem@odata.count': 1,
        };
      },
    },
    {
      path: `${V1}/TaskService`, get: () => ({
        '@odata.id': `${V1}/TaskService`, '@odata.type': T.TaskService, Id: 'TaskService', Name: 'Task Service', ServiceEnabled: true,
        CompletedTaskOverWritePolicy: 'Oldest', LifeCycleEventOnTaskStateChange: false, Tasks: link(`${V1}/TaskService/Tasks`), Status: ok,
      }),
    },
    { path: `${V1}/TaskService/Tasks`, get: (c) => collection(`${V1}/TaskService/Tasks`, T.TaskCollection, 'Task Collection', c.mem.tasks.map((t) => `${V1}/TaskService/Tasks/${t.id}`)) },
    { path: `${V1}/TaskService/Tasks/{id}`, get: (c) => task(taskOf(c)) },
    {
      // DSP0266 "Asynchronous operations": 202 while running, then the outcome.
      path: `${V1}/TaskService/TaskMonitors/{id}`,
      get: (c) => task(taskOf(c)),
      getStatus: (c) => (['Running', 'New'].includes(taskOf(c).state) ? 202 : 200),
    },
    { path: `${V1}/Registries`, get: () => collection(`${V1}/Registries`, T.MessageRegistryFileCollection, 'Registry File Collection', [`${V1}/Registries/Base`]) },
    {
      path: `${V1}/Registries/Base`, get: () => ({
        '@odata.id': `${V1}/Registries/Base`, '@odata.type': T.MessageRegistryFile, Id: 'Base', Name: 'Base Message Registry File',
        Languages: ['en'], Registry: BASE_REGISTRY.replace(/\.\d+$/, ''),
        Location: [{ Language: 'en', PublicationUri: `https://redfish.dmtf.org/registries/${BASE_REGISTRY}.json` }],
      }),
    },
  ];
}

function sessionBody(s: { id: string; userName: string; created: number }): Record<string, unknown> {
  return { '@odata.id': `${V1}/SessionService/Sessions/${s.id}`, '@odata.type': T.Session, Id: s.id, Name: 'User Session', UserName: s.userName, SessionType: 'Redfish', CreatedTime: iso(s.created) };
}

function ownSession(c: Ctx): { id: string; userName: string; created: number } {
  const s = c.mem.sessions.get(c.params['id'] ?? '');
  if (!s || (s.userName !== c.principal?.userName && !c.can('ConfigureManager'))) throw new NotFoundError('Session', c.params['id'] ?? '');
  return s;
}

function taskOf(c: Ctx): BmcTask {
  const t = c.mem.tasks.find((x) => x.id === c.params['id']);
  if (!t) throw new NotFoundError('Task', c.params['id'] ?? '');
  return t;
}
