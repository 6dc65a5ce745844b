#!/usr/bin/env node
// Entry of the `converge` command: loads the TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
