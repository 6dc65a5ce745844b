/**
 * @module
 * The installer (Phoenix in the reference platform): what a node runs when Foundation boots it
 * from virtual media. It fetches its configuration and the release bundle from Foundation,
 * verifies the bundle, prepares the data disks, writes the hypervisor and the CVM with the node's
 * configuration onto the boot disk, reads them back to check them, reports every step to
 * Foundation, and reboots into what it installed.
 *
 * Steps and the percent reported at each:
 *   5 configuration · 10-40 download · 45 verify · 50-60 disks · 65-90 boot disk · 95 read back · 100 done
 */
import { readFileSync } from 'node:fs';
import { DiskVolume } from '../shared/disk-volume.ts';
import { errorMessage } from '../shared/errors.ts';
import { openBundle, sha256Of } from '../shared/bundle/archive.ts';
import { selfCompatible } from '../shared/bundle/manifest.ts';
import { HARDWARE_ENV, EXIT_REBOOT, BOOT_MANIFEST, type NodeHardware } from '../rack/protocol/hardware.ts';
import { configUrlOf, nodeAuthorization, type InstallConfig, type InstallerReport } from '../foundation/protocol/installer.ts';
import { NODE_CONFIG_PATH, NODE_IDENTITY_PATH, HYPERVISOR_ENTRY, CVM_ENTRY, type NodeConfig } from '../hypervisor/protocol/node-config.ts';

const hwPath = process.env[HARDWARE_ENV];
if (!hwPath) {
  console.error(`installer: ${HARDWARE_ENV} is not set; this program runs on a node booted from Foundation's media`);
  process.exit(1);
}
const hw = JSON.parse(readFileSync(hwPath, 'utf8')) as NodeHardware;
const crashAt = hw.faults.installerCrashAtPercent;
let cfg: InstallConfig | undefined;

async function report(percent: number, message: string, status: InstallerReport['status'] = 'running'): Promise<void> {
  if (crashAt !== undefined && percent >= crashAt && status === 'running') {
    // Injected fault: the installer dies here, as a kernel panic would, without reporting.
    console.log(`installer: FATAL: unexpected error at ${percent}% (${message})`);
    process.exit(70);
  }
  console.log(`installer: [${String(percent).padStart(3)}%] ${message}`);
  if (!cfg) return;
  const body: InstallerReport = { serial: hw.serial, percent, message, status };
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await fetch(cfg.reportUrl, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: nodeAuthorization(cfg.foundationToken) }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
      // refused for good (unknown session or node, a credential Foundation no longer takes): nobody to tell
      if (r.ok || r.status === 401 || r.status === 403 || r.status === 404 || r.status === 409) return;
      throw new Error(`HTTP ${r.status}`);
    } catch (e) {
      if (attempt >= 5) {
        console.log(`installer: cannot report to Foundation (${errorMessage(e)}); going on`);
        return;
      }
      await new Promise((res) => setTimeout(res, 500 * attempt));
    }
  }
}

/** A media URL as it may be shown: its path holds the media credential. */
const shown = (url: string): string => `${new URL(url).origin}/foundation/media/…`;

