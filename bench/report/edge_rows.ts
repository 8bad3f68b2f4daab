/**
 * The edge group (#18): MobileSAM's TinyViT-5M and SlimSAM-77's encoder at their released
 * shapes, ours with random weights against onnxruntime-web on graphs at the same shapes
 * (bench/peer/onnx_graphs.ts makes them from the fixtures' graphs). In the table they sit with
 * the encoders, beside ViT-B.
 *
 * On a software adapter ours runs once when its estimate (from sam-mini's throughput, when the
 * encoder group measured it) is over a minute, and not at all beyond the per-case budget.
 */
import { edgePeerGraphs } from "../peer/onnx_graphs.ts";
import type { PeerBackend, PeerGraph } from "../peer/ort_peer.ts";
import { LABELS } from "./cases.ts";
import {
  randomMobileSamEncoder,
  randomSlimSam77Encoder,
  SLIMSAM_77,
  TINYVIT_5M,
} from "./edge_models.ts";
import { log } from "./env.ts";
import { flopsEncoder, flopsTinyVit } from "./flops.ts";
import {
  firstLine,
  markSingle,
  type Measure,
  notMeasured,
  planRuns,
  type Row,
  SOFTWARE_SINGLE_RUN_MS,
} from "./measure.ts";
import { type EmbeddingEncoder, measureOursImageEncoder } from "./ours.ts";
import type { RunContext } from "./run_context.ts";

/** The edge encoders: id, FLOPs, how ours is built. */
export const EDGE_CASES = [
  {
    id: "encoder_mobilesam",
    graph: "mobilesam",
    flops: flopsTinyVit(TINYVIT_5M),
    make: randomMobileSamEncoder,
  },
  {
    id: "encoder_slimsam_77",
    graph: "slimsam_77",
    flops: flopsEncoder(SLIMSAM_77),
    make: randomSlimSam77Encoder,
  },
] as const;

/**
 * The edge rows. `oursGflops`: ours' encoder throughput measured earlier in this report
 * (sam-mini), for the estimate on a software adapter; null when none ran.
 */
export async function edgeRows(rc: RunContext, oursGflops: number | null): Promise<Row[]> {
  const { ctx, opts, software, adapter } = rc;
  const runner = rc.peer;
  const dir = await Deno.makeTempDir({ prefix: "wgsam-edge-graphs-" });
  const rows: Row[] = [];
  try {
    const graphs = opts.peer ? await edgePeerGraphs(dir) : null;
    for (const c of EDGE_CASES) {
      // Ours.
      let ours: Measure;
      const estimateMs = software && oursGflops !== null ? c.flops / (oursGflops * 1e6) : null;
      const plan = software
        ? planRuns(true, estimateMs ?? SOFTWARE_SINGLE_RUN_MS + 1, opts.warmup, opts.encoderRuns)
        : { warmup: opts.warmup, runs: opts.encoderRuns, totalMs: 0, single: false };
      if (estimateMs !== null && plan.totalMs > opts.budgetMs) {
        ours = notMeasured(
          `ours: skipped: estimated ${(plan.totalMs / 1000).toFixed(0)} s at sam-mini's ` +
            `${oursGflops!.toFixed(2)} GFLOP/s exceeds the per-case budget of ${
              opts.budgetMs / 1000
            } s`,
        );
      } else {
        try {
          log(`ours: ${c.id} (random weights)`);
          let enc: EmbeddingEncoder;
          try {
            enc = c.make(ctx);
          } catch (e) {
            throw new Error(`building the encoder: ${firstLine(e)}`);
          }
          ours = markSingle(
            await measureOursImageEncoder(ctx, enc, 1024, plan.warmup, plan.runs),
            plan,
          );
        } catch (e) {
          ours = notMeasured(`ours: failed: ${firstLine(e)}`);
        }
      }
      // The peer.
      const peer: Record<PeerBackend, Measure> = { wasm: runner.noPeer, webgpu: runner.noPeer };
      if (graphs) {
        const graph: PeerGraph | string = graphs[c.graph];
        if (typeof graph === "string") {
          peer.wasm = peer.webgpu = notMeasured(`peer: no graph: ${graph}`);
        } else {
          await runner.run("wasm", graph, [{
            name: c.id,
            warmup: opts.warmup,
            runs: opts.encoderRuns,
          }]);
          peer.wasm = runner.of("wasm", c.id);
          if (software) {
            const dec = runner.okMs("webgpu", "decoder_1p_upscaled");
            peer.webgpu = notMeasured(
              `peer WebGPU: not run on a software adapter (${adapter}): ${
                dec === null
                  ? "the decoder case did not run on this EP in this report (on llvmpipe it ran " +
                    "SAM's 3.6-GFLOP decoder at 0.49 GFLOP/s: bench/results/" +
                    "llvmpipe-llvm-15-0-6-256-bits.md)"
                  : `the 3.6-GFLOP decoder took ${(dec / 1000).toFixed(0)} s a run on this EP here`
              }; this encoder is ${(c.flops / 1e9).toFixed(0)} GFLOP`,
            );
          } else {
            await runner.run("webgpu", graph, [{
              name: c.id,
              warmup: opts.warmup,
              runs: opts.encoderRuns,
            }]);
            peer.webgpu = runner.of("webgpu", c.id);
          }
        }
      }
      rows.push({
        id: c.id,
        group: "encoder",
        label: LABELS[c.id],
        flops: c.flops,
        ours,
        peerWasm: peer.wasm,
        peerWebgpu: peer.webgpu,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return rows;
}
