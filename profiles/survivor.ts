// The merge following every profile script shares (survivor.lua): a script that names a
// profile by an id it got earlier (a change, a link, a device) puts it in front of its own
// source and calls `survivor(tag, pid)`. Loaders use this, so only this file knows where
// survivor.lua is; apply-event.lua (the hot path) keeps its own loop.
import { readFileSync } from 'node:fs';

/** survivor.lua's source: `local function survivor(tag, pid)`, at most 64 hops. */
export const SURVIVOR_LUA = readFileSync(new URL('./survivor.lua', import.meta.url), 'utf8');

/** The script with survivor.lua in front of it, so it can call `survivor(tag, pid)`. */
export function withSurvivor(lua: string): string {
  return SURVIVOR_LUA + lua;
}