async function download(url: string): Promise<Buffer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(300_000) });
  if (!res.ok || !res.body) throw new Error(`GET ${shown(url)}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const chunks: Buffer[] = [];
  let got = 0;
  let next = 0.25;
  for await (const c of res.body) {
    const b = Buffer.from(c as Uint8Array);
    chunks.push(b);
    got += b.length;
    if (total > 0 && got / total >= next) {
      await report(10 + Math.round(30 * next), `downloading bundle: ${Math.round((100 * got) / total)}% of ${(total / 1024).toFixed(0)} KiB`);
      next += 0.25;
    }
  }
  return Buffer.concat(chunks);
}

async function main(): Promise<void> {
  if (!hw.mediaUrl) throw new Error('no virtual media URL: this node was not booted from Foundation media');
  const cfgRes = await fetch(configUrlOf(hw.mediaUrl), { signal: AbortSignal.timeout(30_000) });
  if (!cfgRes.ok) throw new Error(`cannot read the install configuration: HTTP ${cfgRes.status}`);
  cfg = (await cfgRes.json()) as InstallConfig;
  if (cfg.serial !== hw.serial) throw new Error(`the configuration is for node ${cfg.serial}, this is ${hw.serial}`);
  if (typeof cfg.foundationToken !== 'string' || cfg.foundationToken === '') throw new Error('the configuration carries no node credential (foundationToken)');
  await report(5, `installer started on ${hw.serial} (${hw.model}); installing as ${cfg.hostname}`);

  await report(10, `downloading the bundle from ${shown(cfg.bundleUrl)}`);
  const archive = await download(cfg.bundleUrl);
  const digest = sha256Of(archive);
  if (digest !== cfg.bundleSha256) throw new Error(`bundle sha256 ${digest} does not match Foundation's ${cfg.bundleSha256}`);
  const bundle = await openBundle(archive, 'bundle');
  if (!selfCompatible(bundle.manifest)) throw new Error(`bundle ${bundle.manifest.version}: its storage OS does not support its hypervisor`);
  const m = bundle.manifest;
  await report(45, `bundle ${m.version} verified: hypervisor ${m.components.hypervisor.version}, storage OS ${m.components.cvm.version}`);

  const hba = hw.hba;
  if (hba.pciAddress !== cfg.hbaPciAddress) throw new Error(`HBA ${cfg.hbaPciAddress} not found (this node has ${hba.pciAddress})`);
  let n = 0;
  for (const d of hw.disks) {
    const v = DiskVolume.open(d.path);
    await v.wipe();
    await v.writeFile('.converge-disk', JSON.stringify({ serial: d.serial, preparedAt: new Date().toISOString(), node: hw.serial }));
    n++;
    await report(50 + Math.round((10 * n) / hw.disks.length), `prepared data disk ${d.serial} (${d.mediaType}, ${(d.capacityBytes / 1024 ** 3).toFixed(0)} GiB) for passthrough to the CVM`);
  }

  const boot = DiskVolume.open(hw.bootDevice.path);
  await boot.wipe();
  await report(65, `boot device ${hw.bootDevice.serial} wiped`);
  const files = bundle.files;
  const nodeConfig: NodeConfig = {
    serial: hw.serial, hostname: cfg.hostname,
    hostIp: cfg.hostIp, hostNetmask: cfg.hostNetmask, hostGateway: cfg.hostGateway,
    cvmIp: cfg.cvmIp, cvmNetmask: cfg.cvmNetmask, cvmGateway: cfg.cvmGateway,
    dns: cfg.dns, ntp: cfg.ntp, cvm: cfg.cvm, hbaPciAddress: cfg.hbaPciAddress, foundationUrl: cfg.foundationUrl, foundationToken: cfg.foundationToken,
    versions: { hypervisor: m.components.hypervisor.version, nos: m.components.cvm.version, bundle: m.version },
    installedAt: new Date().toISOString(),
  };
  // Everything in the bundle but the installer itself goes onto the boot disk: the hypervisor,
  // the CVM, and the data files they read (e.g. proto/).
  const written: [string, Buffer][] = [
    ...[...files].filter(([p]) => !p.startsWith('installer/') && p !== 'manifest.json'),
    ['manifest.json', files.get('manifest.json') ?? Buffer.from(JSON.stringify(m))],
    [NODE_CONFIG_PATH, Buffer.from(JSON.stringify(nodeConfig, null, 2))],
    [NODE_IDENTITY_PATH, Buffer.from(JSON.stringify(cfg.identity, null, 2))],
  ];
  if (!written.some(([p]) => p === HYPERVISOR_ENTRY) || !written.some(([p]) => p === CVM_ENTRY)) throw new Error(`bundle lacks ${HYPERVISOR_ENTRY} or ${CVM_ENTRY}`);
  for (const [i, [p, b]] of written.entries()) {
    await boot.writeFile(p, b);
    await report(70 + Math.round((i * 15) / written.length), `wrote ${p}${p === NODE_IDENTITY_PATH ? ' (the node\'s certificate and key)' : ''} (${b.length} bytes)`);
  }
  const bootJson = { name: 'converge-hypervisor', version: m.components.hypervisor.version, entry: HYPERVISOR_ENTRY };
  await boot.writeFile(BOOT_MANIFEST, JSON.stringify(bootJson));
  await report(90, `boot manifest written: ${bootJson.name} ${bootJson.version}`);
  for (const [p, b] of written) {
    const back = await boot.readFile(p);
    if (sha256Of(back) !== sha256Of(b)) throw new Error(`read-back of ${p} differs from what was written`);
  }
  await report(95, `boot disk verified (${boot.used()} bytes used of ${boot.capacityBytes})`);
  await report(100, `installed hypervisor ${m.components.hypervisor.version} and CVM ${m.components.cvm.version}; rebooting`, 'done');
  process.exit(EXIT_REBOOT);
}

main().catch(async (e: unknown) => {
  const msg = errorMessage(e);
  console.log(`installer: FAILED: ${msg}`);
  await report(0, msg, 'failed').catch(() => undefined);
  process.exit(1);
});
