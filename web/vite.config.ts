/**
 * @module
 * Builds Foundation's web UI (web/ → web/dist, served by Foundation at `/`; ADR 011). `npm run
 * dev:web` serves it with hot reload and sends /foundation/ to a Foundation on 127.0.0.1:8000.
 */
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: { proxy: { '/foundation': 'http://127.0.0.1:8000' } },
  logLevel: 'warn',
});
