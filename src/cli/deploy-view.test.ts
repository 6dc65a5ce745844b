import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderStages } from './deploy-view.ts';
import type { ProgressResponse } from '../foundation/protocol/api.ts';

const node = (serial: string, stage: string, pct: number, status = ''): ProgressResponse['nodes'][number] =>
  ({ node_serial: serial, hypervisor_ip: `h-${serial}`, cvm_ip: `c-${serial}`, ipmi_ip: '', stage, status, messages: [], percent_complete: pct, time_elapsed: 0, time_total: 0 });
const session = (nodes: ProgressResponse['nodes'], clusters: ProgressResponse['clusters'] = []): ProgressResponse =>
  ({ session_id: 's1', action: 'image_nodes', imaging_stopped: false, abort_session: false, aggregate_percent_complete: 40, results: [], nodes, clusters });
const cluster = (stage: string, pct: number, status: string): ProgressResponse['clusters'][number] =>
  ({ cluster_name: 'lab', cluster_members: ['c-A', 'c-B'], status, percent_complete: pct, messages: [], time_elapsed: 0, time_total: 0, stage });

test('each node shows which of the four stages it is in, with its step and percent', () => {
  const out = renderStages(session([node('A', 'installing', 55, 'writing the boot disk'), node('B', 'bmc_config', 3, 'setting the BMC address')], [cluster('waiting', 0, 'waiting for its nodes to be imaged')]));
  assert.equal(out, [
    'session s1: 40%',
    '├─ A  host h-A  CVM c-A',
    '│   ✔ 1 Foundation',
    '│   ● 2 Imaging     55% writing the boot disk',
    '│   ○ 3 Bootstrap',
    '│   ○ 4 Activation',
    '├─ B  host h-B  CVM c-B',
    '│   ● 1 Foundation  3% setting the BMC address',
    '│   ○ 2 Imaging',
    '│   ○ 3 Bootstrap',
    '│   ○ 4 Activation',
    '└─ cluster lab (2 nodes)',
    '    ○ 1 Foundation',
    '    ○ 2 Imaging',
    '    ● 3 Bootstrap   0% waiting for its nodes to be imaged',
    '    ○ 4 Activation',
  ].join('\n'));
});

test('imaged nodes follow the cluster into activation; a failed check marks stage 4 failed', () => {
  const validating = renderStages(session([node('A', 'done', 100)], [cluster('validating', 74, 'validating: storage pool')]));
  assert.match(validating, /✔ 3 Bootstrap\n│ {3}● 4 Activation {2}cluster: validating: storage pool/);
  const failed = renderStages(session([node('A', 'done', 100)], [cluster('failed', 82, 'fatal: data-path failed: …')]));
  assert.match(failed, /└─ cluster lab \(2 nodes\)\n {4}✔ 1 Foundation\n {4}✔ 2 Imaging\n {4}✔ 3 Bootstrap\n {4}✖ 4 Activation {2}82% fatal: data-path failed/);
  const nodeFailed = renderStages(session([node('A', 'failed', 40, 'fatal: installer crashed')]));
  assert.match(nodeFailed, /✔ 1 Foundation\n {4}✖ 2 Imaging {5}40% fatal: installer crashed\n {4}○ 3 Bootstrap/);
});
