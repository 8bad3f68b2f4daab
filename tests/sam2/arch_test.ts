/**
 * SAM 2 architecture inference and loading: the fixtures' inferred arch against what their
 * fixture.json says was built; the official sizes' configs picked from shapes alone; the
 * family told from tensor names; the {"model": state_dict} .pt read tensor for tensor.
 */
import assert from "node:assert/strict";
import {
  blockWindowSizes,
  inferSam2Arch,
  OFFICIAL_SAM2_CONFIGS,
  officialSam2Arch,
  sam2HintsFromFixture,
} from "../../src/sam2/arch.ts";
import {
  checkpointFamily,
  expectedSam2EncoderShapes,
  familyOf,
  validateSam2Encoder,
} from "../../src/sam2/load.ts";
import { hieraBlocks, hieraBufferSizes } from "../../src/sam2/hieradet.ts";
import { neckBufferSizes } from "../../src/sam2/image_encoder.ts";
import { inferArch, type TensorShapes } from "../../src/weights/arch.ts";
import { tensorF32 } from "../../src/weights/load.ts";
import { fixtureDir } from "../util/fixtures.ts";
import { loadSam2Fixture, sam2File, sam2Files, sam2FixtureJson } from "./fixture_files.ts";

type Shapes = Map<string, { shape: number[] }>;

/** The fixture's tensor shapes from its state_dict.json (no weights read). */
async function fixtureShapes(model: string): Promise<Shapes> {
  const url = sam2File(model, "state_dict.json");
  if (!url) throw new Error(`${model}/state_dict.json missing`);
  const summary: Record<string, { shape: number[] }> = JSON.parse(await Deno.readTextFile(url));
  return new Map(Object.entries(summary).map(([k, v]) => [k, { shape: v.shape }]));
}

for (const model of ["sam2-tiny", "sam2-mini"]) {
  Deno.test(`${model}: inferred arch equals fixture.json's architecture`, async () => {
    if (!sam2Files(model, ["fixture.json", "state_dict.json"], `${model} arch`)) return;
    const fx = await sam2FixtureJson(model);
    const a = fx.architecture;
    const arch = inferSam2Arch(await fixtureShapes(model), sam2HintsFromFixture(a));
    // Read from the shapes:
    assert.equal(arch.trunk.embedDim, a.trunk.embed_dim);
    assert.deepEqual(arch.trunk.stages, a.trunk.stages);
    assert.deepEqual(arch.trunk.qPoolBlocks, a.trunk.q_pool_blocks);
    assert.deepEqual(arch.trunk.channelList, a.trunk.channel_list);
    assert.deepEqual(arch.trunk.posEmbedBkg, a.trunk.window_pos_embed_bkg_spatial_size);
    assert.equal(arch.trunk.windowSpec[0], a.trunk.window_spec[0]);
    assert.deepEqual(arch.neck.backboneChannelList, a.neck.backbone_channel_list);
    assert.deepEqual(arch.neck.fpnTopDownLevels, a.neck.fpn_top_down_levels);
    assert.equal(arch.neck.scalp, a.neck.scalp);
    assert.equal(arch.dModel, a.neck.d_model);
    assert.equal(arch.dModel, a.sam_heads.transformer_dim);
    assert.equal(arch.decoder.mlpDim, a.sam_heads.transformer_mlp_dim);
    assert.equal(arch.decoder.numHeads, a.sam_heads.transformer_num_heads);
    assert.equal(arch.decoder.iouHeadHiddenDim, a.sam_heads.iou_head_hidden_dim);
    assert.equal(arch.decoder.predObjScores, a.flags.pred_obj_scores);
    assert.equal(arch.decoder.objScoreHeadDepth, a.flags.pred_obj_scores_mlp ? 3 : 1);
    assert.equal(arch.decoder.useHighResFeatures, a.flags.use_high_res_features_in_sam);
    assert.equal(arch.decoder.iouUseSigmoid, a.flags.iou_prediction_use_sigmoid);
    // Derived from the hints (image size, heads, window_spec, global blocks) by the official
    // rules: the per-block windows the official build reports, lag included.
    assert.deepEqual(arch.trunk.blockWindowSizes, a.trunk.block_window_sizes);
    assert.equal(arch.imgSize, a.image_size);
    assert.equal(arch.imgSize / arch.backboneStride, a.image_size / a.backbone_stride);
  });
}

