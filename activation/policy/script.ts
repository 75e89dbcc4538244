// A Lua script defined once per Redis client (EVALSHA with ioredis' NOSCRIPT fallback).
import type { Redis } from '../../runtime/redis.ts';

type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;

export function redisScript(redis: Redis, name: string, numberOfKeys: number, lua: string): ScriptFn {
  const r = redis as unknown as Record<string, ScriptFn | undefined>;
  if (typeof r[name] !== 'function') redis.defineCommand(name, { numberOfKeys, lua });
  const fn = r[name] as ScriptFn;
  return (...args) => fn.apply(redis, args);
}
