/**
 * @module
 * A VM's QEMU command line, from its spec and where its host keeps things (pure: no I/O).
 *
 * ```
 *  qemu-system-x86_64 -machine q35 -accel tcg -smp 1 -m 128M -nodefaults -no-user-config …
 *    -qmp unix:<dir>/qmp.sock,server=on,wait=off                     the host drives it here
 *    -chardev socket,id=ser0,path=<dir>/serial.sock,server=on,wait=off,logfile=<log>,logappend=on
 *    -serial chardev:ser0                                             the console: logged, streamed, typed into
 *    -blockdev driver=nbd,server.type=unix,server.path=<vdisk socket>,export=<vdisk>,node-name=disk0,…
 *    -device virtio-blk-pci,drive=disk0,id=vd0,bootindex=1            a vdisk through the host's redirector
 *    -netdev stream,id=net0,server=off,addr.type=unix,addr.path=<switch port>
 *    -device virtio-net-pci,netdev=net0,mac=…,id=nic0                 a port on the host's virtual switch
 *    [-incoming defer]                                                waiting for a live migration
 * ```
 * Every value placed in an option string is escaped (a comma doubled: QEMU's option syntax), on top
 * of the spec's own narrow alphabets (spec.ts).
 */
import type { HostVmSpec } from '../protocol/vms.ts';

export interface QemuPaths {
  /** QMP's Unix socket. */
  qmp: string;
  /** The serial console's Unix socket (QEMU listens; the host connects once). */
  serial: string;
  /** The serial console's log (appended across restarts). */
  consoleLog: string;
  /** The host's redirector socket: every vdisk is an export of it. */
  vdiskSocket: string;
}

export interface QemuArgsInput {
  spec: HostVmSpec;
  /** kvm when /dev/kvm is usable, else tcg (software emulation). */
  accel: 'kvm' | 'tcg';
  /** Default q35. */
  machine?: 'q35' | 'pc';
  /** Default none (the serial console is the VM's console). */
  vga?: 'none' | 'std';
  paths: QemuPaths;
  /** The Unix socket of this host's virtual switch port for a subnet. */
  nicSocket: (subnetUuid: string) => string;
  /** Start waiting for a migration (`-incoming defer`; migrate-incoming names the address). */
  incoming?: boolean;
  /** Start with the CPUs stopped (`-S`); the host says `cont` once it is connected. */
  paused?: boolean;
  /** QEMU's seccomp sandbox (default on). */
  sandbox?: boolean;
  /** Seconds QEMU keeps retrying a vdisk whose NBD connection dropped (redirector failover) before failing I/O. */
  nbdReconnectDelayS?: number;
}

/** A value inside a QEMU option string (`key=value,key=value`): commas doubled. */
export function qemuOpt(value: string | number): string {
  return String(value).replace(/,/g, ',,');
}

/** `key=value,…` from pairs, each value escaped; undefined values left out. */
function opts(pairs: [string, string | number | undefined][]): string {
  return pairs.filter((p): p is [string, string | number] => p[1] !== undefined).map(([k, v]) => `${k}=${qemuOpt(v)}`).join(',');
}

export function qemuArgs(i: QemuArgsInput): string[] {
  const s = i.spec;
  const a: string[] = [
    '-machine', opts([['type', i.machine ?? 'q35']]),
    '-accel', i.accel,
    '-name', opts([['guest', s.name]]),
    '-uuid', s.uuid,
    '-smp', String(s.vcpus),
    '-m', `${s.memoryMiB}M`,
    '-nodefaults', '-no-user-config',
    '-display', 'none',
    '-vga', i.vga ?? 'none',
    '-rtc', 'base=utc',
    '-msg', 'timestamp=on',
    '-qmp', `unix:${qemuOpt(i.paths.qmp)},server=on,wait=off`,
    '-chardev', 'socket,' + opts([['id', 'ser0'], ['path', i.paths.serial], ['server', 'on'], ['wait', 'off'], ['logfile', i.paths.consoleLog], ['logappend', 'on']]),
    '-serial', 'chardev:ser0',
  ];
  if (i.sandbox ?? true) a.push('-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
  if (s.disks.some((d) => d.bus === 'virtio-scsi')) a.push('-device', 'virtio-scsi-pci,id=scsi0');
  let scsiId = 0;
  let cd = 0;
  const q35 = (i.machine ?? 'q35') === 'q35';
  s.disks.forEach((d, n) => {
    const node = `disk${n}`;
    const cdrom = d.bus === 'cdrom';
    a.push('-blockdev', opts([
      ['driver', 'nbd'], ['server.type', 'unix'], ['server.path', i.paths.vdiskSocket], ['export', d.vdisk], ['node-name', node],
      ['reconnect-delay', i.nbdReconnectDelayS ?? 30],
      ['cache.direct', 'off'], ['cache.no-flush', 'off'],
      ['read-only', cdrom ? 'on' : 'off'], ['discard', cdrom ? undefined : 'unmap'],
    ]));
    const boot: [string, number | undefined] = ['bootindex', d.bootIndex];
    switch (d.bus) {
      case 'virtio-blk':
        a.push('-device', 'virtio-blk-pci,' + opts([['drive', node], ['id', `vd${n}`], boot]));
        break;
      case 'virtio-scsi':
        a.push('-device', 'scsi-hd,' + opts([['bus', 'scsi0.0'], ['channel', 0], ['scsi-id', scsiId++], ['lun', 0], ['drive', node], ['id', `vd${n}`], boot]));
        break;
      case 'cdrom':
        // q35's AHCI has a bus per port (ide.0 … ide.5); pc's IDE two units on each of ide.0 and ide.1
        a.push('-device', 'ide-cd,' + opts([['bus', q35 ? `ide.${cd}` : `ide.${cd >> 1}`], ['unit', q35 ? undefined : cd & 1], ['drive', node], ['id', `vd${n}`], boot]));
        cd++;
        break;
    }
  });
  s.nics.forEach((nic, n) => {
    a.push('-netdev', 'stream,' + opts([['id', `net${n}`], ['server', 'off'], ['addr.type', 'unix'], ['addr.path', i.nicSocket(nic.subnetUuid)]]));
    a.push('-device', 'virtio-net-pci,' + opts([['netdev', `net${n}`], ['mac', nic.mac.toLowerCase()], ['id', `nic${n}`]]));
  });
  if (i.paused) a.push('-S');
  if (i.incoming) a.push('-incoming', 'defer');
  return a;
}
