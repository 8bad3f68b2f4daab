/**
 * Side-by-side benchmark: wgsam (our WGSL kernels on WebGPU) against onnxruntime-web (wasm and
 * its WebGPU execution provider) on the same machine, the same inputs and the same shapes.
 *
 *   deno run -A bench/report.ts [--quick] [--only encoder,decoder,amg] [--runs N]
 *                               [--budget SECONDS] [--no-peer] [--out DIR]
 *
 * Writes bench/results/<adapter-slug>.json (every measurement, with the adapter, date, Deno
 * version, CPU count and load) and bench/results/<adapter-slug>.md (the table). See
 * bench/README.md for what each case is and how time is taken.
 *
 * Timing. Ours: wall time from recording the work to the result read back on the CPU (the
 * peer returns CPU tensors, so both sides include the readback); where the adapter has
 * timestamp queries, the GPU time of the same run too. Peer: wall time of session.run,
 * session creation timed apart. Every case: warm-up run(s), then N timed runs, median.
 * The peer runs in a child process (bench/peer/peer_cli.ts) so that a case can be stopped at
 * a time limit; the two sides never run at the same time.
 *
 * Cases that cannot run here, or whose module has not landed, are written as "not measured"
 * with the reason; no number is ever estimated into the table. Where a case's time is
 * predictable from an earlier one (a 64-prompt batch from one prompt; ViT-L from ViT-B) and
 * exceeds the per-case budget, it is skipped with the estimate as the reason. On a software
 * adapter such a case estimated over a minute a run runs once without warm-up (planRuns), so
 * `--budget` alone decides how far a CPU-emulated run goes.
 */
import { parseFlags, UsageError, wantsHelp } from "../src/cli/args.ts";
import { isSoftwareAdapter as isSoftwareDevice } from "../src/gpu/device.ts";
import { officialSam2Arch, type Sam2Arch, sam2HintsFromFixture } from "../src/sam2/arch.ts";
import { disposeSam2Features, Sam2ImageEncoder } from "../src/sam2/image_encoder.ts";
import { Sam2Decoder } from "../src/sam2/mask_decoder.ts";
import { expectedSam2EncoderShapes, loadSam2 } from "../src/sam2/load.ts";
import { flopsSam2Encoder } from "./encoder/sam2_flops.ts";
import { getContext, type GpuContext } from "../src/gpu/context.ts";
import type { Tensor } from "../src/gpu/tensor.ts";
import { tensorFrom } from "../src/gpu/tensor.ts";
import { readImageFile } from "../src/image.ts";
import { readNpy } from "../src/util/npy.ts";
import type { Prompt, RgbImage } from "../src/types.ts";
import { expectedShapes, OFFICIAL_ARCHS } from "../src/weights/arch.ts";
import { loadSam } from "../src/weights/load.ts";
import type { HostTensor, SamArch, StateDict } from "../src/weights/types.ts";
import {
  DECODER_POINTS,
  median,
  type PeerBackend,
  type PeerGraph,
  peerGraphs,
  type PeerResult,
} from "./peer/ort_peer.ts";
import { runPeerInChild } from "./peer/peer_cli.ts";

// ---------------------------------------------------------------------------------------------
// FLOP counts
// ---------------------------------------------------------------------------------------------

/**
 * FLOPs of one forward pass of SAM's image encoder (ImageEncoderViT) as the official code
 * computes it, counting a multiply-add as 2 FLOPs and only the matrix products: patch
 * embedding conv, per block qkv / attention scores / attention-weighted values / the decomposed
 * relative-position terms (einsum of q with Rh and Rw) / output projection / MLP, and the neck's
 * 1x1 and 3x3 convs. Not counted: LayerNorm, GELU, softmax, adds, pos_embed, padding copies
 * (all linear in the activation size, a few percent at most).
 *
 * Windowed blocks: the official code partitions before the attention module, so qkv,
 * attention and the output projection run on the zero-padded windows (64 -> 70 for window
 * 14: 25 windows of 196 tokens = 4900 rows instead of 4096). An implementation that skips the
 * padded rows of the projection (ours does) does less work than counted here; GFLOP/s is then
 * "official FLOPs per second", comparable across implementations.
 */
export function flopsEncoder(arch: SamArch): number {
  const s = arch.imgSize / arch.patchSize; // token grid side
  const T = s * s;
  const C = arch.embedDim;
  const M = arch.encoderMlpDim;
  const D = arch.promptEmbedDim;
  let f = 2 * T * C * 3 * arch.patchSize * arch.patchSize; // patch embed (conv k=p, stride p)
  for (let i = 0; i < arch.depth; i++) {
    const global = arch.globalAttnIndexes.includes(i) || arch.windowSize === 0;
    const span = global ? s : arch.windowSize; // attention side (tokens per row of a window)
    const padded = global ? s : Math.ceil(s / span) * span;
    const nWin = (padded / span) ** 2;
    const L = span * span; // tokens per window
    const rows = nWin * L; // rows through qkv and proj (padding included)
    f += 2 * rows * C * 3 * C; // qkv
    f += 2 * 2 * nWin * L * L * C; // q k^T and attn @ v, all heads (heads * headDim = C)
    f += 2 * 2 * nWin * L * span * C; // rel_h and rel_w: per query, span keys, headDim each
    f += 2 * rows * C * C; // proj
    f += 2 * 2 * T * C * M; // mlp lin1 + lin2
  }
  f += 2 * T * C * D; // neck 1x1 conv
  f += 2 * T * D * D * 9; // neck 3x3 conv
  return f;
}

export interface DecoderFlopsOptions {
  /** Prompts decoded (each a full pass of the two-way transformer). */
  prompts: number;
  /** Sparse prompt tokens per prompt: points (+1 padding point when there is no box) + 2 per box. */
  sparseTokens: number;
}

/**
 * FLOPs of SAM's mask decoder for `prompts` prompts as the official code computes them (the
 * image embedding is repeated per prompt, so the whole two-way transformer runs per prompt),
 * a multiply-add = 2 FLOPs, matrix products only: every attention's q/k/v/out projections and
 * its two products (two layers of token self-attention, token->image, MLP, image->token; the
 * final token->image attention), the two transposed convs of the upscaling, the hypernetwork
 * MLPs of all 4 mask tokens, the mask product and the IoU head. Not counted: the prompt
 * encoder (a few hundred FLOPs per point), norms, activations, adds, and the resampling of the
 * masks to the original image size (bilinear, memory-bound; the two sides resample a different
 * number of masks: the official ONNX export all 4, the predictor the 1 or 3 it returns).
 */
export function flopsDecoder(arch: SamArch, opts: DecoderFlopsOptions): number {
  const D = arch.promptEmbedDim;
  const Di = arch.decoderCrossAttnDim;
  const s = arch.imgSize / arch.patchSize;
  const N = s * s; // image tokens
  const masks = arch.numMultimaskOutputs + 1;
  const Nt = 1 + masks + opts.sparseTokens; // iou token + mask tokens + sparse prompt tokens
  // Attention(embedding D, internal dim dInt): q from nq rows, k and v from nk rows.
  const attn = (nq: number, nk: number, dInt: number) =>
    2 * nq * D * dInt + 2 * 2 * nk * D * dInt + 2 * 2 * nq * nk * dInt + 2 * nq * dInt * D;
  let f = 0;
  for (let l = 0; l < arch.decoderDepth; l++) {
    f += attn(Nt, Nt, D); // token self-attention
    f += attn(Nt, N, Di); // tokens -> image
    f += 2 * 2 * Nt * D * arch.decoderMlpDim; // token MLP
    f += attn(N, Nt, Di); // image -> tokens
  }
  f += attn(Nt, N, Di); // final tokens -> image
  // Upscaling: ConvTranspose2d k2 s2 (each output pixel: Cin MACs per output channel).
  f += 2 * (2 * s) ** 2 * (D / 4) * D;
  f += 2 * (4 * s) ** 2 * (D / 8) * (D / 4);
  f += masks * 2 * (D * D + D * D + D * (D / 8)); // hypernetwork MLPs (3 layers)
  f += 2 * masks * (D / 8) * (4 * s) ** 2; // hyper_in @ upscaled embedding
  const H = arch.iouHeadHiddenDim; // IoU head: D -> H -> H -> masks
  f += 2 * (D * H + H * H + H * masks);
  return f * opts.prompts;
}

