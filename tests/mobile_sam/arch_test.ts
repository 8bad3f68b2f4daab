/** TinyViT (MobileSAM) architecture from tensor shapes alone: the fixture's table, released
 * TinyViT variants never shown as weights, refusals; the bias-index gather and the qkv row
 * order against direct ports of the official constructions. */
import assert from "node:assert/strict";
import {
  inferMobileSamArch,
  inferTinyVitArch,
  type TinyVitArch,
  tinyVitExpectedShapes,
} from "../../src/mobile_sam/arch.ts";
import {
  attentionBiasIndex,
  gatherBiasTable,
  qkvToSamLayout,
} from "../../src/mobile_sam/tiny_vit.ts";
import type { TensorShapes } from "../../src/weights/arch.ts";
import { fixtureDir, fixtureJson } from "../util/fixtures.ts";

type Shapes = Map<string, { shape: number[]; dtype?: "float32" | "int64" }>;

/** The mobilesam fixture's tensor shapes (state_dict.json), or null when absent. */
async function fixtureShapes(): Promise<{ shapes: Shapes; json: Record<string, unknown> } | null> {
  const dir = fixtureDir("mobilesam");
  if (!dir) {
    console.warn("SKIP: mobilesam fixture: ../shared/fixtures is not present beside this checkout");
    return null;
  }
  const table = JSON.parse(await Deno.readTextFile(new URL("state_dict.json", dir)));
  const shapes: Shapes = new Map();
  for (
    const [name, t] of Object.entries(table as Record<string, { shape: number[]; dtype: string }>)
  ) {
    shapes.set(name, { shape: t.shape, dtype: t.dtype === "int64" ? "int64" : "float32" });
  }
  return { shapes, json: await fixtureJson(dir) };
}

/** `base` with its image encoder replaced by the TinyViT table of `arch` (classifier kept). */
function withEncoder(base: Shapes, arch: TinyVitArch): Shapes {
  const out: Shapes = new Map();
  for (const [name, s] of tinyVitExpectedShapes(arch)) {
    out.set(name, { shape: s.shape, dtype: s.dtype === "int64" ? "int64" : "float32" });
  }
  const last = arch.stages[3].dim;
  out.set("image_encoder.head.weight", { shape: [1000, last] });
  out.set("image_encoder.head.bias", { shape: [1000] });
  for (const [name, s] of base) {
    if (name.startsWith("image_encoder.neck.0.")) {
      out.set(name, { shape: [s.shape[0], last, 1, 1] });
    } else if (!name.startsWith("image_encoder.") || name.startsWith("image_encoder.neck.")) {
      out.set(name, s);
    }
  }
  return out;
}

function variant(
  dims: number[],
  heads: number[],
  windows: number[],
  depths = [2, 2, 6, 2],
): TinyVitArch {
  const grids = [256, 128, 64, 64];
  return {
    imgSize: 1024,
    stemDim: dims[0] / 2,
    neckDim: 32,
    outGrid: 64,
    stages: dims.map((dim, i) => ({
      dim,
      depth: depths[i],
      grid: grids[i],
      mbconvHidden: i === 0 ? 4 * dim : 0,
      heads: i === 0 ? 0 : heads[i],
      window: i === 0 ? 0 : windows[i],
      mlpDim: i === 0 ? 0 : 4 * dim,
      localConv: i === 0 ? 0 : 3,
      downsample: i < 3
        ? { outDim: dims[i + 1], stride: grids[i + 1] === grids[i] ? 1 : 2, outGrid: grids[i + 1] }
        : null,
    })),
  };
}

Deno.test("TinyViT arch from the fixture's shapes matches fixture.json's architecture", async () => {
  const f = await fixtureShapes();
  if (!f) return;
  const tv = inferTinyVitArch(f.shapes);
  const stages = (f.json.architecture as { stages: Record<string, unknown>[] }).stages;
  assert.equal(tv.stemDim, 32);
  tv.stages.forEach((s, i) => {
    const want = stages[i] as {
      dim: number;
      depth: number;
      input_grid: number[];
      heads?: number;
      window?: number;
      mlp_hidden?: number;
      mbconv_hidden?: number;
      downsample?: { out_dim: number; stride: number; output_grid: number[] };
    };
    assert.equal(s.dim, want.dim, `stage ${i} dim`);
    assert.equal(s.depth, want.depth);
    assert.equal(s.grid, want.input_grid[0]);
    assert.equal(s.heads, want.heads ?? 0);
    assert.equal(s.window, want.window ?? 0);
    assert.equal(s.mlpDim, want.mlp_hidden ?? 0);
    assert.equal(s.mbconvHidden, want.mbconv_hidden ?? 0);
    assert.deepEqual(
      s.downsample,
      want.downsample
        ? {
          outDim: want.downsample.out_dim,
          stride: want.downsample.stride,
          outGrid: want.downsample.output_grid[0],
        }
        : null,
    );
  });
  const { arch } = inferMobileSamArch(f.shapes);
  assert.equal(arch.imgSize, 1024);
  assert.equal(arch.patchSize, 16); // the 64x64 embedding grid the decoder reads
  assert.equal(arch.promptEmbedDim, 32);
  assert.equal(arch.decoderMlpDim, 64);
  assert.equal(arch.embedDim, 320);
  assert.equal(arch.depth, 12);
});

