/**
 * The pure parts of bench/report/: adapter slug, ratio, the markdown table, FLOP counts
 * (checked against hand counts and the published ~487 GMACs of ViT-B), argument parsing and
 * the target verdicts. No GPU.
 */
import assert from "node:assert/strict";
import { flopsDecoder, flopsEncoder } from "../../bench/report/flops.ts";
import { adapterSlug, formatTable } from "../../bench/report/format.ts";
import {
  isSoftwareAdapter,
  type Measure,
  notMeasured,
  planRuns,
  ratio,
  type Row,
  SOFTWARE_SINGLE_RUN_MS,
} from "../../bench/report/measure.ts";
import { parseArgs } from "../../bench/report/options.ts";
import { judgeTargets } from "../../bench/report/targets.ts";
import { OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import type { SamArch } from "../../src/weights/types.ts";

const ok = (ms: number, extra: Partial<Measure & { status: "ok" }> = {}): Measure => ({
  status: "ok",
  ms,
  runsMs: [ms],
  warmupMs: [],
  timing: "wall+readback",
  ...extra,
});

Deno.test("adapterSlug: file-name safe, stable, bounded", () => {
  assert.equal(adapterSlug("llvmpipe (LLVM 15.0.6, 256 bits)"), "llvmpipe-llvm-15-0-6-256-bits");
  assert.equal(adapterSlug("NVIDIA H100 80GB HBM3"), "nvidia-h100-80gb-hbm3");
  assert.equal(adapterSlug("  ..  "), "unknown-adapter");
  const long = adapterSlug("x".repeat(50) + " " + "y".repeat(50));
  assert.ok(long.length <= 64 && !long.endsWith("-"), long);
});

Deno.test("isSoftwareAdapter", () => {
  assert.equal(isSoftwareAdapter("llvmpipe (LLVM 15.0.6, 256 bits)"), true);
  assert.equal(isSoftwareAdapter("SwiftShader Device"), true);
  assert.equal(isSoftwareAdapter("NVIDIA H100 80GB HBM3"), false);
});

Deno.test("ratio: peer ms / ours ms, only when both ran", () => {
  assert.equal(ratio(ok(50), ok(10)), 5);
  assert.equal(ratio(ok(5), ok(10)), 0.5);
  assert.equal(ratio(notMeasured("x"), ok(10)), null);
  assert.equal(ratio(ok(10), notMeasured("x")), null);
});

Deno.test("formatTable: cells, GFLOP/s, per prompt, ratios and numbered notes", () => {
  const rows: Row[] = [
    {
      id: "a",
      group: "encoder",
      label: "enc",
      flops: 2e9,
      ours: ok(100, { gpuMs: 80 }),
      peerWasm: ok(1000),
      peerWebgpu: notMeasured("why"),
    },
    {
      id: "b",
      group: "decoder",
      label: "dec",
      flops: null,
      ours: notMeasured("why"),
      peerWasm: ok(64, { perPromptMs: 1 }),
      peerWebgpu: notMeasured("other"),
    },
  ];
  const md = formatTable(rows).split("\n");
  assert.match(md[0], /^\| case \| GFLOP \| ours ms \| ours GPU ms \| peer wasm ms/);
  // 2e9 FLOPs in 100 ms = 20 GFLOP/s; 1000 ms = 2.0; wasm/ours = 10x.
  assert.equal(
    md[2],
    "| enc | 2.0 | 100 (20.0 GFLOP/s) | 80.0 | 1000 (2.0 GFLOP/s) | n/m [1] | 10x | – |",
  );
  // The same reason gets the same note number.
  assert.equal(md[3], "| dec | – | n/m [1] | – | 64.0 (1.00/prompt) | n/m [2] | – | – |");
  assert.deepEqual(md.slice(4), ["", "Not measured:", "", "1. why", "2. other"]);
});

/** A hand count of one ViT block's matrix products, the way the official code runs them. */
function handBlock(C: number, M: number, rows: number, nWin: number, L: number, span: number) {
  const qkv = 2 * rows * C * 3 * C;
  const scores = 2 * nWin * L * L * C, av = 2 * nWin * L * L * C;
  const relPos = 2 * nWin * L * span * C * 2;
  const proj = 2 * rows * C * C;
  const mlp = 2 * 4096 * C * M * 2;
  return qkv + scores + av + relPos + proj + mlp;
}

Deno.test("flopsEncoder: hand count of ViT-B, and ViT-B near the published 487 GMACs", () => {
  const a = OFFICIAL_ARCHS.vit_b;
  const C = 768, M = 3072, D = 256;
  const windowed = handBlock(C, M, 25 * 196, 25, 196, 14); // 64 padded to 70: 5x5 windows
  const global = handBlock(C, M, 4096, 1, 4096, 64);
  const expected = 2 * 4096 * C * 768 + 8 * windowed + 4 * global + 2 * 4096 * C * D +
    2 * 4096 * D * D * 9;
  assert.equal(flopsEncoder(a), expected);
  const gmacs = flopsEncoder(a) / 2e9;
  assert.ok(gmacs > 480 && gmacs < 495, `ViT-B ${gmacs} GMACs`);
  assert.ok(flopsEncoder(OFFICIAL_ARCHS.vit_l) > 3 * flopsEncoder(a));
  assert.ok(flopsEncoder(OFFICIAL_ARCHS.vit_h) > 1.9 * flopsEncoder(OFFICIAL_ARCHS.vit_l));
});

Deno.test("flopsDecoder: linear in prompts, dominated by the image-side projections", () => {
  const a: SamArch = OFFICIAL_ARCHS.vit_b;
  const one = flopsDecoder(a, { prompts: 1, sparseTokens: 3 });
  assert.equal(flopsDecoder(a, { prompts: 64, sparseTokens: 3 }), 64 * one);
  // Image-side (4096 rows) projections D=256 -> 128: k and v in three token->image
  // attentions, q and out in two image->token ones: 10 products of 2*4096*256*128 FLOPs.
  const imageProj = 10 * 2 * 4096 * 256 * 128;
  const upscale = 2 * 128 * 128 * 64 * 256 + 2 * 256 * 256 * 32 * 64;
  assert.ok(one > imageProj + upscale, `${one}`);
  assert.ok(one < 1.3 * (imageProj + upscale), `${one}`);
  assert.ok(flopsDecoder(a, { prompts: 1, sparseTokens: 4 }) > one);
});

Deno.test("parseArgs: defaults, --quick, --only, bad values", () => {
  const d = parseArgs([]);
  assert.deepEqual([...d.only], [
    "encoder",
    "edge",
    "sam2",
    "decoder",
    "amg",
    "variants",
    "page",
  ]);
  assert.deepEqual(d.models, ["sam-tiny", "sam-mini"]);
  assert.equal(d.tune, false);
  assert.equal(d.tag, null);
  assert.equal(d.pageModel, "sam-tiny");
  assert.equal(d.quick, false);
  assert.equal(d.peer, true);
  const q = parseArgs(["--quick", "--only", "decoder,amg", "--no-peer"]);
  assert.deepEqual([...q.only], ["decoder", "amg"]);
  assert.equal(q.encoderRuns, 1);
  assert.equal(q.peer, false);
  assert.equal(parseArgs(["--runs", "7"]).decoderRuns, 7);
  assert.throws(() => parseArgs(["--only", "encoder,foo"]), /--only takes/);
  assert.throws(() => parseArgs(["--runs", "0"]), /positive integer/);
  assert.throws(() => parseArgs(["--frobnicate"]), /unknown option/);
  assert.throws(() => parseArgs(["--only"]), /needs a value/);
  const n = parseArgs([
    "--only",
    "edge,variants,page",
    "--models",
    "sam-mini, mobilesam",
    "--tune",
  ]);
  assert.deepEqual([...n.only], ["edge", "variants", "page"]);
  assert.deepEqual(n.models, ["sam-mini", "mobilesam"]);
  assert.equal(n.tune, true);
  assert.equal(parseArgs(["--tag", "edge-1"]).tag, "edge-1");
  assert.throws(() => parseArgs(["--tag", "../x"]), /--tag takes/);
  assert.throws(() => parseArgs(["--models", ","]), /--models needs a value/);
  assert.equal(parseArgs(["--quick"]).pageClicks, 2);
  assert.equal(parseArgs(["--runs", "4"]).pageClicks, 4);
});

Deno.test("judgeTargets: verdicts follow the numbers, never the hopes", () => {
  const row = (id: string, ours: Measure, peerWebgpu: Measure): Row => ({
    id,
    group: "decoder",
    label: id,
    flops: 1,
    ours,
    peerWasm: notMeasured("-"),
    peerWebgpu,
  });
  const slow = judgeTargets([
    row("decoder_1p_upscaled", ok(2500), ok(45000)),
    row("encoder_vit_b", notMeasured("software adapter"), notMeasured("x")),
  ], "llvmpipe (LLVM 15.0.6, 256 bits)");
  // On a software adapter nothing is judged, but what was measured is said.
  assert.deepEqual(slow.map((t) => t.verdict), Array(3).fill("not measured here"));
  assert.match(slow[0].detail, /software adapter.*ours 2500 ms per prompt/);
  assert.match(slow[2].detail, /decoder_1p_upscaled: 18x/);
  const hw = (adapter: string) =>
    judgeTargets([row("decoder_1p_upscaled", ok(2500), ok(45000))], adapter);
  const slowGpu = hw("NVIDIA GeForce GTX 1050");
  assert.equal(slowGpu[0].verdict, "not met");
  assert.equal(slowGpu[1].verdict, "not measured here");
  assert.equal(slowGpu[2].verdict, "met"); // 45000 / 2500 = 18x
  const gpu = judgeTargets([
    row("decoder_64p_upscaled", ok(100, { perPromptMs: 100 / 64 }), ok(150)),
    row("encoder_vit_b", ok(50, { gpuMs: 39 }), notMeasured("x")),
  ], "NVIDIA H100 80GB HBM3");
  assert.equal(gpu[0].verdict, "met");
  assert.equal(gpu[1].verdict, "met");
  assert.equal(gpu[2].verdict, "not met"); // 1.5x
});

Deno.test("planRuns: one cold run only for long cases on a software adapter", () => {
  const long = SOFTWARE_SINGLE_RUN_MS + 1;
  assert.deepEqual(planRuns(true, long, 1, 5), {
    warmup: 0,
    runs: 1,
    totalMs: long,
    single: true,
  });
  // At or under the threshold, and on a hardware adapter at any length: the configured runs.
  assert.deepEqual(planRuns(true, 1000, 1, 5), {
    warmup: 1,
    runs: 5,
    totalMs: 6000,
    single: false,
  });
  assert.deepEqual(planRuns(false, 10 * long, 2, 3), {
    warmup: 2,
    runs: 3,
    totalMs: 50 * long,
    single: false,
  });
});

Deno.test("formatTable: a single cold run is marked and explained", () => {
  const row = (id: string, ours: Measure): Row => ({
    id,
    group: "encoder",
    label: id,
    flops: 1e9,
    ours,
    peerWasm: notMeasured("n/a"),
    peerWebgpu: notMeasured("n/a"),
  });
  const marked = formatTable([row("a", ok(1000, { detail: { singleColdRun: true } }))]);
  assert.match(marked, /\| a \| 1\.0 \| 1000 \(1\.0 GFLOP\/s\) ¹ \|/);
  assert.match(marked, /¹ one run, no warm-up/);
  const peerOnly = formatTable([{
    ...row("c", ok(10)),
    peerWebgpu: ok(90000, { detail: { singleColdRun: true } }),
  }]);
  assert.match(peerOnly, /90000 \(0\.011 GFLOP\/s\) ¹/);
  assert.match(peerOnly, /¹ one run, no warm-up/, "a marked peer cell gets the footnote too");
  const plain = formatTable([row("b", ok(1000))]);
  assert.doesNotMatch(plain, /¹/);
});
