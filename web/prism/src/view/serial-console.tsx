/**
 * @module
 * A VM's serial console in the page (xterm.js over Prism's websocket): what the guest printed
 * (the last 64 KiB first), live; what is typed goes to the guest. The socket is opened again
 * after a drop, every few seconds.
 */
import { useEffect, useRef, useState, type ReactElement } from 'react';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';

export function SerialConsole({ uuid }: { uuid: string }): ReactElement {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState('connecting');
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const term = new Terminal({ convertEol: true, fontSize: 13, scrollback: 5000, theme: { background: '#0b1220' } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    let ws: WebSocket | undefined;
    let stop = false;
    let retry: number | undefined;
    // the text as it arrived, for tests and for copying (the terminal itself draws on a canvas)
    el.dataset['text'] = '';
    const connect = (): void => {
      const s = new WebSocket(`${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/api/converge/v1/vms/${encodeURIComponent(uuid)}/console/stream`);
      ws = s;
      s.onopen = () => setState('connected');
      s.onmessage = (e: MessageEvent<string>) => {
        term.write(e.data);
        el.dataset['text'] = ((el.dataset['text'] ?? '') + e.data).slice(-65_536);
      };
      s.onclose = (e) => {
        if (stop) return;
        setState(e.code === 4404 ? 'no such VM' : 'disconnected; trying again');
        if (e.code !== 4404) retry = window.setTimeout(connect, 3000);
      };
    };
    connect();
    const typed = term.onData((d) => {
      if (ws?.readyState === WebSocket.OPEN) ws.send(d);
    });
    const resize = (): void => fit.fit();
    window.addEventListener('resize', resize);
    return () => {
      stop = true;
      window.clearTimeout(retry);
      window.removeEventListener('resize', resize);
      typed.dispose();
      ws?.close();
      term.dispose();
    };
  }, [uuid]);
  return (
    <div>
      <div className="muted small">{state}</div>
      <div className="serial" ref={box} data-testid="serial" />
    </div>
  );
}
