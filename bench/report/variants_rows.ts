/**
 * The variants section (#15): per model, the encoder pass and one click with the default kernels
 * against the tuned ones (the tune cache's table for this adapter, or one tuned in this run with
 * --tune), in f32 and in f16 (`SamModel.load(src, { precision: "f16" })`), with GFLOP/s, beside
 * onnxruntime-web wasm on the model's own encoder graph where the fixtures have one.
 *
 * "Default" is an empty tune table: what WGSAM_TUNE=off gives. The table is per GPU context and
 * read at each dispatch, so one loaded model runs both. A model or precision that cannot load
 * (SAM 2.1 in f16, an adapter without shader-f16) is "not measured" with the loader's reason.
 */
import { destroyFeatures } from "../../src/family.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { setTuneTable, tunedDispatches, tuneTable } from "../../src/kernels/tuning.ts";
import { SamModel, SamPredictor } from "../../src/predictor.ts";
import type { Precision } from "../../src/precision.ts";
import type { Sam2Arch } from "../../src/sam2/arch.ts";
import type { RgbImage } from "../../src/types.ts";
import type { SamArch } from "../../src/weights/types.ts";
import { flopsSam2Encoder } from "../encoder/sam2_flops.ts";
import type { PeerGraph } from "../peer/ort_peer.ts";
import { fixturePath, ORIG_HW } from "./cases.ts";
import { log } from "./env.ts";
import { flopsDecoder, flopsEncoder, flopsSam2Decoder } from "./flops.ts";
import { formatGflops, formatMs } from "./format.ts";
import { firstLine, gflops, type Measure, notMeasured } from "./measure.ts";
import { timeOurs } from "./ours.ts";
import type { RunContext } from "./run_context.ts";

export type Kernels = "default" | "tuned";
export type VariantKey = `${Precision} ${Kernels}`;
export const VARIANT_KEYS: readonly VariantKey[] = [
  "f32 default",
  "f32 tuned",
  "f16 default",
  "f16 tuned",
];

/** One model and stage: a cell per variant, and the peer's wasm time where it ran. */
export interface VariantRow {
  model: string;
  stage: "encoder" | "click";
  /** FLOPs of one timed iteration, or null where not counted (see the notes). */
  flops: number | null;
  cells: Record<VariantKey, Measure>;
  peerWasm: Measure;
}

/** The fixtures' checkpoints that have a name here (not in the registry). */
const FIXTURE_MODELS: Record<string, string> = {
  "sam-mini": "sam-mini/sam-mini.pth",
  "mobilesam": "mobilesam/mobilesam.pth",
  "slimsam": "slimsam/slimsam.pth",
};

/** A checkpoint path or registry name for `name`, and the peer's encoder graph beside it. */
function resolve(name: string): { source: string; graph: string | null; pth: string | null } {
  const rel = FIXTURE_MODELS[name];
  const fixture = rel ? fixturePath(rel) : null;
  const source = fixture ??
    (name === "sam-tiny"
      ? new URL("../../tests/fixtures/sam-tiny/sam-tiny.pth", import.meta.url).pathname
      : name);
  const dir = source.includes("/") ? source.slice(0, source.lastIndexOf("/") + 1) : null;
  let graph: string | null = null;
  if (dir) {
    try {
      if (Deno.statSync(dir + "encoder.onnx").isFile) graph = dir + "encoder.onnx";
    } catch {
      // no graph beside it
    }
  }
  return { source, graph, pth: /\.(pth|pt)$/.test(source) ? source : null };
}

/** A smooth synthetic photo of `ORIG_HW` (content does not change timing). */
function syntheticPhoto(): RgbImage {
  const [h, w] = ORIG_HW;
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set([i % 251, (i >> 3) % 253, (i >> 7) % 255], 3 * i);
  return { width: w, height: h, channels: 3, data };
}

/** FLOPs of the encoder pass and of one single-point click (multimask), or null. */
export function variantFlops(
  family: string,
  arch: SamArch | Sam2Arch,
): { encoder: number | null; click: number | null } {
  if (family === "sam2") {
    const a = arch as Sam2Arch;
    return {
      encoder: flopsSam2Encoder(a),
      click: flopsSam2Decoder(a, { prompts: 1, sparseTokens: 2 }),
    };
  }
  const a = arch as SamArch;
  // MobileSAM's encoder is TinyViT: its count needs the TinyViT shapes the loader keeps inside.
  return {
    encoder: family === "mobile_sam" ? null : flopsEncoder(a),
    click: flopsDecoder(a, { prompts: 1, sparseTokens: 2 }),
  };
}

