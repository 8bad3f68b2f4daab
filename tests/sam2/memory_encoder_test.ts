import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { sigmoidAffine } from "../../src/kernels/sigmoid_affine.ts";
import { inferSam2MemoryArch } from "../../src/sam2/memory_arch.ts";
import { MemoryEncoder } from "../../src/sam2/memory_encoder.ts";
import { positionEmbeddingSine } from "../../src/sam2/position_encoding.ts";
import { loadSam2Fixture, sam2Files } from "./fixture_files.ts";
import { memoryEncoder64 } from "./video_ref.ts";

const ctx = await getContext();
const have = sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json"], "memory encoder");

Deno.test({
  name:
    "sam2-tiny MemoryEncoder (random features and mask logits) matches a float64 reference of the official forward",
  ignore: !have,
  async fn() {
    const { sd, fixture } = await loadSam2Fixture("sam2-tiny");
    const arch = inferSam2MemoryArch(sd);
    const fa = fixture.architecture;
    // What the shapes say agrees with what the fixture's model was built with.
    assert.equal(arch.memoryEncoder.inDim, fa.memory_encoder.in_dim);
    assert.equal(arch.memoryEncoder.outDim, fa.memory_encoder.out_dim);
    assert.equal(arch.memoryEncoder.fuserLayers, fa.memory_encoder.fuser_layers);
    assert.equal(arch.memoryEncoder.downsampleLayers, 4);
    assert.equal(arch.memoryEncoder.fuserKernel, 7);
    assert.equal(arch.numMaskmem, fa.num_maskmem);
    assert.equal(arch.sigmoidScaleForMemEnc, fa.flags.sigmoid_scale_for_mem_enc);
    assert.equal(arch.sigmoidBiasForMemEnc, fa.flags.sigmoid_bias_for_mem_enc);

    const S = fa.image_size, s = S / 16, C = arch.memoryEncoder.inDim;
    const D = arch.memoryEncoder.outDim;
    const enc = new MemoryEncoder(ctx, sd, arch);
    const pixChw = randomArray(C * s * s, 11, 1.5);
    const pixHwc = new Float32Array(pixChw.length);
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < s * s; p++) pixHwc[p * C + c] = pixChw[c * s * s + p];
    }
    // Mask logits: a disc of object (+8) on background (-8) with noise, as a predicted mask.
    const logits = randomArray(S * S, 12, 3);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        logits[y * S + x] += (x - 100) ** 2 + (y - 140) ** 2 < 60 ** 2 ? 8 : -8;
      }
    }
    const mask = sigmoidAffine(ctx, tensorFrom(ctx, logits, [S, S]), {
      mode: "sigmoid",
      scale: arch.sigmoidScaleForMemEnc,
      bias: arch.sigmoidBiasForMemEnc,
    });
    const out = enc.encode(tensorFrom(ctx, pixHwc, [s, s, C]), mask);
    assert.deepEqual(out.features.shape, [s, s, D]);
    const got = await out.features.read();
    const ref = memoryEncoder64(
      sd,
      { c: C, h: s, w: s, data: Float64Array.from(pixChw) },
      logits,
      S,
      arch.sigmoidScaleForMemEnc,
      arch.sigmoidBiasForMemEnc,
    );
    const refHwc = new Float64Array(ref.data.length);
    for (let c = 0; c < D; c++) {
      for (let p = 0; p < s * s; p++) refHwc[p * D + c] = ref.data[c * s * s + p];
    }
    const r = assertClose(got, refHwc, {
      atol: 5e-6,
      rtol: 5e-6,
      shape: [s, s, D],
      label: "maskmem_features",
    });
    console.log(`maskmem_features: max abs error ${r.maxAbs.toExponential(2)}`);
    // vision_pos_enc: the sine encoding of the s x s grid with outDim channels, as tokens.
    const chw = positionEmbeddingSine(D, s, s);
    assert.equal(out.posEnc.length, s * s * D);
    for (const [p, c] of [[0, 0], [17, 5], [s * s - 1, D - 1]]) {
      assert.equal(out.posEnc[p * D + c], chw[c * s * s + p]);
    }
    enc.dispose();
  },
});
