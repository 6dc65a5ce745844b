/**
 * @module
 * Prism's console entry point: mounts the app (view/app.tsx) in index.html's #root.
 */
import { createRoot } from 'react-dom/client';
import { App } from './view/app.tsx';
import '@xterm/xterm/css/xterm.css';
import 'uplot/dist/uPlot.min.css';
import './view/styles.css';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(<App />);
