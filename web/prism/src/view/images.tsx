/**
 * @module
 * Images: the cluster's disk and ISO images; import one from a URL (the cluster fetches it) or
 * upload a file from this computer with a progress bar; delete one.
 */
import { useRef, useState, type FormEvent, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { ago, bytes } from '../model/format.ts';
import type { V3Image } from '../model/v3.ts';
import { useNow, usePoll } from './hooks.ts';
import { Badge, ErrorBanner, PageHead, Panel, UploadProgress } from './widgets.tsx';

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export function ImagesPage(): ReactElement {
  const now = useNow();
  const images = usePoll(() => api.v3List<V3Image>('images'), 3000);
  const [error, setError] = useState<string>();
  const [url, setUrl] = useState({ name: '', uri: '' });
  const [up, setUp] = useState<{ name: string; sent: number; total: number } | undefined>();
  const file = useRef<HTMLInputElement>(null);
  const [upName, setUpName] = useState('');
  const abort = useRef<AbortController | null>(null);
  const importUrl = (e: FormEvent): void => {
    e.preventDefault();
    setError(undefined);
    api.v3Create('images', { api_version: '3.1.0', metadata: { kind: 'image' }, spec: { name: url.name, resources: { image_type: /\.iso$/i.test(url.uri) ? 'ISO_IMAGE' : 'DISK_IMAGE', source_uri: url.uri } } })
      .then(() => {
        setUrl({ name: '', uri: '' });
        images.refresh();
      }, (err: unknown) => setError(message(err)));
  };
  const upload = (e: FormEvent): void => {
    e.preventDefault();
    const f = file.current?.files?.[0];
    if (!f) return setError('choose a file to upload');
    const name = upName || f.name.replace(/\.[^.]+$/, '');
    setError(undefined);
    abort.current = new AbortController();
    setUp({ name, sent: 0, total: f.size });
    api.uploadImage(name, f, (sent, total) => setUp({ name, sent, total }), abort.current.signal).then(() => {
      setUp(undefined);
      setUpName('');
      if (file.current) file.current.value = '';
      images.refresh();
    }, (err: unknown) => {
      setUp(undefined);
      setError(message(err));
    });
  };
  const remove = (i: V3Image): void => {
    if (!window.confirm(`Delete image ${i.spec.name}?`)) return;
    api.v3Delete('images', i.metadata.uuid).then(images.refresh, (err: unknown) => setError(message(err)));
  };
  const list = images.data?.entities ?? [];
  return (
    <div>
      <PageHead title="Images" />
      <ErrorBanner error={error ?? images.error} />
      <div className="two-col">
        <Panel title="Import from a URL">
          <form className="form" onSubmit={importUrl}>
            <label>Name<input name="image-name" value={url.name} onChange={(e) => setUrl({ ...url, name: e.target.value })} required /></label>
            <label>URL<input name="image-url" type="url" placeholder="https://…/disk.qcow2" value={url.uri} onChange={(e) => setUrl({ ...url, uri: e.target.value })} required /></label>
            <button type="submit" className="btn primary">Import</button>
          </form>
        </Panel>
        <Panel title="Upload a file">
          <form className="form" onSubmit={upload}>
            <label>File<input name="image-file" type="file" ref={file} accept=".img,.raw,.qcow2,.iso,.vmdk" /></label>
            <label>Name<input name="upload-name" placeholder="the file's name" value={upName} onChange={(e) => setUpName(e.target.value)} /></label>
            {up ? <UploadProgress testId="upload-progress" label={up.name} sent={up.sent} total={up.total} onCancel={() => abort.current?.abort()} />
              : <button type="submit" className="btn primary">Upload</button>}
          </form>
        </Panel>
      </div>
      <Panel>
        {list.length === 0 ? <div className="empty">{images.data ? 'No images yet.' : 'Loading…'}</div> : (
          <table className="table" data-testid="images">
            <thead><tr><th>Name</th><th>Type</th><th>State</th><th>Size</th><th>Source</th><th>Added</th><th /></tr></thead>
            <tbody>{list.map((i) => (
              <tr key={i.metadata.uuid} data-image={i.spec.name}>
                <td>{i.spec.name}</td>
                <td>{i.status.resources.image_type === 'ISO_IMAGE' ? 'ISO' : 'disk'}</td>
                <td><Badge state={i.status.state} /></td>
                <td>{i.status.resources.size_bytes ? bytes(i.status.resources.size_bytes) : '–'}</td>
                <td className="ellipsis">{i.status.resources.source_uri ?? 'uploaded'}</td>
                <td>{ago(i.metadata.creation_time, now)}</td>
                <td className="right"><button type="button" className="btn small danger" onClick={() => remove(i)}>Delete</button></td>
              </tr>
            ))}</tbody>
          </table>
        )}
      </Panel>
    </div>
  );
}
