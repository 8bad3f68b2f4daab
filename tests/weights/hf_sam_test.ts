/**
 * Hugging Face transformers-format SAM checkpoints: the key map (derived from transformers'
 * convert_sam_to_hf.py) inverts the converter's renaming for every tensor of SAM's table,
 * agrees with names transformers' SamModel uses, and a fixture renamed by the converter's map
 * and saved as safetensors loads through SamModel.load to the very goldens.
 */
import assert from "node:assert/strict";
import { readImageFile } from "../../src/image.ts";
import { SamModel, SamPredictor } from "../../src/predictor.ts";
import { expectedShapes, OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { HF_SHARED_PE, hfToSamName, samToHfName } from "../../src/weights/hf_sam.ts";
import { loadSam, loadStateDict } from "../../src/weights/load.ts";
import { writeSafetensors } from "../../src/weights/safetensors.ts";
import type { HostTensor } from "../../src/weights/types.ts";
import { loadFixtureCases } from "../decoder/fixture_cases.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, loadGolden, LOCAL_FIXTURES } from "../util/fixtures.ts";
import { withTempDir } from "./helpers.ts";

const tiny = new URL("sam-tiny/", LOCAL_FIXTURES);

Deno.test("HF SAM names: the converter's map, inverted, gives back every official name", async () => {
  const { arch } = await loadSam(new URL("sam-tiny.pth", tiny));
  for (const a of [arch, OFFICIAL_ARCHS.vit_b, OFFICIAL_ARCHS.vit_h]) {
    const names = [...expectedShapes(a).keys()];
    const hf = names.map(samToHfName);
    assert.equal(new Set(hf).size, hf.length, "the converter's names are distinct");
    names.forEach((n, i) => assert.equal(hfToSamName(hf[i]), n, `${n} -> ${hf[i]}`));
  }
  // Names as transformers' SamModel has them.
  const known: [string, string][] = [
    ["image_encoder.blocks.3.norm1.weight", "vision_encoder.layers.3.layer_norm1.weight"],
    ["image_encoder.blocks.3.attn.qkv.weight", "vision_encoder.layers.3.attn.qkv.weight"],
    ["image_encoder.blocks.0.attn.rel_pos_h", "vision_encoder.layers.0.attn.rel_pos_h"],
    ["image_encoder.patch_embed.proj.weight", "vision_encoder.patch_embed.projection.weight"],
    ["image_encoder.neck.1.bias", "vision_encoder.neck.layer_norm1.bias"],
    [
      "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
      "prompt_encoder.shared_embedding.positional_embedding",
    ],
    ["prompt_encoder.point_embeddings.2.weight", "prompt_encoder.point_embed.2.weight"],
    ["prompt_encoder.mask_downscaling.6.bias", "prompt_encoder.mask_embed.conv3.bias"],
    ["mask_decoder.output_upscaling.1.weight", "mask_decoder.upscale_layer_norm.weight"],
    [
      "mask_decoder.iou_prediction_head.layers.1.weight",
      "mask_decoder.iou_prediction_head.layers.0.weight",
    ],
    [
      "mask_decoder.output_hypernetworks_mlps.2.layers.2.bias",
      "mask_decoder.output_hypernetworks_mlps.2.proj_out.bias",
    ],
    [
      "mask_decoder.transformer.norm_final_attn.weight",
      "mask_decoder.transformer.layer_norm_final_attn.weight",
    ],
    [
      "mask_decoder.transformer.layers.1.norm4.bias",
      "mask_decoder.transformer.layers.1.layer_norm4.bias",
    ],
  ];
  for (const [sam, hf] of known) {
    assert.equal(samToHfName(sam), hf);
    assert.equal(hfToSamName(hf), sam);
  }
  assert.equal(
    hfToSamName(HF_SHARED_PE),
    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
  );
});

/** A fixture's .pth renamed by the converter's map into safetensors (`sharedPe`: which copies
 * of the positional matrix to store, as the converter's two names). */
async function writeHf(pth: URL, out: string, sharedPe: "both" | "shared_only") {
  const sd = await loadStateDict(pth);
  const tensors: HostTensor[] = [];
  for (const t of sd.values()) {
    const name = samToHfName(t.name);
    if (name === "prompt_encoder.shared_embedding.positional_embedding") {
      tensors.push({ ...t, name: HF_SHARED_PE });
      if (sharedPe === "shared_only") continue;
    }
    tensors.push({ ...t, name });
  }
  // transformers saves in its own order: shuffle ours so nothing relies on it.
  tensors.reverse();
  await writeSafetensors(out, tensors, { format: "pt" });
  return sd;
}

Deno.test("sam-tiny renamed to transformers' names loads through SamModel.load to the goldens", async () => {
  await withTempDir(async (dir) => {
    for (const variant of ["both", "shared_only"] as const) {
      const path = `${dir}/model-${variant}.safetensors`;
      const original = await writeHf(new URL("sam-tiny.pth", tiny), path, variant);
      // Same tensors, same bytes, official names.
      const renamed = await loadStateDict(path);
      assert.deepEqual([...renamed.keys()].sort(), [...original.keys()].sort());
      for (const [name, t] of original) assert.deepEqual(renamed.get(name)!.bytes, t.bytes, name);
      if (variant === "shared_only") continue;
      const model = await SamModel.load(path);
      const predictor = new SamPredictor(model);
      try {
        assert.equal(model.family, "sam");
        await predictor.setImage(await readImageFile(new URL("image.png", tiny)));
        const { data } = await predictor.getImageEmbedding();
        const golden = await loadGolden(tiny, "image_embeddings.npy");
        assertClose(data, golden.data as Float32Array, {
          atol: 1e-2,
          nmse: 1e-5,
          label: "embedding",
        });
        const { cases } = await loadFixtureCases(tiny);
        for (const c of cases) {
          const ps = await predictor.predictBatch(
            c.prompts.map((p) => ({ ...p, multimask: c.multimask })),
          );
          const C = c.multimask ? 3 : 1, plane = 64 * 64;
          ps.forEach((p, b) => {
            assertClose(p.scores, c.iou.subarray(b * C, (b + 1) * C), {
              atol: 1e-3,
              label: `${c.name} IoU`,
            });
            assertClose(p.lowResLogits, c.lowRes.subarray(b * C * plane, (b + 1) * C * plane), {
              atol: 1e-3,
              label: `${c.name} low-res`,
            });
          });
        }
      } finally {
        predictor.dispose();
        model.dispose();
      }
    }
  });
});

Deno.test("SlimSAM in transformers' names (as Zigeng/SlimSAM-uniform-77) loads with its architecture", async () => {
  const dir = fixtureDir("slimsam");
  if (!dir) {
    console.warn("SKIP: slimsam fixture: ../shared/fixtures is not present beside this checkout");
    return;
  }
  await withTempDir(async (tmp) => {
    const path = `${tmp}/model.safetensors`;
    const original = await writeHf(new URL("slimsam.pth", dir), path, "both");
    const { sd, arch } = await loadSam(path);
    assert.deepEqual([arch.embedDim, arch.numHeads, arch.encoderMlpDim], [168, 12, 696]);
    for (const [name, t] of original) assert.deepEqual(sd.get(name)!.bytes, t.bytes, name);
  });
});