Deno.test("blockWindowSizes: the first block of a stage keeps the previous stage's window", () => {
  // hiera_t: stages [1,2,7,2], global [5,7,9], window_spec [8,4,14,7].
  assert.deepEqual(
    blockWindowSizes([1, 2, 7, 2], [8, 4, 14, 7], [5, 7, 9]),
    [8, 8, 4, 4, 14, 0, 14, 0, 14, 0, 14, 7],
  );
});

/**
 * A checkpoint's shapes for an official config: the encoder table plus sam2-tiny's decoder
 * tensors (their widths do not enter the trunk's inference).
 */
function officialShapes(name: string, decoder: Shapes): Shapes {
  const shapes: Shapes = new Map();
  for (const [k, v] of expectedSam2EncoderShapes(officialSam2Arch(name))) {
    shapes.set(k, { shape: v });
  }
  for (const [k, v] of decoder) if (k.startsWith("sam_mask_decoder.")) shapes.set(k, v);
  return shapes;
}

Deno.test("official sizes: the sam2.1 config is found from the shapes alone", async () => {
  if (!sam2Files("sam2-tiny", ["state_dict.json"], "official sizes")) return;
  const decoder = await fixtureShapes("sam2-tiny");
  const expected: Record<string, { blocks: number; heads: number[]; windows: number[] }> = {
    hiera_t: { blocks: 12, heads: [1, 2, 4, 8], windows: [8, 4, 14, 7] },
    hiera_s: { blocks: 16, heads: [1, 2, 4, 8], windows: [8, 4, 14, 7] },
    hiera_b_plus: { blocks: 24, heads: [2, 4, 8, 16], windows: [8, 4, 14, 7] },
    hiera_l: { blocks: 48, heads: [2, 4, 8, 16], windows: [8, 4, 16, 8] },
  };
  for (const [name, want] of Object.entries(expected)) {
    const arch = inferSam2Arch(officialShapes(name, decoder));
    assert.equal(arch.imgSize, 1024, name);
    assert.equal(arch.trunk.blockWindowSizes.length, want.blocks, name);
    assert.deepEqual(arch.trunk.stageHeads, want.heads, name);
    assert.deepEqual(arch.trunk.windowSpec, want.windows, name);
    assert.deepEqual(arch.trunk.qPoolBlocks.length, 3, name);
    const official = officialSam2Arch(name);
    assert.deepEqual(arch.trunk, official.trunk, `${name}: inferred trunk = officialSam2Arch`);
    assert.deepEqual(arch.neck, official.neck, name);
    for (const g of OFFICIAL_SAM2_CONFIGS[name].globalAttBlocks) {
      assert.equal(arch.trunk.blockWindowSizes[g], 0, `${name} block ${g} is global`);
    }
  }
  // B+ leaves the background pos embed at Hiera's default 14x14: read from the shape.
  const bp = inferSam2Arch(officialShapes("hiera_b_plus", decoder));
  assert.deepEqual(bp.trunk.posEmbedBkg, [14, 14]);
});

Deno.test("a shape matching no official config needs hints, and says which", async () => {
  if (!sam2Files("sam2-tiny", ["state_dict.json", "fixture.json"], "hints")) return;
  const shapes = await fixtureShapes("sam2-tiny");
  assert.throws(() => inferSam2Arch(shapes), /matches no official sam2\.1 config.*'imgSize'/s);
  const hints = sam2HintsFromFixture((await sam2FixtureJson("sam2-tiny")).architecture);
  assert.throws(
    () => inferSam2Arch(shapes, { ...hints, windowSpec: [4, 4, 6, 3] }),
    /window_spec\[0\] = 4 but pos_embed_window is 8x8/,
  );
  assert.throws(() => inferSam2Arch(shapes, { ...hints, imgSize: 240 }), /multiple of 32/);
  assert.throws(() => inferSam2Arch(shapes, { ...hints, numHeads: 3 }), /not divisible/);
  assert.throws(() => inferSam2Arch(shapes, { ...hints, numHeads: 0 }), /at least 1/);
  // Hints may come from stored metadata: anything but whole numbers is refused by name.
  const bad = (h: unknown) => inferSam2Arch(shapes, { ...hints, ...(h as object) });
  assert.throws(() => bad({ imgSize: "256" }), /hint 'imgSize' = "256" is not valid/);
  assert.throws(() => bad({ windowSpec: 8 }), /hint 'windowSpec' = 8 is not valid/);
  assert.throws(() => bad({ globalAttBlocks: [4.5] }), /hint 'globalAttBlocks'/);
  assert.throws(() => bad({ qPool: [3] }), /hint 'qPool'/);
});

