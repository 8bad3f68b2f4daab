/**
 * The encoder group: SAM's ViT encoders (sam-mini from its fixture; ViT-B, -L, -H at their
 * official shapes with random weights) against the peer's shape-only graphs. The light
 * encoders are in edge_rows.ts, SAM 2.1's in sam2_rows.ts. On a software adapter each big encoder runs only when the
 * throughput of the last one that ran says it fits the per-case budget.
 */
import { OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadSam } from "../../src/weights/load.ts";
import type { SamArch } from "../../src/weights/types.ts";
import type { PeerBackend } from "../peer/ort_peer.ts";
import { fixturePath, LABELS } from "./cases.ts";
import { log } from "./env.ts";
import { flopsDecoder, flopsEncoder } from "./flops.ts";
import {
  firstLine,
  gflops,
  markSingle,
  type Measure,
  notMeasured,
  planRuns,
  type Row,
} from "./measure.ts";
import { type EncoderModule, importOurs, measureOursEncoder, randomStateDict } from "./ours.ts";
import type { RunContext } from "./run_context.ts";

export async function encoderRows(rc: RunContext): Promise<Row[]> {
  const { ctx, opts, software, adapter, graphs } = rc;
  const runner = rc.peer;
  const rows: Row[] = [];
  const enc = await importOurs<EncoderModule>("src/encoder/image_encoder.ts", [
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
  const wgpuDecoderMs = runner.okMs("webgpu", "decoder_1p_upscaled");
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
    if (!opts.peer) peer.wasm = peer.webgpu = runner.noPeer;
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
        await runner.run("wasm", graph, [{
          name: caseId,
          warmup: opts.warmup,
          runs: opts.encoderRuns,
        }]);
        peer.wasm = runner.of("wasm", caseId);
        const ms = runner.okMs("wasm", caseId);
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
        await runner.run("webgpu", graph, [{
          name: caseId,
          warmup: opts.warmup,
          runs: opts.encoderRuns,
        }]);
        peer.webgpu = runner.of("webgpu", caseId);
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
  return rows;
}

function flops1Dec(): number {
  return flopsDecoder(OFFICIAL_ARCHS.vit_b, { prompts: 1, sparseTokens: 3 });
}