Deno.test("TinyViT-11M / 21M widths, heads and windows (never shown as weights) are read back", async () => {
  const f = await fixtureShapes();
  if (!f) return;
  // tiny_vit_11m_224 / tiny_vit_21m_224 / tiny_vit_21m_512 shapes on MobileSAM's encoder.
  for (
    const arch of [
      variant([64, 128, 256, 448], [0, 4, 8, 14], [0, 7, 14, 7]),
      variant([96, 192, 384, 576], [0, 6, 12, 18], [0, 7, 14, 7]),
      variant([96, 192, 384, 576], [0, 6, 12, 18], [0, 16, 32, 16], [1, 3, 2, 1]),
    ]
  ) {
    const shapes = withEncoder(f.shapes, arch);
    assert.deepEqual(inferTinyVitArch(shapes), arch);
    const { arch: sam } = inferMobileSamArch(shapes);
    assert.equal(sam.embedDim, arch.stages[3].dim);
  }
});

Deno.test("TinyViT shapes that the official encoder cannot run, or that break the table, are refused", async () => {
  const f = await fixtureShapes();
  if (!f) return;
  // 160 -> 256 merges at stride 2: the last stage would see 32x32, not 64x64.
  const bad = withEncoder(f.shapes, variant([64, 128, 160, 320], [0, 4, 5, 10], [0, 7, 14, 7]));
  bad.set("image_encoder.layers.2.downsample.conv1.c.weight", { shape: [256, 160, 1, 1] });
  assert.throws(() => inferTinyVitArch(bad), /stage 3 would see a 32x32 grid/);
  const missing = new Map(f.shapes);
  missing.delete("image_encoder.layers.2.blocks.3.mlp.fc2.bias");
  assert.throws(
    () => inferMobileSamArch(missing as TensorShapes),
    /missing tensor 'image_encoder.layers.2.blocks.3.mlp.fc2.bias'/,
  );
  const extra = new Map(f.shapes);
  extra.set("image_encoder.layers.1.blocks.0.attn.extra", { shape: [3] });
  assert.throws(
    () => inferMobileSamArch(extra as TensorShapes),
    /unknown tensor 'image_encoder.layers.1.blocks.0.attn.extra'/,
  );
  const wrongBias = new Map(f.shapes);
  wrongBias.set("image_encoder.layers.1.blocks.1.attn.attention_biases", { shape: [4, 36] });
  assert.throws(() => inferMobileSamArch(wrongBias as TensorShapes), /attention_biases.*\[4,49\]/s);
});

/** The official Attention.__init__ construction: offsets numbered by first appearance. */
function officialBiasIdxs(w: number): number[] {
  const points: [number, number][] = [];
  for (let r = 0; r < w; r++) for (let c = 0; c < w; c++) points.push([r, c]);
  const offsets = new Map<string, number>();
  const idxs: number[] = [];
  for (const p1 of points) {
    for (const p2 of points) {
      const key = `${Math.abs(p1[0] - p2[0])},${Math.abs(p1[1] - p2[1])}`;
      if (!offsets.has(key)) offsets.set(key, offsets.size);
      idxs.push(offsets.get(key)!);
    }
  }
  return idxs;
}

Deno.test("attention_bias_idxs and the gathered table match the official construction", () => {
  for (const w of [1, 2, 3, 7, 14]) {
    assert.deepEqual([...attentionBiasIndex(w)], officialBiasIdxs(w), `window ${w}`);
  }
  const heads = 2, w = 3, n = 9;
  const biases = Float32Array.from({ length: heads * n }, (_, i) => i);
  const table = gatherBiasTable(biases, heads, w);
  const idx = officialBiasIdxs(w);
  for (let h = 0; h < heads; h++) {
    for (let k = 0; k < n * n; k++) assert.equal(table[h * n * n + k], biases[h * n + idx[k]]);
  }
});

Deno.test("qkvToSamLayout: per-head [q k v] rows become [all q | all k | all v]", () => {
  // 2 heads, d = 2, rows of length 1: TinyViT order q0 q0 k0 k0 v0 v0 q1 q1 k1 k1 v1 v1.
  const rows = Float32Array.from([0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121]);
  assert.deepEqual([...qkvToSamLayout(rows, 2, 2)], [
    0,
    1,
    100,
    101,
    10,
    11,
    110,
    111,
    20,
    21,
    120,
    121,
  ]);
  // Rows of length 2 move whole.
  const wide = Float32Array.from({ length: 12 }, (_, i) => i);
  assert.deepEqual([...qkvToSamLayout(wide, 2, 1)], [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
});
