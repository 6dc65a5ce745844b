/**
 * @module
 * The web UI's entry point: mounts the app (view/app.tsx) in index.html's #root.
 */
import { createRoot } from 'react-dom/client';
import { App } from './view/app.tsx';
import './view/styles.css';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(<App />);
