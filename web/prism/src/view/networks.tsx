/**
 * @module
 * Networks: the cluster's VLAN subnets with their address management (network, gateway, pool,
 * addresses given out); create and delete one.
 */
import { useState, type FormEvent, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { subnetCreateBody, type SubnetDraft, type V3Subnet } from '../model/v3.ts';
import { usePoll } from './hooks.ts';
import { ErrorBanner, PageHead, Panel } from './widgets.tsx';

const EMPTY: SubnetDraft = { name: '', vlanId: '0', cidr: '', gateway: '', poolStart: '', poolEnd: '' };

export function NetworksPage(): ReactElement {
  const subnets = usePoll(() => api.v3List<V3Subnet>('subnets'), 5000);
  const cluster = usePoll(api.cluster, 60_000);
  const [d, setD] = useState(EMPTY);
  const [error, setError] = useState<string>();
  const field = (k: keyof SubnetDraft, label: string, placeholder = ''): ReactElement => (
    <label>{label}<input name={`subnet-${k}`} value={d[k]} placeholder={placeholder} onChange={(e) => setD({ ...d, [k]: e.target.value })} /></label>
  );
  const create = (e: FormEvent): void => {
    e.preventDefault();
    setError(undefined);
    api.v3Create('subnets', subnetCreateBody(d, cluster.data?.cluster.clusterId ?? '')).then(() => {
      setD(EMPTY);
      subnets.refresh();
    }, (err: unknown) => setError(err instanceof Error ? err.message : String(err)));
  };
  const remove = (s: V3Subnet): void => {
    if (!window.confirm(`Delete subnet ${s.spec.name}?`)) return;
    api.v3Delete('subnets', s.metadata.uuid).then(subnets.refresh, (err: unknown) => setError(err instanceof Error ? err.message : String(err)));
  };
  const list = subnets.data?.entities ?? [];
  return (
    <div>
      <PageHead title="Networks" />
      <ErrorBanner error={error ?? subnets.error} />
      <Panel>
        {list.length === 0 ? <div className="empty">{subnets.data ? 'No subnets yet.' : 'Loading…'}</div> : (
          <table className="table" data-testid="subnets">
            <thead><tr><th>Name</th><th>VLAN</th><th>Network</th><th>Gateway</th><th>Pool</th><th>Addresses given</th><th /></tr></thead>
            <tbody>{list.map((s) => {
              const ip = s.spec.resources.ip_config;
              return (
                <tr key={s.metadata.uuid}>
                  <td>{s.spec.name}</td>
                  <td>{s.spec.resources.vlan_id}</td>
                  <td>{ip ? `${ip.subnet_ip}/${ip.prefix_length}` : 'no IPAM'}</td>
                  <td>{ip?.default_gateway_ip ?? '–'}</td>
                  <td>{ip?.pool_list.map((p) => p.range.replace(' ', ' – ')).join(', ') || '–'}</td>
                  <td>{s.status.resources.ip_usage_stats?.num_assigned_ips ?? 0}</td>
                  <td className="right"><button type="button" className="btn small danger" onClick={() => remove(s)}>Delete</button></td>
                </tr>
              );
            })}</tbody>
          </table>
        )}
      </Panel>
      <Panel title="Create a subnet">
        <form className="form grid" onSubmit={create}>
          {field('name', 'Name')}
          {field('vlanId', 'VLAN ID', '0 to 4094')}
          {field('cidr', 'Network (CIDR)', '10.10.0.0/24, empty: no IPAM')}
          {field('gateway', 'Gateway', '10.10.0.1')}
          {field('poolStart', 'Pool start', '10.10.0.10')}
          {field('poolEnd', 'Pool end', '10.10.0.99')}
          <div><button type="submit" className="btn primary">Create</button></div>
        </form>
      </Panel>
    </div>
  );
}
