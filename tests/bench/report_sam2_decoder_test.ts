import assert from "node:assert/strict";
import { flopsDecoder, flopsSam2Decoder } from "../../bench/report/flops.ts";
import { officialSam2Arch } from "../../src/sam2/arch.ts";
import { OFFICIAL_ARCHS } from "../../src/weights/arch.ts";

Deno.test("flopsSam2Decoder: SAM's count with the object-score token and its 3-layer head", () => {
  // Hiera-T's decoder has ViT-B's decoder sizes (256 wide, MLP 2048, 2 layers, 64x64 tokens).
  const sam2 = officialSam2Arch("hiera_t");
  const D = 256;
  const one = flopsSam2Decoder(sam2, { prompts: 1, sparseTokens: 3 });
  const sam = flopsDecoder(OFFICIAL_ARCHS.vit_b, { prompts: 1, sparseTokens: 4 });
  assert.equal(one - sam, 2 * (D * D + D * D + D));
  assert.equal(flopsSam2Decoder(sam2, { prompts: 8, sparseTokens: 3 }), 8 * one);
});
