/**
 * The Redis connection shared by the server's embedding store and the batch jobs: ioredis,
 * set up so that an unreachable Redis makes commands fail at once (no offline queue, a short
 * command timeout) instead of stalling the GPU queue, with reconnects in the background and
 * one log line per change of state rather than one per retry.
 */
// A versioned npm: specifier, so src/ runs without our deno.json (tests/api/mod_import_test.ts).
// deno-lint-ignore no-import-prefix
import { Redis } from "npm:ioredis@6.0.0";

export type { Redis };

export interface RedisOptions {
  /** Where state changes go (default console.error). */
  log?: (line: string) => void;
  /** Longest wait for one command before it fails (default 2000 ms). */
  commandTimeoutMs?: number;
  /** Longest pause between reconnect attempts (default 2000 ms). */
  maxReconnectMs?: number;
  /** What happens meanwhile, said in the log line of an outage. */
  whenDown?: string;
}

/** Shows a redis:// URL without its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

/** Checks a --redis value: a redis:// or rediss:// URL; throws with the reason. */
export function checkRedisUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--redis must be a URL such as redis://127.0.0.1:6379, got "${url}"`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    throw new Error(`--redis must be a redis:// or rediss:// URL, got "${url}"`);
  }
}

/**
 * Opens a client that connects in the background. `ready` resolves true once connected, or
 * false when the first attempt fails (then it keeps retrying; commands fail until it is back).
 */
export function openRedis(
  url: string,
  opts: RedisOptions = {},
): { redis: Redis; ready: Promise<boolean> } {
  checkRedisUrl(url);
  const log = opts.log ?? ((line: string) => console.error(line));
  const shown = redactUrl(url);
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 2000,
    connectTimeout: opts.commandTimeoutMs ?? 2000,
    retryStrategy: (times: number) => Math.min(times * 200, opts.maxReconnectMs ?? 2000),
  });
  let up: boolean | null = null;
  redis.on("ready", () => {
    if (up !== true) log(`redis: connected to ${shown}`);
    up = true;
  });
  redis.on("error", (e: Error) => {
    if (up !== false) {
      log(
        `ERROR redis: ${shown} is unavailable (${e.message || e.name}); ` +
          `${opts.whenDown ?? "retrying in the background"}`,
      );
    }
    up = false;
  });
  const ready = redis.connect().then(() => true, () => false);
  return { redis, ready };
}

/** True while the client can send commands. */
export function redisUp(redis: Redis): boolean {
  return redis.status === "ready";
}
