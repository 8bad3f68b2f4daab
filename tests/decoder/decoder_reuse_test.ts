/**
 * The decoder's prompt-independent work (src without a mask input, layer 0's image
 * projections) is made once per image embedding: within a batch, across calls, never stale,
 * bounded, and the same answer as the per-prompt path. Dispatches are watched through
 * GpuContext.dispatch: which kernels read the embedding or layer 0's image-side weights.
 */
import assert from "node:assert/strict";
import type { DecoderPrompt, DecoderResult } from "../../src/decoder/mask_decoder.ts";
import type { GpuContext, KernelSpec } from "../../src/gpu/context.ts";
import { type Tensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, loadGolden } from "../util/fixtures.ts";
import { checkCaseResult, openDecoder } from "./decoder_fixture_check.ts";
import { loadFixtureCases } from "./fixture_cases.ts";

const dir = fixtureDir("sam-tiny")!;
const hw: [number, number] = [107, 160];
/** The weights that only layer 0's image side reads (its projections of src). */
const LAYER0_IMAGE_WEIGHTS = [
  "cross_attn_token_to_image.k_proj",
  "cross_attn_token_to_image.v_proj",
  "cross_attn_image_to_token.q_proj",
].map((n) => `mask_decoder.transformer.layers.0.${n}.weight`);

interface Dispatch {
  name: string;
  buffers: readonly GPUBuffer[];
}

/** Records every dispatch of `run` (restored afterwards). */
async function watch<T>(ctx: GpuContext, run: () => Promise<T>) {
  const calls: Dispatch[] = [];
  const dispatch = ctx.dispatch;
  ctx.dispatch = function (spec: KernelSpec, params, buffers, workgroups) {
    calls.push({ name: spec.name, buffers: [...buffers] });
    return dispatch.call(this, spec, params, buffers, workgroups);
  };
  try {
    return { result: await run(), calls };
  } finally {
    ctx.dispatch = dispatch;
  }
}

/** Dispatches that bind one of layer 0's image-side weights. */
const layer0 = (calls: Dispatch[]) =>
  calls.filter((c) => c.buffers.some((b) => LAYER0_IMAGE_WEIGHTS.includes(b.label)));
const reading = (calls: Dispatch[], t: Tensor) => calls.filter((c) => c.buffers.includes(t.buffer));

function assertSame(a: DecoderResult[], b: DecoderResult[], label: string) {
  assert.equal(a.length, b.length);
  a.forEach((r, i) => {
    assertClose(r.lowRes, b[i].lowRes, { atol: 0, label: `${label} [${i}] low-res` });
    assertClose(r.iou, b[i].iou, { atol: 0, label: `${label} [${i}] IoU` });
  });
}

const onePoint: DecoderPrompt[] = [{ points: [[88, 53.5]], labels: [1], multimask: true }];

Deno.test("one batch mixing mask and no-mask prompts: layer 0's image side is projected once, results equal the per-prompt path and the goldens", async () => {
  const { ctx, decoder, embedding, arch } = await openDecoder(dir, "sam-tiny");
  const { cases } = await loadFixtureCases(dir);
  // Every case's prompts in one call; mask_refine (2 points + mask) has the token count of
  // point2_single, so the mask and no-mask prompts would share a pass by token count alone.
  const prompts: DecoderPrompt[] = [];
  const owner: { c: (typeof cases)[number]; b: number }[] = [];
  for (const c of cases) {
    c.prompts.forEach((p, b) => {
      prompts.push({ ...p, multimask: c.multimask });
      owner.push({ c, b });
    });
  }
  assert.ok(prompts.some((p) => p.maskInput) && prompts.some((p) => !p.maskInput));
  const hwTokens = (arch.imgSize / arch.patchSize) ** 2 * arch.promptEmbedDim * 4;
  try {
    const opts = { originalSize: hw, output: "both" as const };
    const shared = await watch(ctx, () => decoder.predict(embedding, prompts, opts));
    shared.result.forEach((r, i) => {
      const { c, b } = owner[i];
      checkCaseResult(`${c.name}[${b}]`, r, c, b, hw, decoder.lowResSize);
    });
    // Each weight twice, on one (HW, D) src each time: once for the four passes without a
    // mask input (not once per pass, nor per prompt), once in the mask prompt's own pass.
    const l0 = layer0(shared.calls);
    assert.equal(l0.length, 2 * LAYER0_IMAGE_WEIGHTS.length, l0.map((c) => c.name).join(", "));
    for (const c of l0) assert.ok(c.buffers.every((b) => b.size <= hwTokens), c.name);

    const perPrompt = await watch(
      ctx,
      () => decoder.predict(embedding, prompts, { ...opts, reuseImage: false }),
    );
    // The per-prompt path projects in every pass (5 groups), over each pass's prompts.
    assert.equal(layer0(perPrompt.calls).length, 5 * LAYER0_IMAGE_WEIGHTS.length);
    assert.ok(layer0(perPrompt.calls).some((c) => c.buffers.some((b) => b.size > hwTokens)));
    assertSame(shared.result, perPrompt.result, "shared vs per-prompt");
  } finally {
    decoder.dispose();
    embedding.destroy();
  }
});