/**
 * FLOPs of SAM 2's mask decoder, counted as flopsDecoder counts SAM's (same two-way transformer,
 * upscaling, hypernetworks, IoU head) with one more output token (the object-score token) and
 * its 3-layer MLP head. Not counted beyond SAM's: the adds of the high-res features (one add a
 * pixel) and the stability score of single-mask outputs (a comparison a pixel).
 */
export function flopsSam2Decoder(arch: Sam2Arch, opts: DecoderFlopsOptions): number {
  const d = arch.decoder, D = arch.dModel;
  const asSam = {
    promptEmbedDim: D,
    decoderCrossAttnDim: d.crossAttnDim,
    imgSize: arch.imgSize,
    patchSize: arch.backboneStride,
    numMultimaskOutputs: d.numMultimaskOutputs,
    decoderDepth: d.depth,
    decoderMlpDim: d.mlpDim,
    iouHeadHiddenDim: d.iouHeadHiddenDim,
  } as SamArch;
  const objToken = d.predObjScores ? 1 : 0;
  const objHead = d.objScoreHeadDepth === 3 ? 2 * (D * D + D * D + D) : 2 * D * objToken;
  return flopsDecoder(asSam, { ...opts, sparseTokens: opts.sparseTokens + objToken }) +
    objHead * opts.prompts;
}

/**
 * FLOPs of SamAutomaticMaskGenerator with one crop layer (the whole image) and a grid of
 * pointsPerSide^2 single-point prompts: one encoder pass plus the decoder per point (one point
 * and the padding point = 2 sparse tokens). Not counted: mask resampling, stability scores,
 * NMS, RLE (see flopsDecoder).
 */
export function flopsAmg(arch: SamArch, pointsPerSide: number): number {
  return flopsEncoder(arch) +
    flopsDecoder(arch, { prompts: pointsPerSide ** 2, sparseTokens: 2 });
}

// ---------------------------------------------------------------------------------------------
// Measurements, rows, formatting (pure)
// ---------------------------------------------------------------------------------------------

export type Measure =
  | {
    status: "ok";
    /** Median wall ms of the timed runs. */
    ms: number;
    runsMs: number[];
    warmupMs: number[];
    /** Ours: median GPU ms from timestamp queries; null where the adapter has none. */
    gpuMs?: number | null;
    /** Peer: session creation ms. */
    createMs?: number;
    /** Decoder batches: ms / prompts. */
    perPromptMs?: number;
    timing: "wall+readback" | "peer session.run";
    detail?: Record<string, unknown>;
  }
  | { status: "not measured"; reason: string };

export type Group = "encoder" | "decoder" | "amg";

export interface Row {
  id: string;
  group: Group;
  /** What the case is, for the table. */
  label: string;
  /** FLOPs of one timed iteration (see the flops functions), or null. */
  flops: number | null;
  ours: Measure;
  peerWasm: Measure;
  peerWebgpu: Measure;
}

export const notMeasured = (reason: string): Measure => ({ status: "not measured", reason });

/** On a software adapter, a case whose one run is estimated over this runs once, with no
 * warm-up: the smaller case before it compiled the same kernel variants, and a warm-up would
 * double a wait of many minutes. Its table cell says so. */
export const SOFTWARE_SINGLE_RUN_MS = 60_000;

export interface RunPlan {
  warmup: number;
  runs: number;
  /** Estimated wall ms of warm-up + runs. */
  totalMs: number;
  /** One cold run instead of the configured warm-up and runs. */
  single: boolean;
}

/** How many warm-up and timed runs a case gets, given one run's estimated ms. */
export function planRuns(
  software: boolean,
  oneRunMs: number,
  warmup: number,
  runs: number,
): RunPlan {
  if (software && oneRunMs > SOFTWARE_SINGLE_RUN_MS) {
    return { warmup: 0, runs: 1, totalMs: oneRunMs, single: true };
  }
  return { warmup, runs, totalMs: oneRunMs * (warmup + runs), single: false };
}

/** Marks a measurement taken by a single-run plan, for the table and the JSON. */
function markSingle(m: Measure, plan: RunPlan): Measure {
  if (m.status === "ok" && plan.single) m.detail = { ...m.detail, singleColdRun: true };
  return m;
}

/**
 * A file-name-safe slug of the adapter description: lower case, runs of anything but a-z0-9
 * become one "-", trimmed, at most 64 characters.
 */
export function adapterSlug(description: string): string {
  const slug = description.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "")
    .slice(0, 64).replace(/-+$/, "");
  return slug || "unknown-adapter";
}

/** True for CPU-emulated WebGPU adapters, from the adapter's description. */
export function isSoftwareAdapter(description: string): boolean {
  return isSoftwareDevice({ description });
}

/** How many times faster ours is than the peer (peer ms / ours ms); null unless both ran. */
export function ratio(peer: Measure, ours: Measure): number | null {
  if (peer.status !== "ok" || ours.status !== "ok" || !(ours.ms > 0)) return null;
  return peer.ms / ours.ms;
}

export function formatMs(ms: number): string {
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(2);
  return ms.toFixed(3);
}

export function formatRatio(r: number | null): string {
  if (r === null) return "–";
  return r >= 10 ? `${r.toFixed(0)}x` : `${r.toFixed(2)}x`;
}

export function gflops(flops: number | null, ms: number): number | null {
  return flops === null || !(ms > 0) ? null : flops / ms / 1e6;
}

function formatGflops(g: number | null): string {
  if (g === null) return "";
  return g >= 100 ? g.toFixed(0) : g >= 1 ? g.toFixed(1) : g.toFixed(3);
}

/**
 * The markdown table: case, GFLOP, ours ms (GFLOP/s), ours GPU ms, peer wasm ms, peer WebGPU
 * ms, and how many times faster ours is than each peer. Cells of cases that did not run hold a
 * note number; the notes (the reasons) follow the table.
 */
export function formatTable(rows: readonly Row[]): string {
  const notes: string[] = [];
  const note = (m: Measure & { status: "not measured" }): string => {
    let k = notes.indexOf(m.reason);
    if (k < 0) k = notes.push(m.reason) - 1;
    return `n/m [${k + 1}]`;
  };
  const cell = (m: Measure, flops: number | null): string => {
    if (m.status !== "ok") return note(m);
    const g = formatGflops(gflops(flops, m.ms));
    const per = m.perPromptMs !== undefined ? `, ${formatMs(m.perPromptMs)}/prompt` : "";
    const single = m.detail?.singleColdRun ? " ¹" : "";
    return `${formatMs(m.ms)}${
      g ? ` (${g} GFLOP/s${per})` : per ? ` (${per.slice(2)})` : ""
    }${single}`;
  };
  const lines = [
    "| case | GFLOP | ours ms | ours GPU ms | peer wasm ms | peer WebGPU ms | ours vs wasm | ours vs WebGPU |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const gpu = r.ours.status === "ok" && r.ours.gpuMs != null ? formatMs(r.ours.gpuMs) : "–";
    lines.push(
      `| ${r.label} | ${r.flops === null ? "–" : (r.flops / 1e9).toFixed(1)} | ${
        cell(r.ours, r.flops)
      } | ${gpu} | ${cell(r.peerWasm, r.flops)} | ${cell(r.peerWebgpu, r.flops)} | ${
        formatRatio(ratio(r.peerWasm, r.ours))
      } | ${formatRatio(ratio(r.peerWebgpu, r.ours))} |`,
    );
  }
  const single = (m: Measure) => m.status === "ok" && m.detail?.singleColdRun === true;
  if (rows.some((r) => single(r.ours) || single(r.peerWasm) || single(r.peerWebgpu))) {
    lines.push(
      "",
      `¹ one run, no warm-up (software adapter, a run estimated over ${
        SOFTWARE_SINGLE_RUN_MS / 1000
      } s): the kernels (ours) or the session (the peer's) were made ready by the smaller ` +
        "case before it.",
    );
  }
  if (notes.length) {
    lines.push("", "Not measured:", "");
    notes.forEach((n, i) => lines.push(`${i + 1}. ${n}`));
  }
  return lines.join("\n");
}

export interface Target {
  name: string;
  verdict: "met" | "not met" | "not measured here";
  detail: string;
}

/**
 * The project's targets, judged on the measurements as they are: decoder <= 2 ms per prompt;
 * ViT-B encoder <= 40 ms on an H100-class GPU; ours >= 2x onnxruntime-web's WebGPU EP.
 */
