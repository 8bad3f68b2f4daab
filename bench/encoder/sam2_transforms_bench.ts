/**
 * SAM 2's CPU-side, input-sized work: SAM2Transforms (antialiased bilinear resize of the photo
 * to S x S, ImageNet normalisation; torch's CPU kernel bit for bit) on a 12-megapixel photo and
 * on a 1800x1200 one, and the FPN's sine position encoding (input-independent: computed once
 * per level, here level 2 and level 0 of a 1024 px model).
 *
 *   deno bench -A bench/encoder/sam2_transforms_bench.ts
 */
import { positionEmbeddingSine } from "../../src/sam2/position_encoding.ts";
import { sam2Transform } from "../../src/sam2/transforms.ts";
import type { RgbImage } from "../../src/types.ts";

function photo(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  return { width, height, channels: 3, data };
}

const big = photo(4032, 3024), mid = photo(1800, 1200);
Deno.bench({
  name: "sam2Transform 4032x3024 -> 1024x1024",
  group: "sam2_cpu",
  n: 3,
  fn: () => void sam2Transform(big, 1024),
});
Deno.bench({
  name: "sam2Transform 1800x1200 -> 1024x1024",
  group: "sam2_cpu",
  n: 5,
  fn: () => void sam2Transform(mid, 1024),
});
Deno.bench({
  name: "positionEmbeddingSine 256 x 64 x 64 (level 2)",
  group: "sam2_cpu",
  fn: () => void positionEmbeddingSine(256, 64, 64),
});
Deno.bench({
  name: "positionEmbeddingSine 256 x 256 x 256 (level 0)",
  group: "sam2_cpu",
  n: 3,
  fn: () => void positionEmbeddingSine(256, 256, 256),
});