/**
 * The tune table to compare against: the cache's (installed by SamModel.load), else one tuned
 * now with --tune, else a reason.
 */
async function tunedTable(
  model: SamModel,
  tune: boolean,
  minMs: number,
): Promise<Record<string, string> | string> {
  const cached = tuneTable(model.ctx);
  if (Object.keys(cached).length) return cached;
  if (!tune) {
    return "no tune table for this adapter in the tune cache (run `deno task tune --model " +
      `${model.name}\`, or pass --tune)`;
  }
  const { tuneModel } = await import("../../src/cli/tune.ts");
  log(`tuning ${model.name} (min ${minMs} ms a variant)`);
  // Progress: the shape count, then each shape's winner (not every candidate's time).
  const progress = (line: string) => {
    if (/shapes to tune| -> /.test(line)) log(`  tune: ${line.replace(/\s+/g, " ")}`);
  };
  const { winners } = await tuneModel(model, { minMs, log: progress });
  return winners;
}

/** Ours: the encoder pass (every feature read back) and a click, for one variant. */
async function measureVariant(
  ctx: GpuContext,
  model: SamModel,
  predictor: SamPredictor,
  photo: RgbImage,
  warmup: number,
  runs: number,
): Promise<{ encoder: Measure; click: Measure }> {
  const encoder = await timeOurs(
    ctx,
    async () => {
      const f = model.encoder.encode(photo);
      for (const t of f.tensors) await ctx.read(t.tensor.buffer);
      destroyFeatures(f);
    },
    warmup,
    runs,
  );
  await predictor.setImage(photo); // the click's embedding (cached across variants' clicks)
  const [h, w] = ORIG_HW;
  const click = await timeOurs(
    ctx,
    async () => {
      await predictor.predict({ points: [[0.45 * w, 0.55 * h]], labels: [1], multimask: true });
    },
    warmup,
    runs,
  );
  return { encoder, click };
}

/** The section's rows for `models`; the peer runs each model's own encoder graph (wasm). */
export async function variantRows(
  rc: RunContext,
  models: readonly string[],
  tune: { enabled: boolean; minMs: number },
): Promise<VariantRow[]> {
  const { opts, software } = rc;
  const out: VariantRow[] = [];
  const photo = syntheticPhoto();
  for (const name of models) {
    const { source, graph, pth } = resolve(name);
    const cells = {
      encoder: {} as Record<VariantKey, Measure>,
      click: {} as Record<VariantKey, Measure>,
    };
    let flops: { encoder: number | null; click: number | null } = { encoder: null, click: null };
    let imgSize = 1024;
    for (const precision of ["f32", "f16"] as const) {
      let model: SamModel;
      try {
        log(`ours: variants of ${name}, ${precision}`);
        model = await SamModel.load(source, { quiet: true, precision });
      } catch (e) {
        for (const k of ["default", "tuned"] as const) {
          const m = notMeasured(`ours: ${precision}: ${firstLine(e)}`);
          cells.encoder[`${precision} ${k}`] = cells.click[`${precision} ${k}`] = m;
        }
        continue;
      }
      const predictor = new SamPredictor(model);
      const ctx = model.ctx;
      const loaded = tuneTable(ctx); // restored after: other sections use what the cache gave
      try {
        flops = variantFlops(model.family, model.arch);
        imgSize = model.imgSize;
        // Per precision: f16 dispatches other GEMM variants, under keys of their own.
        const table = await tunedTable(model, tune.enabled, tune.minMs);
        for (const kernels of ["default", "tuned"] as const) {
          const key: VariantKey = `${precision} ${kernels}`;
          if (kernels === "tuned" && typeof table === "string") {
            cells.encoder[key] = cells.click[key] = notMeasured(`ours: ${table}`);
            continue;
          }
          setTuneTable(ctx, kernels === "default" ? {} : table as Record<string, string>);
          const before = tunedDispatches(ctx);
          log(`ours: ${name} ${key}`);
          try {
            const m = await measureVariant(
              ctx,
              model,
              predictor,
              photo,
              opts.warmup,
              opts.encoderRuns,
            );
            const tuned = tunedDispatches(ctx) - before;
            for (const stage of ["encoder", "click"] as const) {
              const c = m[stage];
              if (c.status === "ok") c.detail = { ...c.detail, tunedDispatches: tuned };
              cells[stage][key] = c;
            }
          } catch (e) {
            cells.encoder[key] = cells.click[key] = notMeasured(`ours: failed: ${firstLine(e)}`);
          }
        }
      } finally {
        setTuneTable(ctx, loaded);
        predictor.dispose();
        model.dispose();
      }
    }
    // The peer: the model's own encoder graph, wasm (its WebGPU EP is in the main table).
    let peer: Measure = rc.peer.noPeer;
    if (opts.peer) {
      if (!graph) peer = notMeasured(`peer: no encoder.onnx beside ${source}`);
      else {
        const g: PeerGraph = {
          id: `variants_${name}`,
          kind: "encoder",
          path: graph,
          imageSize: imgSize,
          ...(pth ? { externalData: [{ location: pth.split("/").pop()!, path: pth }] } : {}),
        };
        const id = `variants_${name}_encoder`;
        await rc.peer.run("wasm", g, [{ name: id, warmup: opts.warmup, runs: opts.encoderRuns }]);
        peer = rc.peer.of("wasm", id);
      }
    }
    const clickPeer = notMeasured(
      "peer: see the main table's decoder rows (--only decoder): the official export at the " +
        "real decoder sizes",
    );
    out.push(
      { model: name, stage: "encoder", flops: flops.encoder, cells: cells.encoder, peerWasm: peer },
      { model: name, stage: "click", flops: flops.click, cells: cells.click, peerWasm: clickPeer },
    );
    if (software) log(`variants of ${name} done`);
  }
  return out;
}

