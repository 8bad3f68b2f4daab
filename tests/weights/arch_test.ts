import assert from "node:assert/strict";
import {
  DECODER_NUM_HEADS,
  expectedShapes,
  inferArch,
  OFFICIAL_ARCHS,
  type TensorShapes,
  validateArch,
  validateStateDict,
} from "../../src/weights/arch.ts";
import { PthArchive, readPth } from "../../src/weights/pth.ts";
import { writeSafetensors } from "../../src/weights/safetensors.ts";
import { runDeno } from "../util/run_deno.ts";
import { withTempDir } from "./helpers.ts";
import type { DType } from "../../src/weights/types.ts";
import { fixtureDir } from "../util/fixtures.ts";

type ShapeMap = Map<string, { shape: number[]; dtype?: DType }>;

function shapesFromTable(table: Map<string, number[]>): ShapeMap {
  return new Map([...table].map(([name, shape]) => [name, { shape: [...shape] }]));
}

async function tinyShapes(): Promise<ShapeMap> {
  const archive = await PthArchive.open(new URL("sam-tiny.pth", fixtureDir("sam-tiny")!));
  archive.close();
  return new Map(archive.tensors.map((t) => [t.name, { shape: t.shape, dtype: t.dtype }]));
}

Deno.test("inferArch recovers ViT-B / L / H from their shape tables (no weights)", () => {
  const known: Record<string, [number, number, number, number]> = {
    // parameter count (millions), tensors, head dim, global rel_pos length
    vit_b: [93.7, 314, 64, 127],
    vit_l: [312.3, 482, 64, 127],
    vit_h: [641.1, 594, 80, 127],
  };
  for (const [key, arch] of Object.entries(OFFICIAL_ARCHS)) {
    const table = expectedShapes(arch);
    const shapes = shapesFromTable(table);
    assert.deepEqual(inferArch(shapes), arch, key);
    validateStateDict(shapes, arch);
    const params = [...table.values()].reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
    const [millions, count, headDim, globalLen] = known[key];
    assert.equal(Math.round(params / 1e5) / 10, millions, `${key} parameter count`);
    assert.equal(table.size, count, `${key} tensor count`);
    const g = arch.globalAttnIndexes[0];
    assert.deepEqual(table.get(`image_encoder.blocks.${g}.attn.rel_pos_h`), [globalLen, headDim]);
    assert.deepEqual(table.get("image_encoder.blocks.0.attn.rel_pos_w"), [27, headDim]);
    assert.deepEqual(table.get("image_encoder.pos_embed"), [1, 64, 64, arch.embedDim]);
  }
  assert.equal(OFFICIAL_ARCHS.vit_h.decoderNumHeads, DECODER_NUM_HEADS);
});

Deno.test("the expected table is sam-tiny's state dict, names, shapes and order", async () => {
  const shapes = await tinyShapes();
  const arch = inferArch(shapes);
  const table = expectedShapes(arch);
  assert.deepEqual([...table.keys()], [...shapes.keys()]);
  for (const [name, shape] of table) assert.deepEqual(shapes.get(name)!.shape, shape, name);
});

