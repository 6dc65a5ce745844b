/**
 * @module
 * Builds Prism's browser console (web/prism/ → web/prism/dist; served by every Prism at /console/,
 * shipped in the release bundle beside prism.mjs; ADR 017). `npm run dev:prism-ui` serves it with
 * hot reload and sends the API to a Prism at https://127.0.0.1:9440 (`npm run dev:prism` starts one
 * over fakes).
 */
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));
const prism = { target: 'https://127.0.0.1:9440', secure: false, ws: true };

export default defineConfig({
  root,
  base: '/console/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: { proxy: { '/api': prism, '/favicon.ico': prism } },
  logLevel: 'warn',
});