export function judgeTargets(rows: readonly Row[], adapter: string): Target[] {
  const verdicts = judgeMeasured(rows, adapter);
  if (!isSoftwareAdapter(adapter)) return verdicts;
  // The targets are for GPUs: a CPU-emulated adapter's numbers are reported, never judged.
  return verdicts.map((t) => ({
    name: t.name,
    verdict: "not measured here",
    detail: `a software adapter (${adapter}), the targets are for a GPU; measured: ${t.detail}`,
  }));
}

function judgeMeasured(rows: readonly Row[], adapter: string): Target[] {
  const out: Target[] = [];
  const find = (id: string) => rows.find((r) => r.id === id);
  // Decoder: the best per-prompt figure we have for a full upscaled prediction.
  const dec = ["decoder_64p_upscaled", "decoder_1p_upscaled"].map(find)
    .filter((r): r is Row => !!r && r.ours.status === "ok");
  if (dec.length === 0) {
    out.push({
      name: "decoder <= 2 ms per prompt",
      verdict: "not measured here",
      detail: "ours: no decoder case ran",
    });
  } else {
    const per = Math.min(
      ...dec.map((r) => {
        const m = r.ours as Measure & { status: "ok" };
        return m.perPromptMs ?? m.ms;
      }),
    );
    out.push({
      name: "decoder <= 2 ms per prompt",
      verdict: per <= 2 ? "met" : "not met",
      detail: `ours ${formatMs(per)} ms per prompt on ${adapter}`,
    });
  }
  const vitb = find("encoder_vit_b");
  const h100Class = /h100|h200|b200|gh200/i.test(adapter);
  if (!vitb || vitb.ours.status !== "ok") {
    out.push({
      name: "ViT-B encoder <= 40 ms (H100-class GPU)",
      verdict: "not measured here",
      detail: vitb?.ours.status === "not measured" ? vitb.ours.reason : "no ViT-B case",
    });
  } else {
    const ms = vitb.ours.gpuMs ?? vitb.ours.ms;
    out.push({
      name: "ViT-B encoder <= 40 ms (H100-class GPU)",
      verdict: !h100Class ? "not measured here" : ms <= 40 ? "met" : "not met",
      detail: `ours ${formatMs(ms)} ms on ${adapter}${h100Class ? "" : " (not H100-class)"}`,
    });
  }
  const pairs = rows.map((r) => ({ r, x: ratio(r.peerWebgpu, r.ours) }))
    .filter((p): p is { r: Row; x: number } => p.x !== null);
  if (pairs.length === 0) {
    out.push({
      name: ">= 2x onnxruntime-web WebGPU EP",
      verdict: "not measured here",
      detail: "no case ran on both ours and the WebGPU EP",
    });
  } else {
    const worst = pairs.reduce((a, b) => (b.x < a.x ? b : a));
    out.push({
      name: ">= 2x onnxruntime-web WebGPU EP",
      verdict: worst.x >= 2 ? "met" : "not met",
      detail: pairs.map((p) => `${p.r.label}: ${formatRatio(p.x)}`).join("; "),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

export interface ReportOptions {
  quick: boolean;
  only: Set<Group>;
  /** Timed runs per case (encoders, decoder). */
  encoderRuns: number;
  decoderRuns: number;
  warmup: number;
  /** Per-case budget in ms: predictable cases estimated beyond it are skipped. */
  budgetMs: number;
  peer: boolean;
  outDir: string;
}

export const USAGE = `Usage: deno task bench:report [options]

Measures wgsam against onnxruntime-web (wasm and its WebGPU provider) on the same inputs and
writes bench/results/<adapter>.{json,md} (see bench/README.md).

  --quick           one run per case, smaller budget (120 s a case)
  --only GROUPS     comma-separated: encoder, decoder, amg (default: all)
  --runs N          timed runs per case (default 5 encoder, 20 decoder; 1 with --quick)
  --budget SECONDS  per-case budget: cases estimated beyond it are skipped (default 900)
  --no-peer         ours only
  --out DIR         where the results go (default bench/results/)
  -h, --help        this text

Exit status: 0 done, 1 a runtime failure, 2 a bad argument (unknown flag, bad value).`;

/** The options; a UsageError (exit 2) for a bad argument. */
export function parseArgs(args: readonly string[]): ReportOptions {
  const { values, positionals } = parseFlags(args, {
    quick: { type: "boolean" },
    only: { type: "string" },
    runs: { type: "string" },
    budget: { type: "string" },
    "no-peer": { type: "boolean" },
    out: { type: "string" },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const quick = values.quick ?? false;
  const value = (flag: "--only" | "--runs" | "--budget" | "--out"): string | undefined =>
    values[flag.slice(2) as "only" | "runs" | "budget" | "out"];
  const groups: Group[] = ["encoder", "decoder", "amg"];
  const onlyArg = value("--only");
  const only = new Set<Group>();
  for (const g of onlyArg ? onlyArg.split(",").map((s) => s.trim()).filter(Boolean) : groups) {
    if (!groups.includes(g as Group)) {
      throw new UsageError(`--only takes ${groups.join(",")}; got ${g}`);
    }
    only.add(g as Group);
  }
  const runsArg = value("--runs");
  const runs = runsArg === undefined ? undefined : Number(runsArg);
  if (runs !== undefined && !(Number.isInteger(runs) && runs >= 1)) {
    throw new UsageError(`--runs must be a positive integer, got ${runsArg}`);
  }
  const budgetArg = value("--budget");
  const budgetS = budgetArg === undefined ? (quick ? 120 : 900) : Number(budgetArg);
  if (!(budgetS > 0)) {
    throw new UsageError(`--budget must be positive seconds, got ${budgetArg}`);
  }
  return {
    quick,
    only,
    encoderRuns: runs ?? (quick ? 1 : 5),
    decoderRuns: runs ?? (quick ? 1 : 20),
    warmup: 1,
    budgetMs: budgetS * 1000,
    peer: !values["no-peer"],
    outDir: value("--out") ?? new URL("./results/", import.meta.url).pathname,
  };
}

// ---------------------------------------------------------------------------------------------
// Ours
// ---------------------------------------------------------------------------------------------

/** The API of src/encoder/image_encoder.ts this script uses. */
export interface EncoderModule {
  ImageEncoder: {
    fromStateDict(ctx: GpuContext, sd: StateDict, arch: SamArch): {
      encode(input: Float32Array): Tensor;
      dispose(): void;
    };
  };
}

/** The API of src/decoder/mask_decoder.ts this script uses. */
export interface DecoderModule {
  SamDecoder: {
    create(ctx: GpuContext, sd: StateDict, arch: SamArch): {
      predict(embedding: Tensor, prompts: readonly Prompt[], opts: {
        originalSize: readonly [number, number];
        output?: "masks" | "logits" | "both" | "none";
        allTokens?: boolean;
      }): Promise<unknown[]>;
      dispose(): void;
    };
  };
}

/** The API of src/amg (generator, model-backed mask source, SamModelBackend) this script uses. */
export interface AmgModules {
  generator: {
    AutomaticMaskGenerator: {
      fromOfficialParams(p: Record<string, unknown>): {
        generate(image: RgbImage, source: unknown): Promise<unknown[]>;
      };
    };
  };
  source: { ModelMaskSource: new (backend: unknown) => unknown };
  backend: {
    SamModelBackend: {
      fromStateDict(ctx: GpuContext, sd: StateDict, arch: SamArch, source?: string): {
        dispose(): void;
      };
    };
  };
}

/** Imports one of our modules by path, or returns why it cannot be used. */
export async function importOurs<T>(path: string, exportsNeeded: string[]): Promise<T | string> {
  const url = new URL(path, import.meta.url);
  try {
    Deno.statSync(url);
  } catch {
    return `${path.replace(/^\.\.\//, "")} has not landed`;
  }
  try {
    const mod = await import(url.href) as Record<string, unknown>;
    const missing = exportsNeeded.filter((e) => !(e in mod));
    if (missing.length) {
      return `${path.replace(/^\.\.\//, "")} does not export ${missing.join(", ")}`;
    }
    return mod as T;
  } catch (e) {
    return `${path.replace(/^\.\.\//, "")} failed to load: ${firstLine(e)}`;
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 200);
}

/**
 * Times `work` (which records GPU work and reads its result back) warm-up + runs times: wall
 * ms each, and GPU ms from timestamp queries where the adapter has them.
 */
async function timeOurs(
  ctx: GpuContext,
  work: () => Promise<void>,
  warmup: number,
  runs: number,
  prompts = 1,
): Promise<Measure> {
  const warmupMs: number[] = [];
  for (let i = 0; i < warmup; i++) {
    const t = performance.now();
    await work();
    warmupMs.push(performance.now() - t);
  }
  const runsMs: number[] = [];
  const gpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    if (ctx.gpu.hasTimestamps) {
      const g = await ctx.timeGpu(work);
      if (g !== null) gpu.push(g);
    } else {
      await work();
    }
    runsMs.push(performance.now() - t);
  }
  const ms = median(runsMs);
  return {
    status: "ok",
    ms,
    runsMs,
    warmupMs,
    gpuMs: gpu.length ? median(gpu) : null,
    ...(prompts > 1 ? { perPromptMs: ms / prompts } : {}),
    timing: "wall+readback",
  };
}

export async function importAmg(): Promise<AmgModules | string> {
  const generator = await importOurs<AmgModules["generator"]>(
    "../src/amg/automatic_mask_generator.ts",
    ["AutomaticMaskGenerator"],
  );
  if (typeof generator === "string") return generator;
  const source = await importOurs<AmgModules["source"]>("../src/amg/model_source.ts", [
    "ModelMaskSource",
  ]);
  if (typeof source === "string") return source;
  const backend = await importOurs<AmgModules["backend"]>("../src/amg/sam_backend.ts", [
    "SamModelBackend",
  ]);
  if (typeof backend === "string") return backend;
  return { generator, source, backend };
}

/** RGB bytes (alpha dropped). */
function toRgb(image: RgbImage): RgbImage {
  if (image.channels === 3) return image;
  const n = image.width * image.height, out = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) out.set(image.data.subarray(4 * i, 4 * i + 3), 3 * i);
  return { width: image.width, height: image.height, channels: 3, data: out };
}

/**
 * Random weights in the official layout for `arch`, the tensors whose names pass `keep`:
 * U(-1, 1) / sqrt(fan in), norms 1 and 0. Timing only: what they compute means nothing.
 */
export function randomStateDict(
  arch: SamArch,
  keep: (name: string) => boolean,
  seed = 1,
): StateDict {
  const sd: StateDict = new Map();
  let x = seed >>> 0;
  for (const [name, shape] of expectedShapes(arch)) {
    if (!keep(name)) continue;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /norm|neck\.[13]\.|output_upscaling\.1\./.test(name) && shape.length === 1;
    if (isNorm) data.fill(name.endsWith(".weight") ? 1 : 0);
    else {
      const scale = 1 / Math.sqrt(shape.length > 1 ? n / shape[0] : shape[0]);
      for (let i = 0; i < n; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        data[i] = (x / 2 ** 31 - 1) * scale;
      }
    }
    const t: HostTensor = { name, dtype: "float32", shape, bytes: new Uint8Array(data.buffer) };
    sd.set(name, t);
  }
  return sd;
}

const FIXTURES = new URL("../../shared/fixtures/", import.meta.url);

function fixturePath(rel: string): string | null {
  const url = new URL(rel, FIXTURES);
  try {
    Deno.statSync(url);
    return url.pathname;
  } catch {
    return null;
  }
}

/** A deterministic normalised (3, S, S) input. */
function encoderInput(size: number): Float32Array {
  const a = new Float32Array(3 * size * size);
  for (let i = 0; i < a.length; i++) a[i] = ((i * 2654435761) % 1000) / 500 - 1;
  return a;
}

/** Ours: the image encoder on a normalised input, embedding read back. */
export async function measureOursEncoder(
  ctx: GpuContext,
  mod: EncoderModule,
  sd: StateDict,
  arch: SamArch,
  warmup: number,
  runs: number,
): Promise<Measure> {
  const enc = mod.ImageEncoder.fromStateDict(ctx, sd, arch);
  try {
    const input = encoderInput(arch.imgSize);
    const work = async () => {
      const emb = enc.encode(input);
      await ctx.read(emb.buffer); // (1, D, s, s) back on the CPU, as the peer's output
      emb.destroy();
    };
    return await timeOurs(ctx, work, warmup, runs);
  } finally {
    enc.dispose();
  }
}

/** Ours: the SAM 2.1 image encoder on a normalised input, its three features read back. */
export async function measureOursSam2Encoder(
  ctx: GpuContext,
  sd: StateDict,
  arch: Sam2Arch,
  warmup: number,
  runs: number,
): Promise<Measure> {
  const enc = Sam2ImageEncoder.fromStateDict(ctx, sd, arch);
  try {
    const input = encoderInput(arch.imgSize);
    const work = async () => {
      const f = enc.encode(input);
      for (const t of [f.imageEmbed, f.highRes0, f.highRes1]) await ctx.read(t.buffer);
      disposeSam2Features(f);
    };
    return await timeOurs(ctx, work, warmup, runs);
  } finally {
    enc.dispose();
  }
}

/** Random weights in the official shapes of a SAM 2 encoder (LayerNorms 1 / 0). */
export function randomSam2EncoderWeights(arch: Sam2Arch): StateDict {
  const sd: StateDict = new Map();
  let x = 7;
  for (const [name, shape] of expectedSam2EncoderShapes(arch)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (/norm[12]\./.test(name)) data.fill(name.endsWith(".weight") ? 1 : 0);
    else {
      const scale = 1 / Math.sqrt(shape.length > 1 ? n / shape[0] : shape[0]);
      for (let i = 0; i < n; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        data[i] = (x / 2 ** 31 - 1) * scale;
      }
    }
    sd.set(name, { name, dtype: "float32", shape, bytes: new Uint8Array(data.buffer) });
  }
  return sd;
}

/**
 * SAM 2.1 encoder rows (Hiera trunk, FPN neck, conv_s0 / conv_s1): ours only, the peer has no
 * ONNX graph of SAM 2's encoder. sam2-mini (fixture weights) first; Hiera-T and B+ in their
 * official shapes with random weights, on a software adapter only when the estimate from the
 * last measured throughput fits the budget.
 */
async function sam2EncoderRows(
  ctx: GpuContext,
  opts: ReportOptions,
  software: boolean,
): Promise<Row[]> {
  const rows: Row[] = [];
  const peerNa = notMeasured("peer: no ONNX graph of the SAM 2 image encoder");
  const row = (id: string, flops: number | null, ours: Measure): Row => ({
    id,
    group: "encoder",
    label: LABELS[id],
    flops,
    ours,
    peerWasm: peerNa,
    peerWebgpu: peerNa,
  });
  let oursGflops: number | null = null;
  const pt = fixturePath("sam2-mini/sam2-mini.pt");
  const fixture = fixturePath("sam2-mini/fixture.json");
  if (!pt || !fixture) {
    rows.push(
      row("encoder_sam2_mini", null, notMeasured("ours: the sam2-mini fixture is missing")),
    );
  } else {
    try {
      const hints = sam2HintsFromFixture(JSON.parse(Deno.readTextFileSync(fixture)).architecture);
      const { sd, arch } = await loadSam2(pt, hints);
      log("ours: encoder sam2-mini");
      const m = await measureOursSam2Encoder(ctx, sd, arch, opts.warmup, opts.encoderRuns);
      const flops = flopsSam2Encoder(arch);
      if (m.status === "ok") oursGflops = gflops(flops, m.ms);
      rows.push(row("encoder_sam2_mini", flops, m));
    } catch (e) {
      rows.push(row("encoder_sam2_mini", null, notMeasured(`ours: failed: ${firstLine(e)}`)));
    }
  }
  for (const id of ["hiera_t", "hiera_b_plus"] as const) {
    const arch = officialSam2Arch(id);
    const flops = flopsSam2Encoder(arch);
    const caseId = `encoder_sam2_${id}`;
    if (software && oursGflops === null) {
      rows.push(row(
        caseId,
        flops,
        notMeasured(
          `ours: not run on a software adapter without a smaller encoder's throughput to ` +
            `estimate its ${(flops / 1e9).toFixed(0)} GFLOP from`,
        ),
      ));
      continue;
    }
    const plan = software
      ? planRuns(true, flops / (oursGflops! * 1e6), opts.warmup, opts.encoderRuns)
      : { warmup: opts.warmup, runs: opts.encoderRuns, totalMs: 0, single: false };
    if (plan.totalMs > opts.budgetMs) {
      rows.push(row(
        caseId,
        flops,
        notMeasured(
          `ours: skipped: estimated ${(plan.totalMs / 1000).toFixed(0)} s at the smaller ` +
            `encoder's ${oursGflops!.toFixed(2)} GFLOP/s exceeds the per-case budget of ` +
            `${opts.budgetMs / 1000} s`,
        ),
      ));
      continue;
    }
    try {
      log(`ours: encoder SAM 2.1 ${id} (random weights)`);
      const m = markSingle(
        await measureOursSam2Encoder(
          ctx,
          randomSam2EncoderWeights(arch),
          arch,
          plan.warmup,
          plan.runs,
        ),
        plan,
      );
      if (m.status === "ok") oursGflops = gflops(flops, m.ms);
      rows.push(row(caseId, flops, m));
    } catch (e) {
      rows.push(row(caseId, flops, notMeasured(`ours: failed: ${firstLine(e)}`)));
    }
  }
  return rows;
}

/**
 * SAM 2.1 decoder rows: ours only (the peer has no SAM 2 decoder graph). sam2-mini's decoder
 * has the real sizes (256 wide, MLP 2048); its kept features are stored only as probes, so it
 * decodes deterministic features of the right shapes (timing only), all 4 mask tokens.
 */
async function sam2DecoderRows(ctx: GpuContext, opts: ReportOptions): Promise<Row[]> {
  const peerNa = notMeasured("peer: no ONNX graph of the SAM 2 mask decoder");
  const ids = ["decoder_sam2_1p_upscaled", "decoder_sam2_1p_lowres"] as const;
  const pt = fixturePath("sam2-mini/sam2-mini.pt");
  const fixture = fixturePath("sam2-mini/fixture.json");
  const ours = new Map<string, Measure>();
  let flops: number | null = null;
  if (!pt || !fixture) {
    for (const id of ids) ours.set(id, notMeasured("ours: the sam2-mini fixture is missing"));
  } else {
    try {
      const hints = sam2HintsFromFixture(JSON.parse(Deno.readTextFileSync(fixture)).architecture);
      const { sd, arch } = await loadSam2(pt, hints);
      flops = flopsSam2Decoder(arch, { prompts: 1, sparseTokens: 3 });
      const decoder = Sam2Decoder.create(ctx, sd, arch);
      const C = arch.dModel, s = arch.imgSize / arch.backboneStride;
      const feature = (c: number, side: number, name: string) => {
        const a = new Float32Array(c * side * side);
        for (let i = 0; i < a.length; i++) a[i] = ((i * 2654435761) % 1000) / 500 - 1;
        return tensorFrom(ctx, a, [1, c, side, side], name);
      };
      const features = {
        imageEmbed: feature(C, s, "image_embed"),
        highRes0: feature(C / 8, 4 * s, "high_res_feats_0"),
        highRes1: feature(C / 4, 2 * s, "high_res_feats_1"),
      };
      try {
        for (const upscaled of [true, false]) {
          const id = upscaled ? ids[0] : ids[1];
          log(`ours: decoder SAM 2.1, 1 prompt, ${upscaled ? "upscaled" : "lowres"}`);
          const work = async () => {
            await decoder.predict(features, [oursPrompt()], {
              originalSize: ORIG_HW,
              output: upscaled ? "logits" : "none",
              allTokens: true,
            });
          };
          ours.set(id, await timeOurs(ctx, work, upscaled ? opts.warmup : 0, opts.decoderRuns));
        }
      } finally {
        decoder.dispose();
        disposeSam2Features(features);
      }
    } catch (e) {
      for (const id of ids) {
        if (!ours.has(id)) ours.set(id, notMeasured(`ours: failed: ${firstLine(e)}`));
      }
    }
  }
  return ids.map((id) => ({
    id,
    group: "decoder" as const,
    label: LABELS[id],
    flops,
    ours: ours.get(id)!,
    peerWasm: peerNa,
    peerWebgpu: peerNa,
  }));
}

/**
 * Ours: one SamDecoder.predict call with `prompts` on a given embedding, all 4 mask tokens (as
 * the official export); upscaled: float logits at `origHw` read back; else low-res only.
 */
export async function measureOursDecoder(
  ctx: GpuContext,
  decoder: ReturnType<DecoderModule["SamDecoder"]["create"]>,
  embedding: Tensor,
  origHw: [number, number],
  prompts: Prompt[],
  upscaled: boolean,
  warmup: number,
  runs: number,
): Promise<Measure> {
  const work = async () => {
    await decoder.predict(embedding, prompts, {
      originalSize: origHw,
      output: upscaled ? "logits" : "none",
      allTokens: true,
    });
  };
  return await timeOurs(ctx, work, warmup, runs, prompts.length);
}

/**
 * Ours: the automatic mask generator over the model (encoder + decoder + GPU postprocess and
 * statistics + NMS + RLE) on `image`, pointsPerSide^2 points, thresholds lowered so that
 * random-weight masks survive as a trained model's do.
 */
export async function measureOursAmg(
  ctx: GpuContext,
  mods: AmgModules,
  sd: StateDict,
  arch: SamArch,
  image: RgbImage,
  pointsPerSide: number,
  warmup: number,
  runs: number,
): Promise<Measure> {
  const backend = mods.backend.SamModelBackend.fromStateDict(ctx, sd, arch, "benchmark");
  try {
    const rgb = toRgb(image);
    const generator = mods.generator.AutomaticMaskGenerator.fromOfficialParams({
      points_per_side: pointsPerSide,
      pred_iou_thresh: 0,
      stability_score_thresh: 0.3,
    });
    let masks = 0;
    const m = await timeOurs(
      ctx,
      async () => {
        const source = new mods.source.ModelMaskSource(backend);
        masks = (await generator.generate(rgb, source)).length;
      },
      warmup,
      runs,
    );
    if (m.status === "ok") m.detail = { masks };
    return m;
  } finally {
    backend.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Peer
// ---------------------------------------------------------------------------------------------

function peerMeasure(r: PeerResult | undefined): Measure {
  if (!r) return notMeasured("peer: no result");
  if (r.status !== "ok") return notMeasured(`onnxruntime-web ${r.backend}: ${r.reason}`);
  return {
    status: "ok",
    ms: r.medianMs,
    runsMs: r.runsMs,
    warmupMs: r.warmupMs,
    createMs: r.createMs,
    ...(r.perPromptMs !== undefined ? { perPromptMs: r.perPromptMs } : {}),
    timing: "peer session.run",
    detail: { threads: r.threads, outputs: r.outputs },
  };
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

const LABELS: Record<string, string> = {
  encoder_sam_mini: "encoder sam-mini (1024 px, 128 wide, 4 blocks)",
  encoder_vit_b: "encoder ViT-B",
  encoder_vit_l: "encoder ViT-L",
  encoder_vit_h: "encoder ViT-H",
  encoder_sam2_mini: "encoder SAM 2.1 sam2-mini (1024 px, Hiera 8 wide)",
  encoder_sam2_hiera_t: "encoder SAM 2.1 Hiera-T",
  encoder_sam2_hiera_b_plus: "encoder SAM 2.1 Hiera-B+",
  decoder_1p_upscaled: "decoder, 1 prompt (2 points), 4 masks to 1200x1800",
  decoder_1p_lowres: "decoder, 1 prompt (2 points), low-res only",
  decoder_64p_upscaled: "decoder, 64 prompts, 4 masks each to 1200x1800",
  decoder_64p_lowres: "decoder, 64 prompts, low-res only",
  decoder_sam2_1p_upscaled:
    "decoder SAM 2.1 (sam2-mini: 256 wide), 1 prompt (2 points), 4 masks to 1200x1800",
  decoder_sam2_1p_lowres:
    "decoder SAM 2.1 (sam2-mini: 256 wide), 1 prompt (2 points), low-res only",
  amg_32: "AMG 32x32 points on a 1800x1200 photo",
};

const ORIG_HW: [number, number] = [1200, 1800];

/**
 * Two labelled points per prompt (foreground, background), prompt 0 at the same places as the
 * peer's (DECODER_POINTS); the prompts of a batch move the foreground point over an 8x8 grid.
 */
function oursPrompt(k = 0): Prompt {
  const [h, w] = ORIG_HW;
  const [[fx, fy], [bx, by]] = DECODER_POINTS;
  const dx = k === 0 ? 0 : ((k % 8) - 4) * 0.05, dy = k === 0 ? 0 : (Math.floor(k / 8) - 4) * 0.05;
  return {
    points: [[(fx + dx) * w, (fy + dy) * h], [bx * w, by * h]],
    labels: [1, 0],
    multimask: true,
  };
}

interface Env {
  adapter: string;
  software: boolean;
  hasTimestamps: boolean;
  date: string;
  deno: typeof Deno.version;
  cpus: number;
  loadavgStart: number[];
  loadavgEnd?: number[];
  os: string;
  /** The peer's package, from deno.json's import map (e.g. "npm:onnxruntime-web@1.23.2"). */
  peer: string;
  /** The checkout measured: HEAD, and our source files that differ from it (measured as they were). */
  git: { head: string; uncommitted: string[] } | null;
}

async function peerPackage(): Promise<string> {
  try {
    const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
    return String(config.imports?.["onnxruntime-web"] ?? "onnxruntime-web");
  } catch {
    return "onnxruntime-web";
  }
}

/** HEAD and the uncommitted files under src/, or null outside a git checkout. */
async function gitState(): Promise<Env["git"]> {
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", {
      args,
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) throw new Error(`git ${args[0]} failed`);
    return new TextDecoder().decode(out.stdout);
  };
  try {
    const head = (await git("rev-parse", "--short", "HEAD")).trim();
    const uncommitted = (await git("status", "--porcelain", "--", "src"))
      .split("\n").filter(Boolean).map((l) => l.slice(3));
    return { head, uncommitted };
  } catch {
    return null;
  }
}

function loadavg(): number[] {
  try {
    return Deno.loadavg().map((x) => Math.round(x * 100) / 100);
  } catch {
    return [];
  }
}

function log(msg: string): void {
  console.error(`[report ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

export async function runReport(opts: ReportOptions): Promise<{ env: Env; rows: Row[] }> {
  const ctx = await getContext();
  const adapter = ctx.gpu.description;
  const software = isSoftwareAdapter(adapter);
  const env: Env = {
    adapter,
    software,
    hasTimestamps: ctx.gpu.hasTimestamps,
    date: new Date().toISOString(),
    deno: Deno.version,
    cpus: navigator.hardwareConcurrency,
    loadavgStart: loadavg(),
    os: `${Deno.build.os} ${Deno.build.arch}`,
    git: await gitState(),
    peer: await peerPackage(),
  };
  log(`adapter: ${adapter}${software ? " (software)" : ""}; load ${env.loadavgStart.join(" ")}`);
  const rows: Row[] = [];
  const graphs = new Map(peerGraphs().map((g) => [g.id, g]));
  // A hard stop for hung or hopeless cases only: predictable ones are skipped by the budget.
  const peerTimeout = Math.max(5 * opts.budgetMs, 1_800_000);
  const noPeer = notMeasured("--no-peer");
  /** Ours' decoder ms per prompt (low-res only), for the AMG's estimate. */
  let decoderPerPromptMs: number | null = null;

  /** Runs the peer on `graph` for `cases` on both backends; keyed "backend/case". */
  const peerResults = new Map<string, PeerResult>();
  const runPeerCases = async (
    backend: PeerBackend,
    graph: PeerGraph,
    cases: Parameters<typeof runPeerInChild>[0]["cases"],
  ) => {
    if (cases.length === 0) return;
    log(`peer ${backend} ${graph.id}: ${cases.map((c) => c.name).join(", ")}`);
    const res = await runPeerInChild({ backend, graph, cases }, peerTimeout);
    for (const r of res) {
      peerResults.set(`${backend}/${r.case}`, r);
      log(
        `  ${backend} ${r.case}: ${
          r.status === "ok"
            ? `${formatMs(r.medianMs)} ms (create ${formatMs(r.createMs)} ms)`
            : r.reason
        }`,
      );
    }
  };
  /** Peer cases run by a single-run plan (planRuns). */
  const singlePeerRuns = new Set<string>();
  const peerOf = (backend: PeerBackend, id: string): Measure => {
    if (!opts.peer) return noPeer;
    const key = `${backend}/${id}`;
    const m = peerMeasure(peerResults.get(key));
    if (m.status === "ok" && singlePeerRuns.has(key)) {
      m.detail = { ...m.detail, singleColdRun: true };
    }
    return m;
  };
  const okMs = (backend: PeerBackend, id: string): number | null => {
    const r = peerResults.get(`${backend}/${id}`);
    return r?.status === "ok" ? r.medianMs : null;
  };

  // ------------------------------------------------------------------ decoder
  if (opts.only.has("decoder")) {
    const arch = OFFICIAL_ARCHS.vit_b; // the decoder is the same for B, L, H (and sam-mini)
    const flops1 = flopsDecoder(arch, { prompts: 1, sparseTokens: 3 });
    const flops64 = flopsDecoder(arch, { prompts: 64, sparseTokens: 3 });
    const decGraph = graphs.get("decoder");
    const lowresNote =
      "the official ONNX export always resizes the masks to orig_im_size (no low-res-only output)";
    // Peer: one prompt first, then the batch when its estimate fits the budget.
    if (opts.peer && decGraph) {
      for (const backend of ["wasm", "webgpu"] as const) {
        await runPeerCases(backend, decGraph, [{
          name: "decoder_1p_upscaled",
          decoder: { prompts: 1, origHw: ORIG_HW },
          warmup: opts.warmup,
          runs: backend === "webgpu" && software ? 1 : opts.decoderRuns,
        }]);
        const one = okMs(backend, "decoder_1p_upscaled");
        const plan = one === null
          ? null
          : planRuns(software, one * 64, opts.warmup, opts.decoderRuns);
        if (plan !== null && plan.totalMs <= opts.budgetMs) {
          await runPeerCases(backend, decGraph, [{
            name: "decoder_64p_upscaled",
            decoder: { prompts: 64, origHw: ORIG_HW },
            warmup: plan.warmup,
            runs: plan.runs,
          }]);
          if (plan.single) singlePeerRuns.add(`${backend}/decoder_64p_upscaled`);
        } else {
          peerResults.set(`${backend}/decoder_64p_upscaled`, {
            case: "decoder_64p_upscaled",
            backend,
            graph: "decoder",
            status: "unavailable",
            reason: one === null
              ? "skipped: the 1-prompt case did not run"
              : `skipped: estimated ${(plan!.totalMs / 1000).toFixed(0)} s (64 x the 1-prompt ` +
                `median x ${plan!.warmup + plan!.runs} iterations) exceeds the per-case budget ` +
                `of ${opts.budgetMs / 1000} s`,
          });
        }
      }
    }
    const peerMissing = notMeasured("sam_decoder.shape-only.onnx not found");
    const peerCell = (backend: PeerBackend, id: string) =>
      decGraph || !opts.peer ? peerOf(backend, id) : peerMissing;

    // Ours: SamDecoder on sam-mini (its decoder is the real one: 256 wide, MLP 2048, a 64x64
    // embedding), on the fixture's embedding, like the peer's given embedding. allTokens: all
    // 4 masks decoded and resized, float logits read back: what the official export returns.
    const ours = new Map<string, Measure>();
    const dec = await importOurs<DecoderModule>("../src/decoder/mask_decoder.ts", ["SamDecoder"]);
    const miniPth = fixturePath("sam-mini/sam-mini.pth");
    const embPath = fixturePath("sam-mini/image_embeddings.npy");
    const ids = ["decoder_1p_upscaled", "decoder_64p_upscaled", "decoder_1p_lowres"];
    ids.push("decoder_64p_lowres");
    if (typeof dec === "string") {
      for (const id of ids) ours.set(id, notMeasured(`ours: ${dec}`));
    } else if (!miniPth || !embPath) {
      for (const id of ids) ours.set(id, notMeasured("ours: the sam-mini fixture is missing"));
    } else {
      try {
        const { sd, arch } = await loadSam(miniPth);
        const decoder = dec.SamDecoder.create(ctx, sd, arch);
        const npy = await readNpy(embPath);
        const embedding = tensorFrom(ctx, npy.data as Float32Array, npy.shape, "embedding");
        try {
          for (const upscaled of [true, false]) {
            const tag = upscaled ? "upscaled" : "lowres";
            const run = (prompts: Prompt[], warmup: number, runs = opts.decoderRuns) =>
              measureOursDecoder(
                ctx,
                decoder,
                embedding,
                ORIG_HW,
                prompts,
                upscaled,
                warmup,
                runs,
              );
            log(`ours: decoder, 1 prompt, ${tag}`);
            // The low-res case runs the same pipelines as the upscaled one before it, already
            // compiled and warm: no second warm-up (on llvmpipe one costs a minute).
            const warmup = upscaled || ours.get("decoder_1p_upscaled")?.status !== "ok"
              ? opts.warmup
              : 0;
            const one = await run([oursPrompt()], warmup);
            ours.set(`decoder_1p_${tag}`, one);
            const plan = one.status === "ok"
              ? planRuns(software, one.ms * 64, opts.warmup, opts.decoderRuns)
              : null;
            if (plan && plan.totalMs <= opts.budgetMs) {
              log(`ours: decoder, 64 prompts, ${tag}`);
              const prompts = Array.from({ length: 64 }, (_, k) => oursPrompt(k));
              ours.set(
                `decoder_64p_${tag}`,
                markSingle(await run(prompts, plan.warmup, plan.runs), plan),
              );
            } else {
              ours.set(
                `decoder_64p_${tag}`,
                notMeasured(
                  plan === null
                    ? "ours: skipped: the 1-prompt case did not run"
                    : `ours: skipped: estimated ${
                      (plan.totalMs / 1000).toFixed(0)
                    } s (64 x the 1-prompt median x ${
                      plan.warmup + plan.runs
                    } iterations) exceeds the per-case budget of ${opts.budgetMs / 1000} s`,
                ),
              );
            }
          }
        } finally {
          embedding.destroy();
          decoder.dispose();
        }
      } catch (e) {
        for (const id of ids) {
          if (!ours.has(id)) ours.set(id, notMeasured(`ours: failed: ${firstLine(e)}`));
        }
      }
    }
    for (
      const [id, flops, lowres] of [
        ["decoder_1p_upscaled", flops1, false],
        ["decoder_64p_upscaled", flops64, false],
        ["decoder_1p_lowres", flops1, true],
        ["decoder_64p_lowres", flops64, true],
      ] as const
    ) {
      rows.push({
        id,
        group: "decoder",
        label: LABELS[id],
        flops,
        ours: ours.get(id)!,
        peerWasm: lowres ? notMeasured(`peer: ${lowresNote}`) : peerCell("wasm", id),
        peerWebgpu: lowres ? notMeasured(`peer: ${lowresNote}`) : peerCell("webgpu", id),
      });
    }
    decoderPerPromptMs = (["decoder_64p_lowres", "decoder_1p_lowres"] as const)
      .map((id) => ours.get(id))
      .map((m) => m?.status === "ok" ? (m.perPromptMs ?? m.ms) : null)
      .find((x) => x !== null) ?? null;
    rows.push(...await sam2DecoderRows(ctx, opts));
  }

  // ------------------------------------------------------------------ encoder
  if (opts.only.has("encoder")) {
    const enc = await importOurs<EncoderModule>("../src/encoder/image_encoder.ts", [
      "ImageEncoder",
    ]);
    // sam-mini: ours only (the peer's graphs are the real sizes).
    const miniPth = fixturePath("sam-mini/sam-mini.pth");
    let miniArch: SamArch | null = null;
    let miniMeasure: Measure;
    if (typeof enc === "string") miniMeasure = notMeasured(`ours: ${enc}`);
    else if (!miniPth) miniMeasure = notMeasured("ours: the sam-mini fixture is missing");
    else {
      try {
        const { sd, arch } = await loadSam(miniPth);
        miniArch = arch;
        log("ours: encoder sam-mini");
        miniMeasure = await measureOursEncoder(ctx, enc, sd, arch, opts.warmup, opts.encoderRuns);
      } catch (e) {
        miniMeasure = notMeasured(`ours: failed: ${firstLine(e)}`);
      }
    }
    const peerNa = notMeasured("peer: no shape-only graph of sam-mini (the real sizes only)");
    rows.push({
      id: "encoder_sam_mini",
      group: "encoder",
      label: LABELS.encoder_sam_mini,
      flops: miniArch ? flopsEncoder(miniArch) : null,
      ours: miniMeasure,
      peerWasm: peerNa,
      peerWebgpu: peerNa,
    });

    // Ours on a software adapter: each ViT is estimated from the throughput of the last
    // encoder that ran (sam-mini first), and runs when the estimate fits the budget.
    let oursGflops = miniMeasure.status === "ok" && miniArch
      ? gflops(flopsEncoder(miniArch), miniMeasure.ms)
      : null;
    const wgpuDecoderMs = okMs("webgpu", "decoder_1p_upscaled");
    let wasmGflops: number | null = null; // from the first encoder the wasm peer finished
    for (const id of ["vit_b", "vit_l", "vit_h"] as const) {
      const arch = OFFICIAL_ARCHS[id];
      const flops = flopsEncoder(arch);
      const graph = graphs.get(id);
      const caseId = `encoder_${id}`;
      let oursM: Measure;
      if (typeof enc === "string") oursM = notMeasured(`ours: ${enc}`);
      else if (software && oursGflops === null) {
        oursM = notMeasured(
          `ours: not run on a software adapter (${adapter}) without a smaller encoder's ` +
            `throughput to estimate its ${(flops / 1e9).toFixed(0)} GFLOP from`,
        );
      } else {
        const plan = software
          ? planRuns(true, flops / (oursGflops! * 1e6), opts.warmup, opts.encoderRuns)
          : { warmup: opts.warmup, runs: opts.encoderRuns, totalMs: 0, single: false };
        if (plan.totalMs > opts.budgetMs) {
          oursM = notMeasured(
            `ours: skipped: estimated ${(plan.totalMs / 1000).toFixed(0)} s (${
              plan.warmup + plan.runs
            } run${plan.warmup + plan.runs > 1 ? "s" : ""} at the smaller encoder's ${
              oursGflops!.toFixed(2)
            } GFLOP/s) exceeds the per-case budget of ${opts.budgetMs / 1000} s`,
          );
        } else {
          try {
            log(`ours: encoder ${id} (random weights)`);
            const sd = randomStateDict(arch, (n) => n.startsWith("image_encoder."));
            oursM = markSingle(
              await measureOursEncoder(ctx, enc, sd, arch, plan.warmup, plan.runs),
              plan,
            );
            if (oursM.status === "ok") oursGflops = gflops(flops, oursM.ms);
          } catch (e) {
            oursM = notMeasured(`ours: failed: ${firstLine(e)}`);
          }
        }
      }
      const peer: Record<PeerBackend, Measure> = {
        wasm: notMeasured(`peer: sam_${id}_encoder.shape-only.onnx not found`),
        webgpu: notMeasured(`peer: sam_${id}_encoder.shape-only.onnx not found`),
      };
      if (!opts.peer) peer.wasm = peer.webgpu = noPeer;
      else if (graph) {
        const iterations = opts.warmup + opts.encoderRuns;
        // wasm: estimated from the previous encoder's throughput, when there is one.
        const estWasm = wasmGflops === null ? null : flops / (wasmGflops * 1e6) * iterations;
        if (estWasm !== null && estWasm > opts.budgetMs) {
          peer.wasm = notMeasured(
            `peer wasm: skipped: estimated ${(estWasm / 1000).toFixed(0)} s (${iterations} runs ` +
              `at the smaller encoder's ${
                wasmGflops!.toFixed(1)
              } GFLOP/s) exceeds the per-case budget of ${opts.budgetMs / 1000} s`,
          );
        } else {
          await runPeerCases("wasm", graph, [{
            name: caseId,
            warmup: opts.warmup,
            runs: opts.encoderRuns,
          }]);
          peer.wasm = peerOf("wasm", caseId);
          const ms = okMs("wasm", caseId);
          if (ms !== null) wasmGflops = flops / ms / 1e6;
        }
        if (software) {
          peer.webgpu = notMeasured(
            `peer WebGPU: not run on a software adapter: ${
              wgpuDecoderMs === null
                ? "the decoder case did not run on this EP in this report"
                : `the decoder (${(flops1Dec() / 1e9).toFixed(1)} GFLOP) took ${
                  (wgpuDecoderMs / 1000).toFixed(0)
                } s a run on this EP here`
            }; this encoder is ${(flops / 1e9).toFixed(0)} GFLOP`,
          );
        } else {
          await runPeerCases("webgpu", graph, [{
            name: caseId,
            warmup: opts.warmup,
            runs: opts.encoderRuns,
          }]);
          peer.webgpu = peerOf("webgpu", caseId);
        }
      }
      rows.push({
        id: caseId,
        group: "encoder",
        label: LABELS[caseId],
        flops,
        ours: oursM,
        peerWasm: peer.wasm,
        peerWebgpu: peer.webgpu,
      });
    }
    rows.push(...await sam2EncoderRows(ctx, opts, software));
  }

  // ------------------------------------------------------------------ AMG
  if (opts.only.has("amg")) {
    // A hardware adapter: ViT-B shapes with random weights (timing only). A software one:
    // sam-mini, when its estimate fits the budget (it never does on llvmpipe: 1024 prompts).
    const arch = software ? null : OFFICIAL_ARCHS.vit_b;
    const miniPth = fixturePath("sam-mini/sam-mini.pth");
    const photo = fixturePath("sam-mini/resize_down_input.png"); // 1800 x 1200
    const mods = await importAmg();
    let oursM: Measure;
    let flops: number | null = arch ? flopsAmg(arch, 32) : null;
    const perPrompt = decoderPerPromptMs;
    if (typeof mods === "string") oursM = notMeasured(`ours: ${mods}`);
    else if (!photo || (software && !miniPth)) {
      oursM = notMeasured("ours: the sam-mini fixture is missing");
    } else if (software && perPrompt === null) {
      oursM = notMeasured(
        "ours: not run on a software adapter without a decoder measurement to estimate it from " +
          "(run with the decoder group)",
      );
    } else if (software && perPrompt! * 1024 > opts.budgetMs) {
      oursM = notMeasured(
        `ours: skipped: estimated over ${(perPrompt! * 1024 / 1000).toFixed(0)} s ` +
          `(1024 prompts at the decoder's ${formatMs(perPrompt!)} ms a prompt, low-res only) ` +
          `exceeds the per-case budget of ${opts.budgetMs / 1000} s`,
      );
    } else {
      try {
        const loaded = arch
          ? { sd: randomStateDict(arch, () => true), arch }
          : await loadSam(miniPth!);
        flops = flopsAmg(loaded.arch, 32);
        log(`ours: AMG 32x32 (${arch ? "ViT-B random weights" : "sam-mini"})`);
        oursM = await measureOursAmg(
          ctx,
          mods,
          loaded.sd,
          loaded.arch,
          await readImageFile(photo),
          32,
          opts.warmup,
          opts.encoderRuns,
        );
        if (oursM.status === "ok") {
          oursM.detail = { ...oursM.detail, model: arch ? "vit_b random weights" : "sam-mini" };
        }
      } catch (e) {
        oursM = notMeasured(`ours: failed: ${firstLine(e)}`);
      }
    }
    const peerNa = notMeasured("peer: onnxruntime-web has no automatic mask generator");
    rows.push({
      id: "amg_32",
      group: "amg",
      label: `${LABELS.amg_32}${arch ? " (ViT-B, random weights)" : " (sam-mini)"}`,
      flops, // encoder + 1024 decoder passes
      ours: oursM,
      peerWasm: peerNa,
      peerWebgpu: peerNa,
    });
  }

  env.loadavgEnd = loadavg();
  return { env, rows };
}

function flops1Dec(): number {
  return flopsDecoder(OFFICIAL_ARCHS.vit_b, { prompts: 1, sparseTokens: 3 });
}

const GROUP_ORDER: Group[] = ["encoder", "decoder", "amg"];

/** The markdown page of one report. */
export function formatReport(
  env: Env,
  rows: readonly Row[],
  opts: Pick<ReportOptions, "quick" | "encoderRuns" | "decoderRuns" | "warmup" | "budgetMs">,
): string {
  const sorted = [...rows].sort((a, b) =>
    GROUP_ORDER.indexOf(a.group) - GROUP_ORDER.indexOf(b.group)
  );
  const targets = judgeTargets(rows, env.adapter);
  const creates = rows.flatMap((r) =>
    (["peerWasm", "peerWebgpu"] as const).flatMap((k) => {
      const m = r[k];
      return m.status === "ok" && m.createMs !== undefined
        ? [`${r.label}, ${k === "peerWasm" ? "wasm" : "WebGPU"}: ${formatMs(m.createMs)} ms`]
        : [];
    })
  );
  const lines = [
    `# wgsam vs onnxruntime-web on ${env.adapter}`,
    "",
    `- date: ${env.date}`,
    `- Deno ${env.deno.deno} (V8 ${env.deno.v8}), ${env.os}, ${env.cpus} CPUs`,
    `- source: ${
      env.git
        ? `git ${env.git.head}${
          env.git.uncommitted.length
            ? ` with uncommitted changes in ${env.git.uncommitted.join(", ")}`
            : ""
        }`
        : "not a git checkout"
    }`,
    `- load average at start ${env.loadavgStart.join(" / ")}, at end ${
      (env.loadavgEnd ?? []).join(" / ")
    } (1 / 5 / 15 min)${
      env.loadavgStart[0] > env.cpus
        ? `: the machine was shared and busy (load above its ${env.cpus} CPUs), so every number here is slower than on an idle machine`
        : ""
    }`,
    `- adapter: ${env.adapter}${env.software ? " (software: CPU-emulated WebGPU)" : ""}; ` +
    `GPU timestamps: ${env.hasTimestamps ? "yes" : "no (ours: wall time around a readback)"}`,
    `- settings: ${
      opts.quick ? "--quick, " : ""
    }warm-up ${opts.warmup}, timed runs: encoders ${opts.encoderRuns}, decoder ${opts.decoderRuns} (medians); per-case budget ${
      opts.budgetMs / 1000
    } s`,
    `- peer: ${env.peer} on the real models' shape-only graphs ` +
    "(wasm: all CPU threads; WebGPU EP: wasm side single-threaded)",
    "",
    "ms: median wall time per iteration including the readback of the outputs. GFLOP/s: the " +
    "official computation's FLOPs (bench/report.ts flopsEncoder / flopsDecoder: matrix " +
    "products only, mask resampling not counted) per second. 'ours vs X': X ms / ours ms " +
    "(> 1: ours is faster). Ours keeps an image embedding's prompt-independent decoder work " +
    "(src and layer 0's image projections, about a fifth of a prompt's FLOPs) from its first " +
    "prompt, so the timed decoder runs after the warm-up reuse it, as an interactive session " +
    "does; the official export recomputes it every run.",
    "",
    formatTable(sorted),
    "",
    "## Targets (on a GPU; judged as measured)",
    "",
    ...targets.map((t) => `- ${t.name}: **${t.verdict}** (${t.detail})`),
  ];
  if (creates.length) {
    lines.push("", "## Peer session creation", "", ...creates.map((c) => `- ${c}`));
  }
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  if (wantsHelp(Deno.args)) {
    console.log(USAGE);
    Deno.exit(0);
  }
  let opts: ReportOptions;
  try {
    opts = parseArgs(Deno.args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(
      `bench:report: error: ${e.message}\nRun 'deno task bench:report --help' for usage.`,
    );
    Deno.exit(2);
  }
  const t0 = performance.now();
  const { env, rows } = await runReport(opts);
  const slug = adapterSlug(env.adapter);
  await Deno.mkdir(opts.outDir, { recursive: true });
  const base = opts.outDir.replace(/\/?$/, "/") + slug;
  const json = {
    args: Deno.args,
    env,
    settings: opts && { ...opts, only: [...opts.only] },
    totalSeconds: Math.round((performance.now() - t0) / 1000),
    flopsNote: "see bench/report.ts flopsEncoder / flopsDecoder",
    targets: judgeTargets(rows, env.adapter),
    rows: rows.map((r) => ({
      ...r,
      gflops: {
        ours: r.ours.status === "ok" ? gflops(r.flops, r.ours.ms) : null,
        peerWasm: r.peerWasm.status === "ok" ? gflops(r.flops, r.peerWasm.ms) : null,
        peerWebgpu: r.peerWebgpu.status === "ok" ? gflops(r.flops, r.peerWebgpu.ms) : null,
      },
      ratioVsWasm: ratio(r.peerWasm, r.ours),
      ratioVsWebgpu: ratio(r.peerWebgpu, r.ours),
    })),
  };
  await Deno.writeTextFile(`${base}.json`, JSON.stringify(json, null, 2) + "\n");
  let md = formatReport(env, rows, opts);
  if (opts.only.has("decoder")) {
    // Click latency on each WebGPU provider, in this run (bench/click_latency.ts).
    const click = await import("./click_latency.ts");
    const clickRows = await click.measureClickLatency(opts.quick ? 3 : 10);
    md += "\n" + click.formatClickLatency(clickRows);
    await Deno.writeTextFile(`${base}.click.json`, JSON.stringify(clickRows, null, 2) + "\n");
  }
  await Deno.writeTextFile(`${base}.md`, md);
  console.log(md);
  log(`wrote ${base}.json and ${base}.md in ${json.totalSeconds} s`);
  // onnxruntime-web is not loaded here, but GPU handles can keep the loop alive.
  Deno.exit(0);
}
