/**
 * @module
 * Storage: the pool's capacity by node and by tier, its containers (RF, vdisks, space), vdisks
 * and physical disks with their health.
 */
import type { ReactElement } from 'react';
import * as api from '../api/client.ts';
import { bytes, percent } from '../model/format.ts';
import { usePoll } from './hooks.ts';
import { Badge, Capacity, ErrorBanner, Link, PageHead, Panel } from './widgets.tsx';

export function StoragePage(): ReactElement {
  const c = usePoll(api.cluster, 5000);
  const s = c.data;
  const u = s?.pool?.usage;
  const disks = (s?.members ?? []).flatMap((m) => (m.cvm?.disks ?? []).map((d) => ({ ...d, node: m.host?.hostname ?? m.serial })));
  const tiers = new Map<string, { capacity: number; used: number; disks: number }>();
  for (const d of disks) {
    const t = tiers.get(d.mediaType) ?? { capacity: 0, used: 0, disks: 0 };
    tiers.set(d.mediaType, { capacity: t.capacity + d.capacityBytes, used: t.used + d.usedBytes, disks: t.disks + 1 });
  }
  return (
    <div>
      <PageHead title="Storage" />
      <ErrorBanner error={c.error} />
      <div className="two-col">
        <Panel title="Capacity by node">
          <table className="table compact" data-testid="capacity-nodes">
            <thead><tr><th>Node</th><th>Used</th><th className="w-bar" /><th>Disks</th></tr></thead>
            <tbody>{(u?.nodes ?? []).map((n) => (
              <tr key={n.node}><td>{s?.members.find((m) => m.serial === n.node)?.host?.hostname ?? n.node}</td><td>{bytes(n.usedBytes)} of {bytes(n.capacityBytes)}</td><td><Capacity used={n.usedBytes} total={n.capacityBytes} /></td><td>{n.disks}{n.failedDisks ? <Badge state="FAILED" label={`${n.failedDisks} failed`} /> : null}</td></tr>
            ))}</tbody>
          </table>
        </Panel>
        <Panel title="Capacity by tier">
          <table className="table compact">
            <thead><tr><th>Tier</th><th>Used</th><th className="w-bar" /><th>Disks</th></tr></thead>
            <tbody>{[...tiers].map(([t, x]) => (
              <tr key={t}><td>{t}</td><td>{bytes(x.used)} of {bytes(x.capacity)} ({percent(x.used, x.capacity)})</td><td><Capacity used={x.used} total={x.capacity} /></td><td>{x.disks}</td></tr>
            ))}</tbody>
          </table>
        </Panel>
      </div>
      <Panel title="Containers">
        <table className="table" data-testid="containers">
          <thead><tr><th>Name</th><th>Replication</th><th>vdisks</th><th>Provisioned</th><th>Written (logical)</th><th>Physical</th></tr></thead>
          <tbody>{(u?.containers ?? []).map((x) => (
            <tr key={x.name}><td>{x.name}</td><td>RF{x.replicationFactor}</td><td>{x.vdisks}</td><td>{bytes(x.provisionedBytes)}</td><td>{bytes(x.logicalBytes)}</td><td>{bytes(x.physicalBytes)}</td></tr>
          ))}</tbody>
        </table>
      </Panel>
      <Panel title="vdisks">
        <table className="table compact" data-testid="vdisks">
          <thead><tr><th>Name</th><th>Container</th><th>Size</th><th /></tr></thead>
          <tbody>{(s?.vdisks ?? []).map((v) => (
            <tr key={v.uuid}><td>{v.name}</td><td>{v.container}</td><td>{bytes(v.sizeBytes)}</td><td><Link to={`/console/performance?entity=vdisk:${v.uuid}`}>I/O</Link></td></tr>
          ))}</tbody>
        </table>
      </Panel>
      <Panel title="Disks">
        <table className="table compact" data-testid="disks">
          <thead><tr><th>Serial</th><th>Node</th><th>Tier</th><th>Used</th><th>State</th></tr></thead>
          <tbody>{disks.map((d) => (
            <tr key={d.serial} data-disk={d.serial}><td><code>{d.serial}</code></td><td>{d.node}</td><td>{d.mediaType}</td><td>{bytes(d.usedBytes)} of {bytes(d.capacityBytes)}</td><td>{d.ok ? <Badge state="OK" /> : <Badge state="FAILED" />}</td></tr>
          ))}</tbody>
        </table>
      </Panel>
    </div>
  );
}
