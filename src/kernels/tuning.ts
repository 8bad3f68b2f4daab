/**
 * Which shader variant runs an op at a given shape on this adapter.
 *
 * GEMM and attention come in a few named variants (tiled in workgroup memory for GPUs,
 * register-blocked for CPU adapters). Each dispatch asks `variantFor(ctx, key, fallback)`:
 * the winner that `deno task tune` measured for this adapter, driver and shape when the tune
 * cache has one, else the per-adapter default. `WGSAM_TUNE=off` ignores the cache, so a test
 * or a bench can compare the two.
 *
 * The cache is one JSON file (`tune-cache.json` in the weights folder), holding one table per
 * adapter + driver: `{ "<adapter key>": { "<op>|<shape>": "<variant>" } }`.
 */
import type { GpuContext } from "../gpu/context.ts";

/** The tables in force, per context (one process can hold several in tests). */
const tables = new WeakMap<GpuContext, Map<string, string>>();

/** Adapter + driver, the key of a tune table: results of one never apply to another. */
export function adapterKey(ctx: GpuContext): string {
  const info = ctx.gpu.info;
  const parts = [ctx.gpu.description, info.vendor, info.architecture, info.device]
    .filter((s) => typeof s === "string" && s.length > 0);
  return parts.join(" | ");
}

function tuningDisabled(): boolean {
  if (typeof Deno === "undefined") return false; // the page's bundle (src/web/decoder/): no env
  try {
    return Deno.env.get("WGSAM_TUNE")?.toLowerCase() === "off";
  } catch {
    return false; // no env permission: the cache applies as read
  }
}

/** Keys asked for while a recording runs (`recordShapes`), per context. */
const recordings = new WeakMap<GpuContext, Set<string>>();

/** How many dispatches took a variant from the table, per context (for tests and logs). */
const hits = new WeakMap<GpuContext, number>();

/** Tuned names already reported as unknown (one warning each). */
const reported = new Set<string>();

/**
 * The tuned variant for `key` ("gemm|nk|1x4096x768x768"), or `fallback`. A tuned name that
 * `known` refuses (a hand edit, or a cache from a release with other variants) falls back
 * to the default with one warning, so a stale cache never breaks inference.
 */
export function variantFor(
  ctx: GpuContext,
  key: string,
  fallback: string,
  known: (name: string) => boolean,
): string {
  recordings.get(ctx)?.add(key);
  if (tuningDisabled()) return fallback;
  const tuned = tables.get(ctx)?.get(key);
  if (tuned === undefined) return fallback;
  if (!known(tuned)) {
    if (!reported.has(`${key}=${tuned}`)) {
      reported.add(`${key}=${tuned}`);
      console.error(
        `wgsam: tune cache names an unknown variant "${tuned}" for ${key}; using ` +
          `"${fallback}" (run \`deno task tune\` again)`,
      );
    }
    return fallback;
  }
  hits.set(ctx, (hits.get(ctx) ?? 0) + 1);
  return tuned;
}

/** Dispatches so far that ran a tuned variant instead of the default. */
export function tunedDispatches(ctx: GpuContext): number {
  return hits.get(ctx) ?? 0;
}

/** Runs `work` and returns every tunable shape key it dispatched, in first-use order. */
export async function recordShapes(
  ctx: GpuContext,
  work: () => Promise<void>,
): Promise<string[]> {
  const keys = new Set<string>();
  recordings.set(ctx, keys);
  try {
    await work();
  } finally {
    recordings.delete(ctx);
  }
  return [...keys];
}

/** Installs a table of winners for this context (replacing any earlier one). */
export function setTuneTable(ctx: GpuContext, entries: Record<string, string>): void {
  tables.set(ctx, new Map(Object.entries(entries)));
}

/** The table in force, as a plain object (empty without one). */
export function tuneTable(ctx: GpuContext): Record<string, string> {
  return Object.fromEntries(tables.get(ctx) ?? []);
}

/** Path of the tune cache in a weights folder. */
export function tuneCachePath(weightsDir: string): string {
  return `${weightsDir.replace(/\/+$/, "")}/tune-cache.json`;
}

type CacheFile = Record<string, Record<string, string>>;

function parseCache(text: string): CacheFile {
  const data = JSON.parse(text);
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new Error("not a JSON object");
  }
  const out: CacheFile = {};
  for (const [adapter, table] of Object.entries(data)) {
    if (typeof table !== "object" || table === null || Array.isArray(table)) continue;
    const entries: Record<string, string> = {};
    for (const [k, v] of Object.entries(table as Record<string, unknown>)) {
      if (typeof v === "string") entries[k] = v;
    }
    out[adapter] = entries;
  }
  return out;
}

/**
 * Reads this adapter's table from the cache file, if any, and installs it. Returns the number
 * of entries installed (0 without a file, without a table for this adapter, or with
 * WGSAM_TUNE=off). A corrupt file is reported and ignored: defaults still run correctly.
 */
export async function loadTuneCache(ctx: GpuContext, path: string): Promise<number> {
  if (tuningDisabled()) return 0;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotCapable) return 0;
    throw err;
  }
  let cache: CacheFile;
  try {
    cache = parseCache(text);
  } catch (err) {
    console.error(`wgsam: ignoring tune cache ${path}: ${(err as Error).message}`);
    return 0;
  }
  const table = cache[adapterKey(ctx)];
  if (!table) return 0;
  setTuneTable(ctx, table);
  return Object.keys(table).length;
}

/** Merges `entries` into this adapter's table in the cache file (other adapters kept). */
export async function saveTuneCache(
  ctx: GpuContext,
  path: string,
  entries: Record<string, string>,
): Promise<void> {
  let cache: CacheFile = {};
  try {
    cache = parseCache(await Deno.readTextFile(path));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound) && !(err instanceof SyntaxError)) throw err;
  }
  const key = adapterKey(ctx);
  cache[key] = { ...(cache[key] ?? {}), ...entries };
  const tmp = `${path}.partial`;
  await Deno.writeTextFile(tmp, JSON.stringify(cache, null, 2) + "\n");
  await Deno.rename(tmp, path);
}
