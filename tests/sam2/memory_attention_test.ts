import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { inferSam2MemoryArch } from "../../src/sam2/memory_arch.ts";
import { MemoryAttention } from "../../src/sam2/memory_attention.ts";
import { loadSam2Fixture, sam2Files } from "./fixture_files.ts";
import { memoryAttention64 } from "./video_ref.ts";

const ctx = await getContext();
const have = sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json"], "memory attention");
const haveMini = sam2Files(
  "sam2-mini",
  ["sam2-mini.pt", "fixture.json"],
  "memory attention (real width)",
);

/** Random inputs through `ma` and the float64 reference; returns the worst error. */
async function compareRandom(
  ma: MemoryAttention,
  // deno-lint-ignore no-explicit-any
  sd: any,
  N: number,
  frames: number,
  ptrs: number,
  label: string,
  tol = 5e-6,
): Promise<number> {
  const C = ma.arch.memoryAttention.dModel, Ckv = ma.arch.memoryAttention.kvInDim;
  const ptrTokens = ptrs * (C / Ckv);
  const M = frames * N + ptrTokens;
  const seed = frames * 10 + ptrs + N;
  const curr = randomArray(N * C, seed, 1);
  const currPos = randomArray(N * C, seed + 1, 1);
  const memory = randomArray(M * Ckv, seed + 2, 1);
  const memoryPos = randomArray(M * Ckv, seed + 3, 1);
  const out = ma.forward(
    tensorFrom(ctx, curr, [N, C]),
    tensorFrom(ctx, currPos, [N, C]),
    tensorFrom(ctx, memory, [M, Ckv]),
    tensorFrom(ctx, memoryPos, [M, Ckv]),
    ptrTokens,
  );
  assert.deepEqual(out.shape, [N, C]);
  const ref = memoryAttention64(sd, 1, curr, currPos, memory, memoryPos, C, Ckv, ptrTokens);
  const r = assertClose(await out.read(), ref, {
    atol: tol,
    rtol: tol,
    shape: [N, C],
    label: `${label}: ${frames} memories + ${ptrs} pointers`,
  });
  console.log(
    `${label}, ${frames} memories + ${ptrs} pointers: max abs error ${r.maxAbs.toExponential(2)}`,
  );
  return r.maxAbs;
}

Deno.test({
  name:
    "sam2-tiny MemoryAttention (2 layers, RoPE self/cross attention, object-pointer tokens) matches a float64 reference of the official forward",
  ignore: !have,
  async fn() {
    const { sd, fixture } = await loadSam2Fixture("sam2-tiny");
    const arch = inferSam2MemoryArch(sd);
    const fa = fixture.architecture.memory_attention;
    assert.equal(arch.memoryAttention.dModel, fa.d_model);
    assert.equal(arch.memoryAttention.numLayers, fa.num_layers);
    assert.equal(arch.memoryAttention.dimFeedforward, fa.dim_feedforward);
    assert.equal(arch.memoryAttention.kvInDim, fa.kv_in_dim);
    assert.equal(arch.memoryAttention.selfAttnHeads, fa.self_attn_heads);
    assert.equal(arch.memoryAttention.crossAttnHeads, fa.cross_attn_heads);
    const C = arch.memoryAttention.dModel, Ckv = arch.memoryAttention.kvInDim;
    const s = fixture.architecture.image_size / 16, N = s * s;
    const ma = new MemoryAttention(ctx, sd, arch);
    // [memory frames, object pointers]: one pointer is C / Ckv tokens of Ckv channels.
    // Frame 1 of a session (1 memory, 1 pointer); 2 memories and 3 pointers; no pointers.
    const cases = [[1, 1], [2, 3], [1, 0]];
    for (const [frames, ptrs] of cases) {
      await compareRandom(ma, sd, N, frames, ptrs, "attention kernel");
    }
    // The GEMM path (real models' head dim 256) on the same weights, in uneven query blocks.
    const wide = new MemoryAttention(ctx, sd, arch, {
      forceWide: true,
      maxBlockBytes: 100 * 4 * (2 * N + 6),
    });
    await compareRandom(wide, sd, N, 2, 3, "GEMM path, 100-row blocks");
    wide.dispose();
    // Spatial memory tokens must be whole frames; pointer counts in range.
    const x = emptyTensor(ctx, [N, C]);
    assert.throws(
      () => ma.forward(x, x, emptyTensor(ctx, [N + 3, Ckv]), emptyTensor(ctx, [N + 3, Ckv]), 2),
      /whole frames/,
    );
    assert.throws(
      () => ma.forward(x, x, emptyTensor(ctx, [N, Ckv]), emptyTensor(ctx, [N, Ckv]), N + 1),
      /numObjPtrTokens/,
    );
    ma.dispose();
  },
});

Deno.test({
  name:
    "sam2-mini MemoryAttention (real width: 1 head of 256, memory dim 64) on an 8x8 grid matches the float64 reference",
  ignore: !haveMini,
  async fn() {
    const { sd, fixture } = await loadSam2Fixture("sam2-mini");
    const arch = inferSam2MemoryArch(sd);
    const fa = fixture.architecture.memory_attention;
    assert.equal(arch.memoryAttention.dModel, 256);
    assert.equal(arch.memoryAttention.kvInDim, fa.kv_in_dim);
    assert.equal(arch.memoryAttention.numLayers, fa.num_layers);
    // RoPEAttention takes the grid from the query count, so a small grid exercises the real
    // weights cheaply; 1 pointer = 256 / 64 = 4 tokens.
    const ma = new MemoryAttention(ctx, sd, arch);
    await compareRandom(ma, sd, 64, 2, 1, "sam2-mini");
    ma.dispose();
  },
});