Deno.test("validateStateDict names missing, misshapen, unknown and integer tensors", async () => {
  const shapes = await tinyShapes();
  const arch = inferArch(shapes);
  const missing = new Map(shapes);
  missing.delete("mask_decoder.output_hypernetworks_mlps.2.layers.1.bias");
  assert.throws(
    () => validateStateDict(missing, arch),
    /missing tensor 'mask_decoder\.output_hypernetworks_mlps\.2\.layers\.1\.bias' \(expected shape \[32\]\)/,
  );
  const wrong = new Map(shapes);
  wrong.set("image_encoder.blocks.1.mlp.lin2.weight", { shape: [32, 64] });
  assert.throws(
    () => validateStateDict(wrong, arch),
    /tensor 'image_encoder\.blocks\.1\.mlp\.lin2\.weight' has shape \[32,64\], expected \[32,128\]/,
  );
  const extra = new Map(shapes);
  extra.set("image_encoder.blocks.2.norm1.weight", { shape: [32] });
  assert.throws(() => validateStateDict(extra, arch), /unknown tensor 'image_encoder\.blocks\.2/);
  const ints = new Map(shapes);
  ints.set("prompt_encoder.no_mask_embed.weight", { shape: [1, 32], dtype: "int64" });
  assert.throws(
    () => validateStateDict(ints, arch),
    /'prompt_encoder\.no_mask_embed\.weight' has dtype int64/,
  );
  // The non-persistent normalisation buffers are tolerated, with the right shape.
  const buffers = new Map(shapes);
  buffers.set("pixel_mean", { shape: [3, 1, 1] });
  validateStateDict(buffers, arch);
  buffers.set("pixel_std", { shape: [3] });
  assert.throws(
    () => validateStateDict(buffers, arch),
    /'pixel_std' has shape \[3\], expected \[3,1,1\]/,
  );
  // Several problems are all reported.
  const many = new Map(missing);
  many.set("image_encoder.blocks.1.mlp.lin2.weight", { shape: [1] });
  assert.throws(() => validateStateDict(many, arch), /\(2 problems\)/);
});

Deno.test("inferArch explains what is missing or inconsistent", async () => {
  assert.throws(() => inferArch(new Map()), /no tensor 'image_encoder\.pos_embed'/);
  const shapes = await tinyShapes();
  const oddWindow = new Map(shapes);
  oddWindow.set("image_encoder.blocks.1.attn.rel_pos_h", { shape: [9, 16] });
  // Block 0 has window 6, block 1 now claims window 5.
  assert.throws(() => inferArch(oddWindow), /block 1 has window 5, an earlier block has 6/);
  const badHeads = new Map(shapes);
  badHeads.set("image_encoder.blocks.0.attn.rel_pos_h", { shape: [11, 5] });
  assert.throws(() => inferArch(badHeads), /head dim 5 does not divide embed dim 32/);
  // All-global encoder (window size 0): every block spans the grid and validation agrees.
  const allGlobal = new Map(shapes);
  allGlobal.set("image_encoder.blocks.0.attn.rel_pos_h", { shape: [31, 16] });
  allGlobal.set("image_encoder.blocks.0.attn.rel_pos_w", { shape: [31, 16] });
  const arch = inferArch(allGlobal);
  assert.deepEqual([arch.windowSize, arch.globalAttnIndexes], [0, [0, 1]]);
  validateStateDict(allGlobal as TensorShapes, arch);
});

/** sam-tiny's shapes with the given tensors' shapes replaced. */
async function tinyWith(changes: Record<string, number[]>): Promise<ShapeMap> {
  const shapes = await tinyShapes();
  for (const [name, shape] of Object.entries(changes)) {
    assert.ok(shapes.has(name), name);
    shapes.set(name, { shape, dtype: "float32" });
  }
  return shapes;
}

/** Encoder (or decoder) MLPs of width `w` in every block of sam-tiny (C = 32). */
function mlpWidth(prefix: string, count: number, w: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (let i = 0; i < count; i++) {
    out[`${prefix}.${i}.mlp.lin1.weight`] = [w, 32];
    out[`${prefix}.${i}.mlp.lin1.bias`] = [w];
    out[`${prefix}.${i}.mlp.lin2.weight`] = [32, w];
  }
  return out;
}

Deno.test("degenerate architectures are refused at load: zero widths, no multimask outputs", async () => {
  const cases: [string, Record<string, number[]>, RegExp][] = [
    [
      "encoder MLP width 0",
      mlpWidth("image_encoder.blocks", 2, 0),
      /degenerate SAM architecture: the image encoder's MLP width, from image_encoder\.blocks\.0\.mlp\.lin1\.weight is 0/,
    ],
    [
      "decoder MLP width 0",
      mlpWidth("mask_decoder.transformer.layers", 2, 0),
      /the mask decoder's MLP width, .* is 0, expected at least 1/,
    ],
    [
      "mask_tokens of shape [1, D]",
      { "mask_decoder.mask_tokens.weight": [1, 32] },
      /the multimask outputs, rows of mask_decoder\.mask_tokens\.weight minus one is 0/,
    ],
    [
      "IoU head width 0",
      { "mask_decoder.iou_prediction_head.layers.0.weight": [0, 32] },
      /the IoU head's width, .* is 0/,
    ],
    [
      "cross-attention width 0",
      {
        "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight": [0, 32],
      },
      /the mask decoder's cross-attention width, .* is 0/,
    ],
    [
      "encoder width 0",
      { "image_encoder.pos_embed": [1, 16, 16, 0] },
      /the image encoder's width, from image_encoder\.pos_embed is 0.*heads is 0/,
    ],
  ];
  for (const [label, changes, expected] of cases) {
    const shapes = await tinyWith(changes);
    assert.throws(() => inferArch(shapes), expected, label);
  }
  // The official architectures pass, and a bad one handed in directly is refused too.
  for (const arch of Object.values(OFFICIAL_ARCHS)) assert.equal(validateArch(arch), arch);
  assert.throws(
    () => validateArch({ ...OFFICIAL_ARCHS.vit_b, globalAttnIndexes: [2, 12] }),
    /global attention block 12 is outside the encoder's 12 blocks/,
  );
});

Deno.test("serve --model with a zero-width MLP exits 2 with the reason, before any GPU work", async () => {
  const sd = await readPth(new URL("sam-tiny.pth", fixtureDir("sam-tiny")!));
  for (const [name, shape] of Object.entries(mlpWidth("image_encoder.blocks", 2, 0))) {
    sd.set(name, { name, dtype: "float32", shape, bytes: new Uint8Array(0) });
  }
  await withTempDir(async (dir) => {
    const path = `${dir}/zero-mlp.safetensors`;
    await writeSafetensors(path, [...sd.values()]);
    const run = await runDeno(new URL("../../src/server.ts", import.meta.url), [
      "--port",
      "0",
      "--model",
      path,
    ]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /error: --model .*zero-mlp\.safetensors: .*the image encoder's MLP width.* is 0/,
    );
    assert.doesNotMatch(run.stderr, /panic/i);
  });
});
