/**
 * @module
 * The login page: user name and password for a session (the cookie Prism sets); a wrong password
 * says so, and too many say how long to wait.
 */
import { useState, type FormEvent, type ReactElement } from 'react';
import * as api from '../api/client.ts';

export function LoginPage({ onLogin }: { onLogin: (user: string) => void }): ReactElement {
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent): void => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    api.login(username, password).then((s) => onLogin(s.username), (err: unknown) => {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    });
  };
  return (
    <div className="login">
      <form className="login-box" onSubmit={submit}>
        <div className="login-brand"><span className="logo" aria-hidden>▦</span> Prism</div>
        <p className="muted">Converge cluster management</p>
        <label>User name<input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required /></label>
        <label>Password<input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required autoFocus /></label>
        {error ? <div className="banner error" role="alert">{error}</div> : null}
        <button type="submit" className="btn primary" disabled={busy}>{busy ? 'Logging in…' : 'Log in'}</button>
      </form>
    </div>
  );
}
