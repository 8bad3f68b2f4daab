/**
 * `deno task tune`: times the GEMM and attention variants on this adapter, on a model's real
 * shapes, and keeps the winners in the tune cache that serve, the CLIs and `SamModel.load`
 * read at start.
 *
 *   deno task tune [--model NAME|PATH] [--min-ms N] [--dry-run]
 *
 * The shapes are recorded from one encoder pass on a synthetic photo of the model's input
 * size and one multimask click: every GEMM and attention the model dispatches, with its sizes.
 */
import { SamModel, SamPredictor } from "../predictor.ts";
import { recordShapes, saveTuneCache, tuneCachePath } from "../kernels/tuning.ts";
import { defaultVariantFor, tuneKey, type TuneResult } from "../kernels/tuner.ts";
import { weightsDirFrom } from "../weights/registry.ts";
import { GPU_FLAGS, numberFlag, parseFlags, runCli, UsageError, wantsHelp } from "./args.ts";
import { chooseModel, MODEL_HELP } from "./model.ts";

export const USAGE = `Usage: deno task tune [options]

Times each GEMM and attention variant on this adapter at the shapes a model uses, prints a
table (shape, variant, ms, GFLOP/s) and writes the fastest per shape to tune-cache.json in
the weights folder ($WGSAM_WEIGHTS_DIR, else weights/), under this adapter and driver.
serve, the CLIs and SamModel.load read it at start; WGSAM_TUNE=off ignores it.
On a software adapter (llvmpipe) a real model takes minutes.

Options:
  --model NAME|PATH   ${MODEL_HELP}
  --min-ms N          time each variant until its runs add up to N ms (default 200)
  --dry-run           print the table, write nothing
  --precision f32|f16 storage of weights and GEMM activations (f32; or
                      $WGSAM_PRECISION); f16 needs the adapter's shader-f16
  -h, --help          this text
`;

export interface TuneArgs {
  model?: string;
  minMs: number;
  dryRun: boolean;
}

export function parseTuneArgs(argv: readonly string[]): TuneArgs {
  const { values, positionals } = parseFlags(argv, {
    model: { type: "string" },
    "min-ms": { type: "string" },
    "dry-run": { type: "boolean" },
    ...GPU_FLAGS,
  });
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'`);
  }
  return {
    model: values.model,
    minMs: values["min-ms"] === undefined
      ? 200
      : numberFlag("min-ms", values["min-ms"], { min: 1, max: 600_000 }),
    dryRun: values["dry-run"] ?? false,
  };
}

/** A smooth synthetic photo of the model's input size (its content does not change timing). */
function syntheticImage(size: number) {
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) {
    data.set([i % 251, (i >> 3) % 253, (i >> 7) % 255], 3 * i);
  }
  return { width: size, height: size, channels: 3 as const, data };
}

/** Every tunable shape key of one encode, one multimask click and a batch of 16 boxes. */
export async function recordModelShapes(model: SamModel): Promise<string[]> {
  const predictor = new SamPredictor(model);
  const size = model.arch.imgSize;
  try {
    return await recordShapes(model.ctx, async () => {
      await predictor.setImage(syntheticImage(size));
      await predictor.predict({ points: [[size / 2, size / 3]], labels: [1], multimask: true });
      // A batch of boxes, as predictBatch, AMG and detect decode them (other GEMM rows).
      const boxes = Array.from({ length: 16 }, (_, i) => ({
        box: [i, i, size / 2 + i, size / 2 + i] as [number, number, number, number],
        multimask: false,
      }));
      await predictor.predictBatch(boxes);
    });
  } finally {
    predictor.dispose();
  }
}

/** Times every candidate of each key and returns the fastest per key, logging a table. */
export async function tuneKeys(
  model: SamModel,
  keys: readonly string[],
  opts: { minMs: number; log: (line: string) => void },
): Promise<{ winners: Record<string, string>; results: TuneResult[] }> {
  opts.log(`${keys.length} shapes to tune on ${model.adapter}`);
  opts.log(
    `${"shape".padEnd(44)} ${"variant".padEnd(14)} ${"ms".padStart(10)} ${"GFLOP/s".padStart(9)}`,
  );
  const winners: Record<string, string> = {};
  const results: TuneResult[] = [];
  for (const key of keys) {
    const rows = await tuneKey(model.ctx, key, defaultVariantFor(model.ctx, key), {
      minMs: opts.minMs,
      onResult: (r) =>
        opts.log(
          r.agrees
            ? `${r.key.padEnd(44)} ${r.variant.padEnd(14)} ${r.ms.toFixed(3).padStart(10)} ${
              r.gflops.toFixed(2).padStart(9)
            }`
            : `${r.key.padEnd(44)} ${r.variant.padEnd(14)} ${"WRONG".padStart(10)} ` +
              `(differs from the default by ${r.maxDiff}; never picked)`,
        ),
    });
    winners[key] = rows[0].variant;
    opts.log(`${key.padEnd(44)} -> ${rows[0].variant}`);
    results.push(...rows);
  }
  return { winners, results };
}

/** Records the shapes of one encode and one click, then times every candidate of each. */
export async function tuneModel(
  model: SamModel,
  opts: { minMs: number; log: (line: string) => void },
): Promise<{ winners: Record<string, string>; results: TuneResult[] }> {
  return tuneKeys(model, await recordModelShapes(model), opts);
}

if (import.meta.main) {
  await runCli("tune", async () => {
    const argv = Deno.args;
    if (wantsHelp(argv)) {
      console.log(USAGE);
      return 0;
    }
    const args = parseTuneArgs(argv);
    const log = (line: string) => console.log(line);
    const model = await SamModel.load(chooseModel(args.model, log));
    try {
      const { winners } = await tuneModel(model, { minMs: args.minMs, log });
      if (args.dryRun) return 0;
      const dir = weightsDirFrom();
      await Deno.mkdir(dir, { recursive: true });
      const path = tuneCachePath(dir);
      await saveTuneCache(model.ctx, path, winners);
      log(`wrote ${Object.keys(winners).length} winners for ${model.adapter} to ${path}`);
    } finally {
      model.dispose();
    }
  });
}
