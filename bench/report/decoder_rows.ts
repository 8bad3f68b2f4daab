/**
 * The decoder group: SAM's mask decoder at its real sizes (sam-mini's decoder is the real
 * one), one prompt and a batch of 64, masks upscaled to a 1200x1800 photo or low-res only,
 * ours against the official ONNX export on the peer. SAM 2.1's decoder is in sam2_rows.ts.
 */
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { readNpy } from "../../src/util/npy.ts";
import type { Prompt } from "../../src/types.ts";
import { OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadSam } from "../../src/weights/load.ts";
import type { PeerBackend } from "../peer/ort_peer.ts";
import { fixturePath, LABELS, ORIG_HW, oursPrompt } from "./cases.ts";
import { log } from "./env.ts";
import { flopsDecoder } from "./flops.ts";
import { firstLine, markSingle, type Measure, notMeasured, planRuns, type Row } from "./measure.ts";
import { type DecoderModule, importOurs, measureOursDecoder } from "./ours.ts";
import type { RunContext } from "./run_context.ts";

/** The decoder rows, and ours' ms per prompt (low-res only) for the AMG's estimate. */
export async function decoderRows(
  rc: RunContext,
): Promise<{ rows: Row[]; perPromptMs: number | null }> {
  const { ctx, opts, software, graphs, peer } = rc;
  const rows: Row[] = [];
  const arch = OFFICIAL_ARCHS.vit_b; // the decoder is the same for B, L, H (and sam-mini)
  const flops1 = flopsDecoder(arch, { prompts: 1, sparseTokens: 3 });
  const flops64 = flopsDecoder(arch, { prompts: 64, sparseTokens: 3 });
  const decGraph = graphs.get("decoder");
  const lowresNote =
    "the official ONNX export always resizes the masks to orig_im_size (no low-res-only output)";
  // Peer: one prompt first, then the batch when its estimate fits the budget.
  if (opts.peer && decGraph) {
    for (const backend of ["wasm", "webgpu"] as const) {
      await peer.run(backend, decGraph, [{
        name: "decoder_1p_upscaled",
        decoder: { prompts: 1, origHw: ORIG_HW },
        warmup: opts.warmup,
        runs: backend === "webgpu" && software ? 1 : opts.decoderRuns,
      }]);
      const one = peer.okMs(backend, "decoder_1p_upscaled");
      const plan = one === null
        ? null
        : planRuns(software, one * 64, opts.warmup, opts.decoderRuns);
      if (plan !== null && plan.totalMs <= opts.budgetMs) {
        await peer.run(backend, decGraph, [{
          name: "decoder_64p_upscaled",
          decoder: { prompts: 64, origHw: ORIG_HW },
          warmup: plan.warmup,
          runs: plan.runs,
        }]);
        if (plan.single) peer.singleRuns.add(`${backend}/decoder_64p_upscaled`);
      } else {
        peer.results.set(`${backend}/decoder_64p_upscaled`, {
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
    decGraph || !opts.peer ? peer.of(backend, id) : peerMissing;

  // Ours: SamDecoder on sam-mini (its decoder is the real one: 256 wide, MLP 2048, a 64x64
  // embedding), on the fixture's embedding, like the peer's given embedding. allTokens: all
  // 4 masks decoded and resized, float logits read back: what the official export returns.
  const ours = new Map<string, Measure>();
  const dec = await importOurs<DecoderModule>("src/decoder/mask_decoder.ts", ["SamDecoder"]);
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
  const perPromptMs = (["decoder_64p_lowres", "decoder_1p_lowres"] as const)
    .map((id) => ours.get(id))
    .map((m) => m?.status === "ok" ? (m.perPromptMs ?? m.ms) : null)
    .find((x) => x !== null) ?? null;
  return { rows, perPromptMs };
}
