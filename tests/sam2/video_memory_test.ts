import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { inferSam2MemoryArch } from "../../src/sam2/memory_arch.ts";
import { MemoryEncoder } from "../../src/sam2/memory_encoder.ts";
import { encodeNewMemory, fromBf16, toBf16 } from "../../src/sam2/video_memory.ts";
import { loadSam2Fixture, sam2Files } from "./fixture_files.ts";
import { memoryEncoder64, upsampleBilinear64, weight } from "./video_ref.ts";

const ctx = await getContext();
const have = sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json"], "video memory");

Deno.test("toBf16 rounds to nearest even like torch's .to(torch.bfloat16); fromBf16 is exact", () => {
  const x = new Float32Array([
    1,
    1 + 2 ** -8,
    1 + 3 * 2 ** -8,
    1 + 2 ** -8 + 2 ** -20,
    -2.5,
    0,
    -0,
    65504,
    NaN,
  ]);
  const back = fromBf16(toBf16(x));
  // 1 + 2^-8 is a tie: down to 1 (even); 1 + 3*2^-8 ties up to 1 + 2^-6; above a tie rounds up.
  assert.deepEqual(Array.from(back.subarray(0, 8)), [
    1,
    1,
    1 + 2 ** -6,
    1 + 2 ** -7,
    -2.5,
    0,
    -0,
    65536,
  ]);
  assert.ok(Number.isNaN(back[8]));
});

Deno.test({
  name:
    "sam2-tiny encodeNewMemory: upsample, binarize / sigmoid * 20 - 10, memory encoder, no_obj_embed_spatial, bfloat16 (float64 reference)",
  ignore: !have,
  async fn() {
    const { sd, fixture } = await loadSam2Fixture("sam2-tiny");
    const arch = inferSam2MemoryArch(sd);
    const enc = new MemoryEncoder(ctx, sd, arch);
    const S = fixture.architecture.image_size, s = S / 16, l = S / 4;
    const C = arch.memoryEncoder.inDim, D = arch.memoryEncoder.outDim;
    const noObj = weight(sd, "no_obj_embed_spatial");
    const pixChw = randomArray(C * s * s, 21, 1);
    const pixHwc = new Float32Array(pixChw.length);
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < s * s; p++) pixHwc[p * C + c] = pixChw[c * s * s + p];
    }
    // Blocks of +-8: every upsampled value is +-2 or +-6 or +-8, far from the binarize threshold.
    const blocks = Float32Array.from(
      { length: l * l },
      (_, q) => ((q % l >> 3) + (Math.floor(q / l) >> 3)) % 2 ? 8 : -8,
    );
    const cases = [
      { lowRes: blocks, objScore: 1.5, fromPoints: true },
      { lowRes: randomArray(l * l, 22, 12), objScore: 0.7, fromPoints: false },
      { lowRes: blocks, objScore: -0.2, fromPoints: true }, // object absent: + no_obj_embed_spatial
    ];
    for (const c of cases) {
      const mem = await encodeNewMemory(ctx, enc, noObj, S, {
        pixFeat: tensorFrom(ctx, pixHwc, [s, s, C]),
        ...c,
      });
      assert.equal(mem.features.length, s * s * D);
      const high = upsampleBilinear64(c.lowRes, l, S);
      const ref = memoryEncoder64(
        sd,
        { c: C, h: s, w: s, data: Float64Array.from(pixChw) },
        high,
        S,
        20,
        -10,
        c.fromPoints,
      );
      const refHwc = new Float64Array(s * s * D);
      for (let ch = 0; ch < D; ch++) {
        for (let p = 0; p < s * s; p++) {
          refHwc[p * D + ch] = ref.data[ch * s * s + p] + (c.objScore > 0 ? 0 : noObj[ch]);
        }
      }
      // bfloat16 keeps 8 significant bits: within half a unit of the reference's last place.
      assertClose(fromBf16(mem.features), refHwc, {
        atol: 1e-5,
        rtol: 2 ** -8,
        shape: [s, s, D],
        label: `memory (${c.fromPoints ? "binarized" : "sigmoid"}, score ${c.objScore})`,
      });
    }
    enc.dispose();
  },
});
