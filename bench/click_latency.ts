/**
 * Click latency: wall ms of one single-click predict (one foreground point, 3 masks upscaled
 * to a 1200x1800 photo and read back as masks), on an embedding whose prompt-independent
 * work is already kept, as every click after the first on an image. Measured on each WebGPU
 * provider in the same run (Deno's built-in WebGPU and Dawn), with the dispatches, submits
 * and readbacks a click costs. Models: sam-mini (../shared/fixtures) and the ViT-B decoder
 * with random weights (shape-only: the decoder of B, L and H has the same shapes).
 *
 *   deno run -A bench/click_latency.ts [--runs N] [--out bench/results]
 *
 * `deno task bench:report` appends the same table to its report (bench/report.ts).
 */
import { getContext, type GpuContext } from "../src/gpu/context.ts";
import type { GpuProvider } from "../src/gpu/device.ts";
import { tensorFrom } from "../src/gpu/tensor.ts";
import { SamDecoder } from "../src/decoder/mask_decoder.ts";
import { OFFICIAL_ARCHS } from "../src/weights/arch.ts";
import { loadSam } from "../src/weights/load.ts";
import type { SamArch, StateDict } from "../src/weights/types.ts";
import { randomStateDict } from "./report/ours.ts";

const SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";
const ORIGINAL: [number, number] = [1200, 1800];

export interface ClickRow {
  provider: GpuProvider;
  adapter: string;
  model: string;
  /** Median wall ms per click, or null with `reason`. */
  ms: number | null;
  runsMs: number[];
  dispatches: number;
  submits: number;
  readbacks: number;
  reason?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The models to time: [name, weights, arch] (sam-mini only where its fixture is present). */
async function models(): Promise<[string, StateDict, SamArch][]> {
  const out: [string, StateDict, SamArch][] = [];
  const mini = new URL("../../shared/fixtures/sam-mini/sam-mini.pth", import.meta.url);
  try {
    Deno.statSync(mini);
    const { sd, arch } = await loadSam(mini);
    out.push(["sam-mini", sd, arch]);
  } catch {
    console.warn("click latency: ../shared/fixtures/sam-mini is not present: sam-mini skipped");
  }
  const arch = OFFICIAL_ARCHS.vit_b;
  const sd = randomStateDict(arch, (n) => !n.startsWith("image_encoder."));
  out.push(["ViT-B decoder (random weights)", sd, arch]);
  return out;
}

async function timeClicks(
  ctx: GpuContext,
  name: string,
  sd: StateDict,
  arch: SamArch,
  runs: number,
): Promise<ClickRow> {
  const decoder = SamDecoder.create(ctx, sd, arch);
  const s = arch.imgSize / arch.patchSize, d = arch.promptEmbedDim;
  const emb = new Float32Array(d * s * s);
  for (let i = 0; i < emb.length; i++) emb[i] = Math.sin(i * 0.37) * 0.5;
  const embedding = tensorFrom(ctx, emb, [1, d, s, s], "click.embedding");
  try {
    const click = (i: number) =>
      decoder.predict(embedding, [{ points: [[900 + i, 600]], labels: [1], multimask: true }], {
        originalSize: ORIGINAL,
        output: "masks",
      });
    await click(0); // pipelines, and the embedding's kept work
    await click(1);
    const before = { ...ctx.counters };
    const runsMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      const [r] = await click(i + 2);
      runsMs.push(performance.now() - t);
      if (r.masks?.length !== 3) throw new Error(`click latency: ${r.masks?.length} masks`);
    }
    const per = (k: "dispatches" | "submits" | "readbacks") => (ctx.counters[k] - before[k]) / runs;
    return {
      provider: ctx.gpu.provider,
      adapter: ctx.gpu.description,
      model: name,
      ms: median(runsMs),
      runsMs: runsMs.map((x) => Math.round(x * 10) / 10),
      dispatches: per("dispatches"),
      submits: per("submits"),
      readbacks: per("readbacks"),
    };
  } finally {
    decoder.releaseEmbedding(embedding);
    ctx.submit();
    embedding.destroy();
    decoder.dispose();
  }
}

/**
 * Deno's WebGPU first (on whatever Vulkan driver the host has), then Dawn; where the host has
 * no driver Dawn accepts, Dawn is pointed at SwiftShader (from chromium) after Deno's device
 * exists, so each provider keeps its own adapter.
 */
async function contexts(): Promise<(GpuContext | { provider: GpuProvider; reason: string })[]> {
  const out: (GpuContext | { provider: GpuProvider; reason: string })[] = [];
  for (const provider of ["deno", "dawn"] as const) {
    try {
      if (provider === "dawn" && !Deno.env.get("VK_ICD_FILENAMES")) {
        try {
          Deno.statSync(SWIFTSHADER_ICD);
          const deno = out[0];
          if ("gpu" in deno && deno.gpu.software) Deno.env.set("VK_ICD_FILENAMES", SWIFTSHADER_ICD);
        } catch { /* no SwiftShader: Dawn takes the host's driver or reports none */ }
      }
      out.push(await getContext(provider));
    } catch (err) {
      out.push({ provider, reason: (err as Error).message.split("\n")[0] });
    }
  }
  return out;
}

export async function measureClickLatency(runs = 5): Promise<ClickRow[]> {
  const rows: ClickRow[] = [];
  const ms = await models();
  for (const ctx of await contexts()) {
    for (const [name, sd, arch] of ms) {
      if (!("gpu" in ctx)) {
        rows.push({
          provider: ctx.provider,
          adapter: "none",
          model: name,
          ms: null,
          runsMs: [],
          dispatches: 0,
          submits: 0,
          readbacks: 0,
          reason: ctx.reason,
        });
        continue;
      }
      console.error(`click latency: ${name} on ${ctx.gpu.provider} (${ctx.gpu.description})`);
      rows.push(await timeClicks(ctx, name, sd, arch, runs));
    }
  }
  return rows;
}

export function formatClickLatency(rows: readonly ClickRow[]): string {
  const lines = [
    "## Click latency (single-click predict, 3 masks at 1200x1800)",
    "",
    "Wall ms of one `predict` with one foreground point on a kept embedding (every click after " +
    "the first on an image), masks read back as bits; median of the runs. Per click: GPU " +
    "dispatches, queue submits and readbacks (GPU-to-CPU round trips). On a GPU host run " +
    "`deno run -A bench/click_latency.ts` and fill in the hardware rows (goal: a few ms a click; " +
    "Deno's WebGPU adds ~11 ms a readback from its poll interval, Dawn does not).",
    "",
    "| provider | adapter | model | ms / click | runs (ms) | dispatches | submits | readbacks |",
    "|---|---|---|---:|---|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.provider} | ${r.adapter} | ${r.model} | ${
        r.ms === null ? `not measured: ${r.reason}` : r.ms.toFixed(1)
      } | ${r.runsMs.join(", ")} | ${r.dispatches} | ${r.submits} | ${r.readbacks} |`,
    );
  }
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const arg = (name: string) => {
    const i = Deno.args.indexOf(name);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  const runs = Number(arg("--runs") ?? 5);
  const outDir = arg("--out") ?? "bench/results";
  const rows = await measureClickLatency(runs);
  const md = formatClickLatency(rows);
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.writeTextFile(`${outDir}/click-latency.md`, md);
  await Deno.writeTextFile(
    `${outDir}/click-latency.json`,
    JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2) + "\n",
  );
  console.log(md);
  Deno.exit(0);
}
