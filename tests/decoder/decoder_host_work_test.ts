/**
 * Host work per prompt (issue 14, item 2) on sam-tiny: a warm click creates no GPU buffers
 * (they come from the context's storage pool) and no bind groups (cached: the same buffers
 * as the click before), and the transformer's token chains are fused (no separate adds).
 * Buffers reused from the pool hold stale values: with every reused buffer filled with NaN
 * first, every fixture case still matches its goldens (no kernel relies on zero-filled output).
 */
import assert from "node:assert/strict";
import type { GpuContext } from "../../src/gpu/context.ts";
import type { DecoderPrompt } from "../../src/decoder/mask_decoder.ts";
import { fixtureDir } from "../util/fixtures.ts";
import { checkCaseResult, openDecoder } from "./decoder_fixture_check.ts";
import { loadFixtureCases } from "./fixture_cases.ts";

const dir = fixtureDir("sam-tiny")!;
const click: DecoderPrompt[] = [{ points: [[88, 53.5]], labels: [1], multimask: true }];
/**
 * Dispatches of one warm sam-tiny click (3 masks at 107x160): 71 before the fused LayerNorm
 * chains (two decoder layers: 9 adds folded into the norms' outputs).
 */
const CLICK_DISPATCHES = 62;

/** Counts createBuffer / createBindGroup on the device and the dispatch names (restored by the returned function). */
function watch(ctx: GpuContext) {
  const counts = { createBuffer: 0, createBindGroup: 0, names: [] as string[] };
  const device = ctx.device;
  const createBuffer = device.createBuffer, createBindGroup = device.createBindGroup;
  device.createBuffer = (d: GPUBufferDescriptor) => {
    counts.createBuffer++;
    return createBuffer.call(device, d);
  };
  device.createBindGroup = (d: GPUBindGroupDescriptor) => {
    counts.createBindGroup++;
    return createBindGroup.call(device, d);
  };
  const dispatch = ctx.dispatch;
  ctx.dispatch = function (spec, params, buffers, workgroups) {
    counts.names.push(spec.name);
    return dispatch.call(this, spec, params, buffers, workgroups);
  };
  const restore = () => {
    device.createBuffer = createBuffer;
    device.createBindGroup = createBindGroup;
    ctx.dispatch = dispatch;
  };
  return { counts, restore };
}

Deno.test("a warm click: no buffers or bind groups created, fused token chains, one readback", async () => {
  const { ctx, decoder, embedding } = await openDecoder(dir, "sam-tiny");
  const { counts, restore } = watch(ctx);
  try {
    const run = async () => {
      const before = { ...counts, names: counts.names.length, ...ctx.counters };
      const [r] = await decoder.predict(embedding, click, {
        originalSize: [107, 160],
        output: "masks",
      });
      assert.equal(r.masks?.length, 3);
      return {
        createBuffer: counts.createBuffer - before.createBuffer,
        createBindGroup: counts.createBindGroup - before.createBindGroup,
        names: counts.names.slice(before.names),
        dispatches: ctx.counters.dispatches - before.dispatches,
        readbacks: ctx.counters.readbacks - before.readbacks,
      };
    };
    const first = await run(); // makes the image side, pipelines and the pool's buffers
    assert.ok(first.createBuffer > 0);
    await run(); // buffers now come from the pool, in the order the next click takes them
    for (let k = 0; k < 3; k++) {
      const warm = await run();
      assert.equal(warm.createBuffer, 0, `warm click ${k}: buffers created`);
      assert.equal(warm.createBindGroup, 0, `warm click ${k}: bind groups created`);
      assert.equal(warm.readbacks, 1, `warm click ${k}: readbacks`);
      assert.equal(warm.dispatches, warm.names.length);
      assert.ok(
        warm.dispatches <= CLICK_DISPATCHES,
        `warm click ${k}: ${warm.dispatches} dispatches, expected at most ${CLICK_DISPATCHES}`,
      );
      // Every add of the token chains (and of the image side) is fused into a LayerNorm.
      assert.deepEqual(warm.names.filter((n) => n === "add_f32"), [], "separate adds");
      assert.equal(warm.names.filter((n) => n.startsWith("add_layer_norm")).length, 6);
    }
    assert.ok(ctx.pooledStorageBytes > 0, "the click's buffers wait in the pool");
  } finally {
    restore();
    decoder.dispose();
    embedding.destroy();
  }
});

Deno.test("buffers reused from the pool hold NaN first: every fixture case still matches its goldens", async () => {
  const { ctx, decoder, embedding } = await openDecoder(dir, "sam-tiny");
  const { cases, imageSizeHw } = await loadFixtureCases(dir);
  ctx.poisonReused = true;
  try {
    // Twice: the second round's buffers all come from the pool (filled with NaN).
    for (let round = 0; round < 2; round++) {
      for (const c of cases) {
        const results = await decoder.predict(embedding, c.prompts, {
          multimask: c.multimask,
          originalSize: imageSizeHw,
          output: "both",
        });
        results.forEach((r, b) =>
          checkCaseResult(
            `round ${round} ${c.name}[${b}]`,
            r,
            c,
            b,
            imageSizeHw,
            decoder.lowResSize,
          )
        );
      }
    }
  } finally {
    ctx.poisonReused = false;
    decoder.dispose();
    embedding.destroy();
  }
});
