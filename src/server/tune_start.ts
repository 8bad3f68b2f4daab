/**
 * `serve --tune`: tunes the kernels at first start. The model is loaded once on this thread,
 * the shapes of one encode and one click are recorded, and the shapes that this adapter's
 * table in the tune cache does not hold yet are timed (`deno task tune`'s code) and written
 * back; then the server loads its engine as usual, which reads the cache. A second start
 * finds every shape in the cache and only records them (one encode).
 */
import { SamModel } from "../predictor.ts";
import { saveTuneCache, tuneCachePath, tuneTable } from "../kernels/tuning.ts";
import { recordModelShapes, tuneKeys } from "../cli/tune.ts";
import { weightsDirFrom } from "../weights/registry.ts";
import type { Precision } from "../precision.ts";

export interface TuneAtStart {
  /** Shapes the model dispatches. */
  shapes: number;
  /** Shapes timed now (0: the cache had them all). */
  tuned: number;
  /** The cache file. */
  path: string;
}

/** Tunes `model`'s shapes missing from the cache; null with WGSAM_TUNE=off (nothing done). */
export async function tuneAtStart(
  model: string,
  opts: { minMs: number; precision?: Precision; log: (line: string) => void },
): Promise<TuneAtStart | null> {
  if (Deno.env.get("WGSAM_TUNE")?.toLowerCase() === "off") {
    opts.log("tune: WGSAM_TUNE=off, --tune ignored (default kernels)");
    return null;
  }
  const dir = weightsDirFrom();
  const path = tuneCachePath(dir);
  // The served precision: f16 GEMMs and attentions have their own keys ("|f16awo").
  const m = await SamModel.load(model, { quiet: true, precision: opts.precision }); // reads this adapter's table
  try {
    const keys = await recordModelShapes(m);
    const have = tuneTable(m.ctx);
    const missing = keys.filter((k) => !(k in have));
    if (missing.length === 0) {
      opts.log(`tune: ${path} has all ${keys.length} shapes of ${m.name} on ${m.adapter}`);
      return { shapes: keys.length, tuned: 0, path };
    }
    opts.log(
      `tune: ${missing.length} of ${keys.length} shapes of ${m.name} are not in ${path}; ` +
        `timing them on ${m.adapter} (first start)`,
    );
    const t0 = performance.now();
    const { winners } = await tuneKeys(m, missing, opts);
    await Deno.mkdir(dir, { recursive: true });
    await saveTuneCache(m.ctx, path, winners);
    opts.log(
      `tune: tuned ${missing.length} shapes in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s; wrote ${path}`,
    );
    return { shapes: keys.length, tuned: missing.length, path };
  } finally {
    m.dispose();
  }
}
