/**
 * @module
 * Foundation's side of Redfish: reading a node's inventory into a DiscoveredNode, and the
 * operations imaging needs (BMC network, power off, virtual media, one-time boot, power on, watching
 * the node).
 * Follows links from the service root rather than assuming URIs, so it drives any Redfish BMC
 * that has these resources.
 */
import { RedfishClient, RedfishClientError } from '../../rack/protocol/redfish-client.ts';
import type { DiscoveredNode, NodeInventoryView } from '../core/types.ts';

type Json = Record<string, unknown>;
/** Reads a nested value of a JSON body: pick(o, 'Links', 'ManagedBy', 0). */
function pick(o: unknown, ...path: (string | number)[]): unknown {
  let cur = o;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}
const id = (x: unknown): string => {
  const v = pick(x, '@odata.id');
  return typeof v === 'string' ? v : '';
};
const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : d);

export interface BmcCredentials {
  user: string;
  password: string;
  ca?: string;
}

export interface BmcPaths {
  system: string;
  manager: string;
  chassis: string;
  virtualMedia: string;
  bmcNic: string;
}

export class Bmc {
  private client: RedfishClient;
  private paths: BmcPaths | undefined;

  constructor(readonly url: string, creds: BmcCredentials) {
    this.client = new RedfishClient(url, creds.user, creds.password, creds.ca, 20_000);
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** Finds the system, manager, chassis, CD virtual media and BMC NIC from the service root. */
  async resolve(): Promise<BmcPaths> {
    if (this.paths) return this.paths;
    const root = await this.client.get<Json>('/redfish/v1/');
    const systems = await this.client.get<Json>(id(root['Systems']));
    const system = id(pick(systems, 'Members', 0));
    const sys = await this.client.get<Json>(system);
    const manager = id(pick(sys, 'Links', 'ManagedBy', 0));
    const chassis = id(pick(sys, 'Links', 'Chassis', 0));
    const mgr = await this.client.get<Json>(manager);
    const vms = await this.client.members<Json>(id(mgr['VirtualMedia']));
    const cd = vms.find((v) => (v['MediaTypes'] as string[] | undefined)?.some((t) => t === 'CD' || t === 'DVD')) ?? vms[0];
    const nics = await this.client.get<Json>(id(mgr['EthernetInterfaces']));
    this.paths = { system, manager, chassis, virtualMedia: id(cd), bmcNic: id(pick(nics, 'Members', 0)) };
    return this.paths;
  }

  async inventory(ip: string): Promise<DiscoveredNode> {
    const p = await this.resolve();
    const c = this.client;
    const [sys, chassis, mgr, bmcNic] = await Promise.all([c.get<Json>(p.system), c.get<Json>(p.chassis), c.get<Json>(p.manager), c.get<Json>(p.bmcNic)]);
    const procs = await c.members<Json>(id(sys['Processors']));
    const cpus = procs.filter((x) => x['ProcessorType'] === 'CPU');
    const nics = await c.members<Json>(id(sys['EthernetInterfaces']));
    const storages = await c.members<Json>(id(sys['Storage']));
    const disks: NodeInventoryView['disks'] = [];
    let bootDevice: NodeInventoryView['bootDevice'] = null;
    for (const st of storages) {
      for (const d of await Promise.all(((st['Drives'] ?? []) as Json[]).map((x) => c.get<Json>(id(x))))) {
        if (/boot/i.test(String(st['Name'])) || /^Boot/.test(String(d['Id']))) {
          bootDevice = { serial: str(d['SerialNumber']), model: str(d['Model']), type: str(d['Name']).split(' ')[0] ?? 'M.2', capacityBytes: Number(d['CapacityBytes']) };
        } else {
          disks.push({
            serial: str(d['SerialNumber']), model: str(d['Model']), mediaType: d['MediaType'] === 'HDD' ? 'HDD' : 'SSD', protocol: str(d['Protocol']),
            capacityBytes: Number(d['CapacityBytes']), health: str(pick(d, 'Status', 'Health'), 'OK') as 'OK' | 'Warning' | 'Critical',
            slot: Number(pick(d, 'PhysicalLocation', 'PartLocation', 'LocationOrdinalValue') ?? disks.length),
          });
        }
      }
    }
    let hba: NodeInventoryView['hba'] = null;
    for (const l of (sys['PCIeDevices'] ?? []) as Json[]) {
      const dev = await c.get<Json>(id(l));
      const fns = await c.members<Json>(id(dev['PCIeFunctions']));
      const fn = fns.find((f) => f['DeviceClass'] === 'MassStorageController');
      if (fn) {
        hba = { model: str(dev['Model'] ?? dev['Name']), vendorId: str(fn['VendorId']), deviceId: str(fn['DeviceId']), passthroughCapable: pick(dev, 'Oem', 'Converge', 'PassthroughCapable') === true, pciAddress: str(pick(dev, 'Oem', 'Converge', 'PciAddress'), '0000:00:00.0') };
        break;
      }
    }
    const first: Json = cpus[0] ?? {};
    const node: DiscoveredNode = {
      serial: str(sys['SerialNumber']),
      uuid: str(sys['UUID']),
      model: str(sys['Model']),
      vendor: str(sys['Manufacturer']),
      blockSerial: str(pick(chassis, 'Oem', 'Converge', 'BlockSerial'), str(sys['SerialNumber'])),
      position: str(pick(chassis, 'Oem', 'Converge', 'NodePosition'), 'A'),
      bmc: { url: this.url, ip, mac: str(bmcNic['MACAddress']) },
      power: str(sys['PowerState']),
      inventory: {
        cpu: { model: str(first['Model'] ?? pick(sys, 'ProcessorSummary', 'Model')), sockets: cpus.length, coresPerSocket: Number(first['TotalCores'] ?? 0), threadsPerCore: Math.max(1, Math.round(Number(first['TotalThreads'] ?? 1) / Math.max(1, Number(first['TotalCores'] ?? 1)))) },
        memoryMiB: Math.round(Number(pick(sys, 'MemorySummary', 'TotalSystemMemoryGiB') ?? 0) * 1024),
        nics: nics.map((n) => ({ id: str(n['Id']), mac: str(n['MACAddress']), speedMbps: Number(pick(n, 'Oem', 'Converge', 'CapableSpeedMbps') ?? n['SpeedMbps'] ?? 0), linkUp: n['LinkStatus'] !== 'LinkDown' })),
        bootDevice,
        disks: disks.sort((a, b) => a.slot - b.slot),
        hba,
        firmware: { bios: str(sys['BiosVersion']), bmc: str(mgr['FirmwareVersion']) },
      },
    };
    return node;
  }

  async configureNetwork(ip: string, netmask: string, gateway: string): Promise<void> {
    const p = await this.resolve();
    await this.client.patch(p.bmcNic, { IPv4StaticAddresses: [{ Address: ip, SubnetMask: netmask, Gateway: gateway }] });
  }

  async insertMedia(url: string): Promise<void> {
    const p = await this.resolve();
    const vm = await this.client.get<Json>(p.virtualMedia);
    if (vm['Inserted'] === true) await this.ejectMedia();
    await this.client.post(`${p.virtualMedia}/Actions/VirtualMedia.InsertMedia`, { Image: url, Inserted: true, WriteProtected: true });
  }

  async ejectMedia(): Promise<void> {
    const p = await this.resolve();
    await this.client.post(`${p.virtualMedia}/Actions/VirtualMedia.EjectMedia`, {});
  }

  async bootOnceCd(): Promise<void> {
    const p = await this.resolve();
    await this.client.patch(p.system, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } });
  }

  /** The system's PowerState as the BMC reports it (On, Off, PoweringOn, PoweringOff). */
  async powerState(): Promise<string> {
    const p = await this.resolve();
    return str((await this.client.get<Json>(p.system))['PowerState']);
  }

  /** ForceOff, unless the BMC already reports the system Off. Answers whether it was sent. */
  async forceOff(): Promise<boolean> {
    const p = await this.resolve();
    if ((await this.powerState()) === 'Off') return false;
    await this.client.reset(p.system, 'ForceOff');
    return true;
  }

  async powerOnOrRestart(): Promise<'On' | 'ForceRestart'> {
    const p = await this.resolve();
    const sys = await this.client.get<Json>(p.system);
    const type = sys['PowerState'] === 'Off' ? 'On' : 'ForceRestart';
    await this.client.reset(p.system, type);
    return type;
  }

  /** Whether the node has stopped doing anything useful (crashed, nothing to boot, powered off), and why. */
  async halted(): Promise<string | null> {
    const p = await this.resolve();
    const sys = await this.client.get<Json>(p.system);
    const oem = str(pick(sys, 'BootProgress', 'OemLastState'));
    if (sys['PowerState'] === 'Off') return 'the node powered off during installation (see its console and SEL)';
    if (oem !== 'OSCrashed' && oem !== 'NoBootableDevice') return null;
    const mgr = await this.client.get<Json>(p.manager);
    let tail = '';
    try {
      const logs = await this.client.members<Json>(id(mgr['LogServices']));
      const consoleLog = logs.find((l) => l['Id'] === 'Console');
      if (consoleLog) {
        const entries = await this.client.get<Json>(id(consoleLog['Entries']));
        tail = ((entries['Members'] ?? []) as Json[]).slice(-2).map((e) => str(e['Message'])).join(' | ');
      }
    } catch {
      tail = '';
    }
    return `${oem === 'OSCrashed' ? 'the installer crashed' : 'the node found nothing to boot'}${tail ? `: ${tail}` : ''}`;
  }
}

export { RedfishClientError };
