/**
 * @module
 * I/O charts of an entity (the cluster, a host, a VM or a vdisk) drawn by uPlot from Prism's
 * performance series, refreshed every 5 s: IOPS, throughput and latency, reads and writes.
 */
import { useEffect, useRef, type ReactElement } from 'react';
import uPlot from 'uplot';
import * as api from '../api/client.ts';
import type { IoSample } from '../../../../src/cvm/protocol/stats.ts';
import { chartColumns, peak, type ChartColumns } from '../model/series.ts';
import { latency, rate } from '../model/format.ts';
import { useNow, usePoll } from './hooks.ts';
import { ErrorBanner } from './widgets.tsx';

const READ = '#2563eb';
const WRITE = '#d97706';

function Chart({ title, x, read, write, fmt, height, testId }: { title: string; x: number[]; read: (number | null)[]; write: (number | null)[]; fmt: (v: number) => string; height: number; testId: string }): ReactElement {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const opts: uPlot.Options = {
      width: Math.max(240, el.clientWidth), height,
      series: [
        {},
        { label: 'read', stroke: READ, width: 1.5, value: (_u, v) => (v === null ? '–' : fmt(v)) },
        { label: 'write', stroke: WRITE, width: 1.5, value: (_u, v) => (v === null ? '–' : fmt(v)) },
      ],
      axes: [{}, { size: 70, values: (_u, vs) => vs.map((v) => fmt(v)) }],
      scales: { y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      legend: { show: true },
    };
    plot.current = new uPlot(opts, [[], [], []], el);
    const resize = (): void => plot.current?.setSize({ width: Math.max(240, el.clientWidth), height });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, [fmt, height]);
  useEffect(() => {
    plot.current?.setData([x, read, write] as uPlot.AlignedData);
  }, [x, read, write]);
  return (
    <div className="chart" data-testid={testId} data-peak-read={peak(read)} data-peak-write={peak(write)}>
      <div className="chart-title">{title}</div>
      <div ref={box} />
    </div>
  );
}

const iops = (v: number): string => `${v >= 100 ? Math.round(v) : v.toFixed(1)}`;

export function IoCharts({ entity, minutes, compact }: { entity: string; minutes: number; compact?: boolean }): ReactElement {
  const s = usePoll(() => api.stats<{ stepMs: number; points: IoSample[] }>(entity, minutes), 5000, [entity, minutes]);
  const now = useNow();
  const c: ChartColumns = chartColumns(s.data?.points ?? [], s.data?.stepMs ?? 5000, now, minutes);
  const h = compact ? 140 : 200;
  return (
    <div>
      <ErrorBanner error={s.error} />
      <div className={compact ? 'charts compact' : 'charts'}>
        <Chart title="IOPS" x={c.t} read={c.readIops} write={c.writeIops} fmt={iops} height={h} testId="chart-iops" />
        <Chart title="Throughput" x={c.t} read={c.readBps} write={c.writeBps} fmt={rate} height={h} testId="chart-throughput" />
        <Chart title="Latency" x={c.t} read={c.readLatUs} write={c.writeLatUs} fmt={latency} height={h} testId="chart-latency" />
      </div>
    </div>
  );
}
