import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { sigmoidAffine } from "../../src/kernels/sigmoid_affine.ts";
import assert from "node:assert/strict";

const ctx = await getContext();

Deno.test("sigmoidAffine: sigmoid(x) * 20 - 10 and the binarized mask, as _encode_new_memory", async () => {
  const n = 4099;
  const x = randomArray(n, 7, 40); // mask logits in [-40, 40], saturating both ends
  x[0] = 0; // binarize: 0 is not > 0
  const xt = tensorFrom(ctx, x, [n]);
  const sig = await sigmoidAffine(ctx, xt, { mode: "sigmoid", scale: 20, bias: -10 }).read();
  assertClose(sig, Array.from(x, (v) => 20 / (1 + Math.exp(-v)) - 10), {
    atol: 4e-6,
    rtol: 1e-6,
    label: "sigmoid scale 20 bias -10",
  });
  const bin = await sigmoidAffine(ctx, xt, { mode: "binarize", scale: 20, bias: -10 }).read();
  assert.deepEqual(Array.from(bin), Array.from(x, (v) => (v > 0 ? 10 : -10)));
});

Deno.test("sigmoidAffine refuses aliasing, wrong sizes and non-finite scale", () => {
  const x = emptyTensor(ctx, [8]);
  assert.throws(
    () => sigmoidAffine(ctx, x, { mode: "sigmoid", scale: 1, bias: 0, out: x }),
    /alias/,
  );
  assert.throws(
    () => sigmoidAffine(ctx, x, { mode: "sigmoid", scale: 1, bias: 0, out: emptyTensor(ctx, [4]) }),
    /out has 4/,
  );
  assert.throws(() => sigmoidAffine(ctx, x, { mode: "binarize", scale: NaN, bias: 0 }), /finite/);
});
