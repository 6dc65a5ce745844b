/**
 * @module
 * `converge rack tour`: the README's main job for now. Brings a 4-node rack up in the background
 * and walks through it as an infrastructure engineer would on real hardware: discover the BMCs,
 * log in, read a node's inventory, power a node on (nothing is installed yet, and it says so),
 * fail a disk and see it, then prints the commands to go on by hand.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { RedfishClient } from '../rack/protocol/redfish-client.ts';
import { ssdpSearch } from '../rack/protocol/ssdp.ts';
import { bringUp, clientOf, configOf, dataDirOf, printNodes, type UpOptions } from './rack.ts';
import { fail, table } from './output.ts';

const say = (s = ''): void => void process.stdout.write(s + '\n');
const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (n: number, title: string): void => say(`\n${bold(`${n}. ${title}`)}`);
const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(0)} GiB`;

async function tour(o: UpOptions): Promise<void> {
  const dataDir = dataDirOf(o);
  step(1, 'Rack up: virtual bare-metal nodes, each with a Redfish BMC over HTTPS');
  const t0 = Date.now();
  const up = await bringUp(o);
  say(up.alreadyRunning ? 'The rack was already up.' : `Up in ${((Date.now() - t0) / 1000).toFixed(1)} s.`);
  printNodes(up.status.nodes);
  const cfg = configOf(dataDir);
  const ca = readFileSync(up.status.caCert, 'utf8');
  const first = up.status.nodes[0];
  const second = up.status.nodes[1] ?? first;
  if (!first || !second) throw new Error('the rack has no nodes');

  step(2, 'Discovery: Redfish SSDP M-SEARCH, as Foundation will find the BMCs');
  const found = await ssdpSearch({ port: cfg.network.ssdpPort, timeoutMs: 800 });
  if (found.length > 0) for (const f of found) say(`  found ${f.url}  (uuid ${f.uuid})`);
  else say(`  no SSDP answers here; the rack also lists its BMCs at ${up.status.controlUrl}/rack/bmcs (with the bearer token of converge rack token)`);

  step(3, `Log in to the BMC of ${first.serial} (a Redfish session, X-Auth-Token)`);
  const rf = new RedfishClient(first.bmc.url, cfg.bmc.userName, cfg.bmc.password, ca);
  try {
    const token = await rf.login();
    say(`  session token ${token.slice(0, 6)}… for ${cfg.bmc.userName}`);

    step(4, 'Inventory read over Redfish');
    const sys = await rf.get<{ Model: string; SerialNumber: string; ProcessorSummary: { Count: number; CoreCount: number; Model: string }; MemorySummary: { TotalSystemMemoryGiB: number }; PowerState: string; BiosVersion: string }>('/redfish/v1/Systems/1');
    say(`  ${sys.Model} ${sys.SerialNumber}: ${sys.ProcessorSummary.Count} x ${sys.ProcessorSummary.Model}, ${sys.ProcessorSummary.CoreCount} cores, ${sys.MemorySummary.TotalSystemMemoryGiB} GiB RAM, BIOS ${sys.BiosVersion}`);
    const storage = await rf.get<{ Drives: { '@odata.id': string }[] }>('/redfish/v1/Systems/1/Storage/1');
    const rows = [['  DRIVE', 'MEDIA', 'BUS', 'CAPACITY', 'SERIAL', 'HEALTH']];
    for (const d of storage.Drives) {
      const x = await rf.get<{ Id: string; MediaType: string; Protocol: string; CapacityBytes: number; SerialNumber: string; Status: { Health: string } }>(d['@odata.id']);
      rows.push([`  ${x.Id}`, x.MediaType, x.Protocol, gib(x.CapacityBytes), x.SerialNumber, x.Status.Health]);
    }
    say(table(rows));
    const hba = await rf.get<{ Name: string; Oem: { Converge: { PassthroughCapable: boolean } } }>('/redfish/v1/Systems/1/PCIeDevices/HBA0');
    say(`  storage HBA: ${hba.Name} (passthrough-capable: ${hba.Oem.Converge.PassthroughCapable}) — Foundation will pass it through to the CVM`);

    step(5, `Power on ${first.serial}: nothing is installed on its boot disk yet`);
    await rf.post('/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { ResetType: 'On' });
    let bp = { LastState: '', OemLastState: '' };
    for (let i = 0; i < 200; i++) {
      const s = await rf.get<{ PowerState: string; BootProgress: { LastState: string; OemLastState?: string } }>('/redfish/v1/Systems/1');
      bp = { LastState: s.BootProgress.LastState, OemLastState: s.BootProgress.OemLastState ?? '' };
      if (bp.LastState === 'OEM' || bp.LastState === 'OSRunning') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    say(`  BootProgress: ${bp.LastState}${bp.OemLastState ? ` / ${bp.OemLastState}` : ''}`);
    const consoleLog = await rf.get<{ Members: { Message: string }[] }>('/redfish/v1/Managers/1/LogServices/Console/Entries');
    for (const e of consoleLog.Members.slice(-3)) say(`  console: ${e.Message}`);
    await rf.post('/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { ResetType: 'ForceOff' });
    say('  powered off again. Foundation (next issue) will boot its installer here from virtual media.');
  } finally {
    await rf.close();
  }

  step(6, `Fault injection: fail a data disk of ${second.serial}`);
  const api = clientOf(dataDir);
  const rf2 = new RedfishClient(second.bmc.url, cfg.bmc.userName, cfg.bmc.password, ca);
  try {
    const node = await api.node(second.serial);
    const hw = await rf2.get<{ Drives: { '@odata.id': string }[] }>('/redfish/v1/Systems/1/Storage/1');
    const target = hw.Drives[0]?.['@odata.id'] ?? '';
    const d0 = await rf2.get<{ SerialNumber: string; Status: { Health: string } }>(target);
    await api.setFaults(node.serial, { failedDisks: [d0.SerialNumber] });
    const d1 = await rf2.get<{ Status: { Health: string } }>(target);
    say(`  drive ${d0.SerialNumber}: health ${d0.Status.Health} → ${d1.Status.Health}; its owner now gets I/O errors`);
    await api.clearFaults(node.serial);
    say('  fault cleared.');
  } finally {
    await rf2.close();
  }

  step(7, 'Go on by hand');
  const pw = up.password ? up.password : '<password in rack.json>';
  say(`  curl --cacert ${up.status.caCert} -u ${cfg.bmc.userName}:${pw} ${first.bmc.url}/redfish/v1/Systems/1`);
  say(`  converge rack status${o.dataDir ? ` --data-dir ${dataDir}` : ''}`);
  say(`  converge rack fault 2 --bmc-slow 2000${o.dataDir ? ` --data-dir ${dataDir}` : ''}`);
  say(`  converge rack down${o.dataDir ? ` --data-dir ${dataDir}` : ''}    # stops it; rack up brings the same rack back`);
  if (up.password) say(`\nBMC credentials: ${cfg.bmc.userName} / ${up.password} (shown once; kept in ${dataDir}/rack/rack.json, mode 0600)`);
  say('\nThe rack keeps running in the background. Docs: docs/rack.md');
}

export function registerRackTour(rack: Command): void {
  rack.command('tour')
    .description('bring a lab rack up and walk through it (the README demo)')
    .option('--data-dir <dir>', 'where the rack lives (default ~/.converge)')
    .option('--nodes <n>', 'nodes of a new rack (default 4)')
    .option('--pace <factor>', 'hardware delays as a fraction of real time (default 0.02)')
    .action((o: UpOptions) => tour(o).catch((e: unknown) => fail(e, false)));
}