Deno.test("a second call on the same embedding reads neither the embedding nor layer 0's image weights; releaseEmbedding makes the next recompute", async () => {
  const { ctx, decoder, embedding } = await openDecoder(dir, "sam-tiny");
  const opts = { originalSize: hw, output: "none" as const };
  try {
    const first = await watch(ctx, () => decoder.predict(embedding, onePoint, opts));
    assert.ok(reading(first.calls, embedding).length > 0);
    assert.equal(layer0(first.calls).length, 3);
    assert.ok(decoder.hasImageCached(embedding));

    const second = await watch(ctx, () => decoder.predict(embedding, onePoint, opts));
    assert.equal(reading(second.calls, embedding).length, 0);
    assert.equal(layer0(second.calls).length, 0);
    // Transpose, + no_mask_embed, + dense PE, three projections.
    assert.equal(first.calls.length - second.calls.length, 6);
    assertSame(second.result, first.result, "second call");

    // A view of the same buffer is the same embedding.
    const view = embedding.reshape([embedding.size]);
    const third = await watch(ctx, () => decoder.predict(view, onePoint, opts));
    assert.equal(layer0(third.calls).length, 0);

    assert.equal(decoder.releaseEmbedding(embedding), true);
    assert.equal(decoder.releaseEmbedding(embedding), false);
    assert.ok(!decoder.hasImageCached(embedding));
    const again = await watch(ctx, () => decoder.predict(embedding, onePoint, opts));
    assert.ok(reading(again.calls, embedding).length > 0);
    assert.equal(layer0(again.calls).length, 3);
    assertSame(again.result, first.result, "after release");
  } finally {
    decoder.dispose();
    embedding.destroy();
  }
});

Deno.test("image work is never stale, at most 2 embeddings are kept, an evicted entry lives while a call uses it, dispose frees all", async () => {
  const { ctx, decoder, embedding } = await openDecoder(dir, "sam-tiny");
  const golden = (await loadGolden(dir, "image_embeddings.npy")).data as Float32Array;
  const scaled = (k: number) =>
    tensorFrom(ctx, golden.map((v) => v * k), embedding.shape, `embedding x${k}`);
  const opts = { originalSize: hw, output: "none" as const };
  const fresh = (e: Tensor, p = onePoint) => decoder.predict(e, p, { ...opts, reuseImage: false });
  const made: Tensor[] = [];
  try {
    const a = await decoder.predict(embedding, onePoint, opts);
    // A new embedding after the old one is gone (its buffer may be the old memory).
    decoder.releaseEmbedding(embedding);
    embedding.destroy();
    const b = scaled(0.5);
    made.push(b);
    const fromB = await decoder.predict(b, onePoint, opts);
    assertSame(fromB, await fresh(b), "new embedding");
    assert.ok(fromB[0].lowRes.some((v, i) => Math.abs(v - a[0].lowRes[i]) > 1e-3));
    // Destroyed without releaseEmbedding (a caller that forgot): the next embedding is still
    // a new buffer, never served the old one's work.
    const gone = scaled(0.6);
    await decoder.predict(gone, onePoint, opts);
    gone.destroy();
    const next = scaled(0.7);
    made.push(next);
    assertSame(await decoder.predict(next, onePoint, opts), await fresh(next), "after a destroy");

    const c = scaled(0.8), d = scaled(1.2);
    made.push(c, d);
    await decoder.predict(c, onePoint, opts);
    await decoder.predict(d, onePoint, opts);
    assert.equal(decoder.cachedImages, 2);
    assert.ok(!decoder.hasImageCached(b) && decoder.hasImageCached(c));

    // b in two groups (two passes, an await between): c and d evict b's entry meanwhile.
    const two: DecoderPrompt[] = [...onePoint, { box: [16, 21.4, 112, 90.95] }];
    const refB = await fresh(b, two);
    const [busy] = await Promise.all([
      decoder.predict(b, two, opts),
      decoder.predict(c, onePoint, opts),
      decoder.predict(d, onePoint, opts),
    ]);
    assert.ok(!decoder.hasImageCached(b));
    assertSame(busy, refB, "evicted while in use");
    await ctx.sync();
  } finally {
    decoder.dispose();
    assert.equal(decoder.cachedImages, 0);
    for (const t of made) t.destroy();
  }
});