Deno.test("family by tensor names: SAM 1 vs SAM 2; SAM 1's inferArch names the mistake", async () => {
  const urls = sam2Files("sam2-tiny", ["sam2-tiny.pt", "state_dict.json"], "family");
  if (!urls) return;
  const shapes = await fixtureShapes("sam2-tiny");
  assert.equal(familyOf(shapes), "sam2");
  assert.equal(await checkpointFamily(urls[0]), "sam2");
  const samTiny = fixtureDir("sam-tiny");
  assert.ok(samTiny, "sam-tiny ships with the project");
  assert.equal(await checkpointFamily(new URL("sam-tiny.pth", samTiny)), "sam");
  assert.throws(() => inferArch(shapes as TensorShapes), /SAM 2 checkpoint/);
});

Deno.test("sam2-tiny.pt ({'model': state_dict}) loads every tensor as state_dict.json lists it", async () => {
  if (!sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json", "state_dict.json"], "load")) {
    return;
  }
  const { sd } = await loadSam2Fixture("sam2-tiny");
  const summary: Record<
    string,
    { shape: number[]; sum: number; abs_sum: number; first: number[] }
  > = JSON.parse(await Deno.readTextFile(sam2File("sam2-tiny", "state_dict.json")!));
  assert.deepEqual([...sd.keys()], Object.keys(summary), "names and order");
  for (const [name, ref] of Object.entries(summary)) {
    const t = sd.get(name)!;
    assert.deepEqual(t.shape, ref.shape, name);
    const v = tensorF32(t);
    let sum = 0, abs = 0;
    for (const x of v) {
      sum += x;
      abs += Math.abs(x);
    }
    const tol = 1e-9 * ref.abs_sum + 1e-12;
    assert.ok(Math.abs(sum - ref.sum) <= tol && Math.abs(abs - ref.abs_sum) <= tol, `${name} sums`);
    assert.deepEqual([...v.subarray(0, ref.first.length)], ref.first, `${name} first values`);
  }
});

Deno.test("validateSam2Encoder names missing, misshapen and unknown tensors", async () => {
  if (!sam2Files("sam2-tiny", ["state_dict.json", "fixture.json"], "validate")) return;
  const shapes = await fixtureShapes("sam2-tiny");
  const arch = inferSam2Arch(
    shapes,
    sam2HintsFromFixture((await sam2FixtureJson("sam2-tiny")).architecture),
  );
  validateSam2Encoder(shapes, arch); // the real one passes
  const broken: Shapes = new Map(shapes);
  broken.delete("no_mem_embed");
  broken.set("sam_mask_decoder.conv_s1.bias", { shape: [7] });
  broken.set("image_encoder.trunk.extra", { shape: [1] });
  broken.set("something_else", { shape: [2] });
  assert.throws(() => validateSam2Encoder(broken, arch), (e: Error) => {
    assert.match(e.message, /4 problems/);
    assert.match(e.message, /missing tensor 'no_mem_embed'/);
    assert.match(e.message, /'sam_mask_decoder\.conv_s1\.bias' has shape \[7\], expected \[8\]/);
    assert.match(e.message, /unknown image encoder tensor 'image_encoder\.trunk\.extra'/);
    assert.match(e.message, /unknown tensor 'something_else'/);
    return true;
  });
});

Deno.test("activation plans: every buffer of the four sizes at 1024 fits a 128 MB binding", () => {
  // llvmpipe (and WebGPU's default) bind at most 128 MiB per storage buffer. Hiera's fused qkv
  // at the first q-pool block would not fit (151 MiB for Hiera-T), so those blocks project q,
  // k and v apart; Hiera-L's stage-1 MLP hidden layer (144 MiB) is sliced in two.
  const limit = 128 * 2 ** 20;
  for (const name of ["hiera_t", "hiera_s", "hiera_b_plus", "hiera_l"]) {
    const arch = officialSam2Arch(name);
    const sizes = { ...hieraBufferSizes(arch, limit), ...neckBufferSizes(arch) };
    const [worst, n] = Object.entries(sizes).reduce((a, b) => (b[1] > a[1] ? b : a));
    assert.ok(4 * n <= limit, `${name}: '${worst}' needs ${4 * n} bytes`);
    const sliced = hieraBlocks(arch, limit).filter((b) => b.mlpChunks > 1).map((b) => b.index);
    assert.deepEqual(sliced, name === "hiera_l" ? [0, 1] : [], name);
  }
  // Unbounded, nothing is sliced and Hiera-L's hidden layer is one 144 MiB buffer.
  const l = officialSam2Arch("hiera_l");
  assert.equal(4 * hieraBufferSizes(l).big, 144 * 2 ** 20);
});