/**
 * The section as markdown: per model and stage, each variant's ms (GFLOP/s), the tuned and f16
 * speed-ups over f32 default, the peer's wasm ms; "n/m [k]" cells with their notes after.
 */
export function formatVariants(rows: readonly VariantRow[], adapter: string): string {
  const notes: string[] = [];
  const cell = (m: Measure, flops: number | null): string => {
    if (m.status !== "ok") {
      let k = notes.indexOf(m.reason);
      if (k < 0) k = notes.push(m.reason) - 1;
      return `n/m [${k + 1}]`;
    }
    const g = formatGflops(gflops(flops, m.ms));
    return `${formatMs(m.ms)}${g ? ` (${g} GFLOP/s)` : ""}`;
  };
  const speedup = (a: Measure, b: Measure): string =>
    a.status === "ok" && b.status === "ok" && b.ms > 0 ? `${(a.ms / b.ms).toFixed(2)}x` : "–";
  const lines = [
    `### Kernel variants and precision on ${adapter}`,
    "",
    "ms (GFLOP/s) of one encoder pass (every feature read back) and of one click (one point, " +
    "3 masks at 1200x1800, on a kept embedding). default: no tune table (as WGSAM_TUNE=off); " +
    "tuned: this adapter's tune table. Speed-ups are over f32 default (> 1: faster).",
    "",
    `| model | stage | GFLOP | ${
      VARIANT_KEYS.join(" | ")
    } | tuned speed-up (f32) | f16 speed-up (default) | peer wasm ms | f32 default vs wasm |`,
    `|---|---|---:|${VARIANT_KEYS.map(() => "---:").join("|")}|---:|---:|---:|---:|`,
  ];
  for (const r of rows) {
    const base = r.cells["f32 default"];
    const vsWasm = r.peerWasm.status === "ok" && base.status === "ok" && base.ms > 0
      ? `${(r.peerWasm.ms / base.ms).toFixed(2)}x`
      : "–";
    lines.push(
      `| ${r.model} | ${r.stage} | ${r.flops === null ? "–" : formatGflop(r.flops)} | ${
        VARIANT_KEYS.map((k) => cell(r.cells[k], r.flops)).join(" | ")
      } | ${speedup(base, r.cells["f32 tuned"])} | ${speedup(base, r.cells["f16 default"])} | ${
        cell(r.peerWasm, r.flops)
      } | ${vsWasm} |`,
    );
  }
  if (rows.some((r) => r.flops === null)) {
    lines.push("", "GFLOP –: not counted here (MobileSAM's TinyViT: see its edge row).");
  }
  if (notes.length) {
    lines.push("", "Not measured:", "");
    notes.forEach((n, i) => lines.push(`${i + 1}. ${n}`));
  }
  return lines.join("\n") + "\n";
}

/** GFLOP of a case with 2 significant digits at least (sam-tiny's click is 0.03). */
function formatGflop(flops: number): string {
  const g = flops / 1e9;
  return g >= 10 ? g.toFixed(1) : g >= 0.1 ? g.toFixed(2) : g.toPrecision(2);
}
