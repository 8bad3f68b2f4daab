import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { applyAxialRope, axialRopeTable, createRopeTable } from "../../src/kernels/rope_axial.ts";
import assert from "node:assert/strict";

const ctx = await getContext();
const f = Math.fround;

/**
 * SAM 2's apply_rotary_enc in float64 on [rows, heads * D]: pair j of each head rotated by
 * the angle of grid position (r % (endX * endY)) for r < ropeRows, the rest unchanged. The
 * angle is rounded to float32 as torch's float32 `outer(t, freqs)` makes it.
 */
function ropeRef(
  x: Float32Array,
  heads: number,
  D: number,
  endX: number,
  endY: number,
  ropeRows: number,
): Float64Array {
  const out = Float64Array.from(x);
  const quarter = D / 4;
  const freq = (i: number) => f(1 / f(10000 ** f((4 * i) / D)));
  for (let r = 0; r < ropeRows; r++) {
    const p = r % (endX * endY);
    const px = p % endX, py = Math.floor(p / endX);
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < D / 2; j++) {
        const angle = j < quarter ? f(px * freq(j)) : f(py * freq(j - quarter));
        const o = r * heads * D + h * D + 2 * j;
        const a = x[o], b = x[o + 1];
        out[o] = a * Math.cos(angle) - b * Math.sin(angle);
        out[o + 1] = a * Math.sin(angle) + b * Math.cos(angle);
      }
    }
  }
  return out;
}

Deno.test("axialRopeTable: float32 angles of the official frequencies (64x64 grid, D 256)", () => {
  const D = 256, end = 64;
  const t = axialRopeTable(D, end, end);
  assert.equal(t.length, end * end * (D / 2) * 2);
  // Float64 angles pos * theta^(-4i/D): the float32 table is within float32 rounding of them.
  let worst = 0;
  for (const p of [0, 1, 63, 64, 65, 4095]) {
    const px = p % end, py = Math.floor(p / end);
    for (let j = 0; j < D / 2; j++) {
      const i = j < D / 4 ? j : j - D / 4;
      const angle = (j < D / 4 ? px : py) * 10000 ** (-(4 * i) / D);
      const o = (p * (D / 2) + j) * 2;
      worst = Math.max(
        worst,
        Math.abs(t[o] - Math.cos(angle)),
        Math.abs(t[o + 1] - Math.sin(angle)),
      );
    }
  }
  assert.ok(worst < 1e-5, `table vs float64 angles: worst ${worst}`);
  // Position 0 is the identity; position 1 turns the first x pair by exactly 1 radian.
  assert.equal(t[0], 1);
  assert.equal(t[1], 0);
  assert.equal(t[D], f(Math.cos(1)));
  assert.equal(t[D + 1], f(Math.sin(1)));
});

Deno.test("applyAxialRope matches apply_rotary_enc: self-attn q/k, memory keys repeated per frame, pointer tokens excluded", async () => {
  // [rows, heads, D, endX, endY, ropeRows]
  const cases = [
    [256, 1, 32, 16, 16, 256], // sam2-tiny self-attention (16x16 grid, 1 head of 32)
    [2 * 256 + 4, 1, 32, 16, 16, 512], // 2 memory frames + 4 object-pointer tokens
    [3 * 32 + 6, 2, 16, 8, 4, 96], // 2 heads, non-square grid
    [16 + 2, 1, 256, 4, 4, 16], // real head dim 256, 2 excluded tokens
    [8, 1, 8, 2, 2, 0], // nothing rotated
  ] as const;
  for (const [rows, heads, D, endX, endY, ropeRows] of cases) {
    const x = randomArray(rows * heads * D, rows + D, 2);
    const table = createRopeTable(ctx, D, endX, endY);
    const y = applyAxialRope(ctx, tensorFrom(ctx, x, [1, rows, heads * D]), table, {
      heads,
      ropeRows,
    });
    assert.deepEqual(y.shape, [1, rows, heads * D]);
    const ref = ropeRef(x, heads, D, endX, endY, ropeRows);
    const got = await y.read();
    assertClose(got, ref, {
      atol: 1e-6,
      rtol: 1e-6,
      shape: [rows, heads * D],
      label: `rope rows ${rows} heads ${heads} D ${D} grid ${endX}x${endY} rope ${ropeRows}`,
    });
    // Excluded rows are copied bit for bit.
    for (let i = ropeRows * heads * D; i < x.length; i++) assert.equal(got[i], x[i]);
  }
});

Deno.test("applyAxialRope refuses bad shapes", () => {
  const table = createRopeTable(ctx, 16, 4, 4);
  const x = emptyTensor(ctx, [20, 16]);
  assert.throws(() => applyAxialRope(ctx, x, table, { heads: 2 }), /heads \* headDim/);
  assert.throws(() => applyAxialRope(ctx, x, table, { heads: 1 }), /whole number/);
  assert.throws(() => applyAxialRope(ctx, x, table, { heads: 1, ropeRows: 21 }), /ropeRows/);
  assert.throws(() => applyAxialRope(ctx, x, table, { heads: 1, ropeRows: 16, out: x }), /alias/);
  assert.throws(() => axialRopeTable(6, 4, 4), /multiple of 4/);
});
