/**
 * SAM2Transforms against the official input tensors, bit for bit: sam2-tiny's photo
 * (enlarged 160x107 -> 256x256) and resize_down_input.png (300x200: the width shrinks, where
 * the antialiasing filter widens; without antialias the result would move by up to 0.30),
 * and sam2-mini's probes at 1024. Plus the tap rule itself against plain bilinear.
 */
import assert from "node:assert/strict";
import { readImageFile } from "../../src/image.ts";
import {
  antialiasTaps,
  resizeBilinearAntialias,
  sam2Transform,
} from "../../src/sam2/transforms.ts";
import { assertClose } from "../util/compare.ts";
import { sam2File, sam2Files, sam2Npy } from "./fixture_files.ts";

Deno.test("sam2Transform reproduces sam2-tiny's input_tensor exactly", async () => {
  if (!sam2Files("sam2-tiny", ["input_image.npy", "input_tensor.npy"], "transform tiny")) return;
  const img = await sam2Npy("sam2-tiny", "input_image.npy");
  const [height, width] = img.shape;
  const got = sam2Transform({ width, height, channels: 3, data: img.data as Uint8Array }, 256);
  const golden = await sam2Npy("sam2-tiny", "input_tensor.npy");
  assertClose(got, golden.data as Float32Array, { atol: 0, shape: golden.shape, label: "input" });
});

Deno.test("sam2Transform shrinking (300 -> 256 wide) with antialias matches exactly", async () => {
  const files = ["resize_down_input.png", "resize_down_input_tensor.npy"];
  if (!sam2Files("sam2-tiny", files, "transform shrink")) return;
  const image = await readImageFile(sam2File("sam2-tiny", files[0])!);
  assert.deepEqual([image.width, image.height], [300, 200]);
  const got = sam2Transform(image, 256); // RGBA from the PNG decoder: alpha ignored
  const golden = await sam2Npy("sam2-tiny", files[1]);
  assertClose(got, golden.data as Float32Array, {
    atol: 0,
    shape: golden.shape,
    label: "resize_down_input_tensor",
  });
});

Deno.test("antialias taps: sums of 1, the filter widens when shrinking, plain bilinear when enlarging", () => {
  for (const [inSize, outSize] of [[300, 256], [107, 256], [1800, 1024], [5, 5]]) {
    const { count, weights, maxTaps } = antialiasTaps(inSize, outSize);
    for (let o = 0; o < outSize; o++) {
      let s = 0;
      for (let j = 0; j < count[o]; j++) s += weights[o * maxTaps + j];
      assert.ok(Math.abs(s - 1) < 1e-6, `${inSize}->${outSize} output ${o}: weights sum ${s}`);
    }
    const widest = Math.max(...count);
    if (inSize > outSize) assert.ok(widest >= 3, `shrinking uses >= 3 taps, got ${widest}`);
    else assert.ok(widest <= 3, `enlarging uses <= 3 taps, got ${widest}`);
  }
  // Enlarging one row 4 -> 8 equals align_corners=False bilinear with edge clamping.
  const row = new Float32Array([0, 1, 4, 9]);
  const up = resizeBilinearAntialias(row, 1, 1, 4, 1, 8);
  const ref = Array.from({ length: 8 }, (_, o) => {
    const src = Math.min(Math.max((o + 0.5) / 2 - 0.5, 0), 3);
    const i0 = Math.floor(src), i1 = Math.min(i0 + 1, 3), t = src - i0;
    return row[i0] * (1 - t) + row[i1] * t;
  });
  assertClose(up, ref, { atol: 1e-6, label: "4 -> 8 bilinear" });
  assert.throws(() => resizeBilinearAntialias(row, 1, 2, 4, 1, 8), /4 values for 1x2x4/);
  assert.throws(
    () => sam2Transform({ width: 2, height: 2, channels: 3, data: new Uint8Array(5) }, 8),
    /needs 12 bytes/,
  );
});
