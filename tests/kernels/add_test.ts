import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { add } from "../../src/kernels/add.ts";
import assert from "node:assert/strict";

function addRef(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => x + b[i]);
}

Deno.test("add matches the CPU reference, odd sizes and a grid over 65535 workgroups", async () => {
  const ctx = await getContext();
  // 65535 * 256 + 3 elements forces the 2-D workgroup grid.
  for (const n of [1, 257, 1000003, 65535 * 256 + 3]) {
    const a = randomArray(n, 1), b = randomArray(n, 2);
    const got = await add(ctx, tensorFrom(ctx, a, [n]), tensorFrom(ctx, b, [n])).read();
    assertClose(got, addRef(a, b), { atol: 0, label: `add n=${n}` });
  }
});

Deno.test("add broadcasts b over a's leading dims (b.size divides a.size)", async () => {
  const ctx = await getContext();
  const a = randomArray(4 * 3 * 5, 3);
  const ta = tensorFrom(ctx, a, [4, 3, 5]);
  // A bias [5] over tokens, a [3, 5] table over a batch of 4, a scalar [1].
  for (const bShape of [[5], [3, 5], [1]]) {
    const nb = bShape.reduce((p, q) => p * q);
    const b = randomArray(nb, 10 + nb);
    const got = await add(ctx, ta, tensorFrom(ctx, b, bShape)).read();
    assertClose(got, a.map((v, i) => Math.fround(v + b[i % nb])), {
      atol: 0,
      shape: [4, 3, 5],
      label: `add [4, 3, 5] + [${bShape}]`,
    });
  }
});

Deno.test("add refuses mismatched sizes", async () => {
  const ctx = await getContext();
  const a = tensorFrom(ctx, new Float32Array(4), [4]);
  const b = tensorFrom(ctx, new Float32Array(5), [5]);
  assert.throws(() => add(ctx, a, b), /sizes differ/);
});

Deno.test("a GPU validation error is thrown naming the kernel", async () => {
  const ctx = await getContext();
  const bad = {
    name: "deliberately_broken",
    bindings: ["write"] as const,
    code: () => "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
  };
  const t = tensorFrom(ctx, new Float32Array(4), [4]);
  ctx.dispatch(bad, null, [t.buffer], [1]);
  await assert.rejects(() => ctx.sync(), /deliberately_broken/);
});
