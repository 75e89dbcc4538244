#!/usr/bin/env -S node --max-semi-space-size=64
// --max-semi-space-size=64 (MB per semi-space of V8's young generation; default 16): a
// consumer batch's short-lived objects die young instead of being promoted and collected
// again by the old-generation GC. Measured +33% processor events/s per core (13.5k -> 18.0k,
// 3 runs each, back to back). Also set in `npm start`, `npm run bench` and infra/Dockerfile.
// Runs the TypeScript sources directly through tsx's loader: no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
