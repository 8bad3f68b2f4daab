/**
 * The new report rows' arithmetic and text, no GPU: FLOP counts of the light encoders (#18)
 * against hand counts, the peer graphs made at their real shapes (read back field by field),
 * the variants table (#15) and the page section (#23).
 */
import assert from "node:assert/strict";
import {
  edgePeerGraphs,
  narrowVit,
  readFields,
  SLIMSAM_77_WIDTHS,
  widenNeck,
  writeFields,
} from "../../bench/peer/onnx_graphs.ts";
import { LABELS } from "../../bench/report/cases.ts";
import { SLIMSAM_77, TINYVIT_5M } from "../../bench/report/edge_models.ts";
import { EDGE_CASES } from "../../bench/report/edge_rows.ts";
import { flopsEncoder, flopsTinyVit } from "../../bench/report/flops.ts";
import { type Measure, notMeasured } from "../../bench/report/measure.ts";
import { formatPageSection } from "../../bench/report/page_rows.ts";
import { formatVariants, type VariantRow } from "../../bench/report/variants_rows.ts";
import type { TinyVitArch } from "../../src/mobile_sam/arch.ts";
import { sharedFixture, skipIfMissing } from "../util/fixtures.ts";

Deno.test("flopsTinyVit: a two-stage TinyViT counted by hand", () => {
  const tv: TinyVitArch = {
    imgSize: 32,
    stemDim: 4,
    neckDim: 8,
    outGrid: 4,
    stages: [
      {
        dim: 8,
        depth: 1,
        grid: 8,
        mbconvHidden: 32,
        heads: 0,
        window: 0,
        mlpDim: 0,
        localConv: 0,
        downsample: { outDim: 16, stride: 2, outGrid: 4 },
      },
      {
        dim: 16,
        depth: 1,
        grid: 4,
        mbconvHidden: 0,
        heads: 2,
        window: 3,
        mlpDim: 64,
        localConv: 3,
        downsample: null,
      },
    ],
  };
  // Multiply-adds, op by op.
  const stem = 16 * 16 * 4 * 27 + 8 * 8 * 8 * 9 * 4;
  const mbconv = 64 * 8 * 32 + 64 * 32 * 9 + 64 * 32 * 8;
  const merge = 64 * 8 * 16 + 4 * 4 * 16 * 9 + 4 * 4 * 16 * 16;
  // Grid 4 padded to 6 for window 3: 36 rows, 4 windows of 9 tokens.
  const attn = 36 * 16 * 48 + 2 * 4 * 9 * 9 * 16 + 36 * 16 * 16 + 16 * 16 * 9 +
    2 * 16 * 16 * 64;
  const neck = 16 * 16 * 8 + 16 * 8 * 8 * 9;
  assert.equal(flopsTinyVit(tv), 2 * (stem + mbconv + merge + attn + neck));
});

Deno.test("flopsTinyVit: TinyViT-5M at 1024 px is MobileSAM's ~39 G multiply-adds", () => {
  const macs = flopsTinyVit(TINYVIT_5M) / 2;
  assert.ok(macs > 37e9 && macs < 41e9, `${macs / 1e9} GMACs`);
});

Deno.test("flopsEncoder: SlimSAM-77 counted by hand (8 windowed and 4 global blocks)", () => {
  const patch = 2 * 4096 * 168 * 768;
  // Windowed: 64 padded to 70, 25 windows of 196 tokens = 4900 rows.
  const windowed = 2 * 4900 * 168 * 504 + 2 * 2 * 25 * 196 * 196 * 168 +
    2 * 2 * 25 * 196 * 14 * 168 + 2 * 4900 * 168 * 168 + 2 * 2 * 4096 * 168 * 696;
  const global = 2 * 4096 * 168 * 504 + 2 * 2 * 4096 * 4096 * 168 +
    2 * 2 * 4096 * 64 * 168 + 2 * 4096 * 168 * 168 + 2 * 2 * 4096 * 168 * 696;
  const neck = 2 * 4096 * 168 * 256 + 2 * 4096 * 256 * 256 * 9;
  assert.equal(flopsEncoder(SLIMSAM_77), patch + 8 * windowed + 4 * global + neck);
  assert.equal(SLIMSAM_77.embedDim / SLIMSAM_77.numHeads, SLIMSAM_77_WIDTHS.headDim);
  assert.equal(SLIMSAM_77.encoderMlpDim, SLIMSAM_77_WIDTHS.mlpDim);
});

Deno.test("edge rows: each case has a label and its FLOPs", () => {
  assert.deepEqual(EDGE_CASES.map((c) => c.id), ["encoder_mobilesam", "encoder_slimsam_77"]);
  for (const c of EDGE_CASES) assert.ok(LABELS[c.id], c.id);
  assert.equal(EDGE_CASES[0].flops, flopsTinyVit(TINYVIT_5M));
  assert.equal(EDGE_CASES[1].flops, flopsEncoder(SLIMSAM_77));
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (f: { value: bigint | Uint8Array }) => f.value as Uint8Array;

/** name -> int64 values of every int64 raw-data initializer; name -> dims of every other. */
function initializers(model: Uint8Array) {
  const graph = readFields(bytes(readFields(model).find((f) => f.field === 7)!));
  const ints = new Map<string, bigint[]>(), dims = new Map<string, number[]>();
  const ext = new Map<string, Record<string, string>>();
  for (const f of graph.filter((f) => f.field === 5)) {
    const t = readFields(bytes(f));
    const name = text(bytes(t.find((x) => x.field === 8)!));
    const raw = t.find((x) => x.field === 9);
    if (t.find((x) => x.field === 2)?.value === 7n && raw) {
      ints.set(name, [...new BigInt64Array(bytes(raw).slice().buffer)]);
    }
    dims.set(name, t.filter((x) => x.field === 1).map((x) => Number(x.value)));
    const e = t.filter((x) => x.field === 13).map((x) => readFields(bytes(x)));
    if (e.length) {
      ext.set(name, Object.fromEntries(e.map((kv) => [text(bytes(kv[0])), text(bytes(kv[1]))])));
    }
  }
  const output = readFields(bytes(graph.find((f) => f.field === 12)!));
  return { ints, dims, ext, outputHasType: output.some((x) => x.field === 2), graph };
}

const vitB = sharedFixture("bench/sam_vit_b_encoder.shape-only.onnx");
const mobile = sharedFixture("mobilesam/encoder.onnx");

Deno.test({
  name: "onnx graphs: fields read and written back give the same bytes",
  ignore: skipIfMissing(mobile, "mobilesam/encoder.onnx"),
  fn: async () => {
    const b = await Deno.readFile(mobile!);
    assert.deepEqual(writeFields(readFields(b)), b);
    const graph = readFields(b).find((f) => f.field === 7)!;
    assert.deepEqual(writeFields(readFields(bytes(graph))), bytes(graph));
  },
});

Deno.test({
  name: "narrowVit: ViT-B's shape-only graph at SlimSAM-77's widths, nothing of ViT-B's left",
  ignore: skipIfMissing(vitB, "bench/sam_vit_b_encoder.shape-only.onnx"),
  fn: async () => {
    const { graph, changed } = narrowVit(await Deno.readFile(vitB!), SLIMSAM_77_WIDTHS);
    const { ints } = initializers(graph);
    assert.deepEqual(ints.get("blocks.0.attn.qkv.bias__shape"), [504n]);
    assert.deepEqual(ints.get("blocks.5.mlp.lin1.bias__shape"), [696n]);
    assert.deepEqual(ints.get("blocks.0.attn.rel_pos_h__shape"), [27n, 14n]);
    assert.deepEqual(ints.get("blocks.2.attn.rel_pos_w__shape"), [127n, 14n]);
    assert.deepEqual(ints.get("pos_embed__shape"), [1n, 64n, 64n, 168n]);
    assert.deepEqual(ints.get("neck.0.weight__shape"), [256n, 168n, 1n, 1n]);
    assert.deepEqual(ints.get("neck.2.weight__shape"), [256n, 256n, 3n, 3n]);
    for (const [name, v] of ints) {
      assert.ok(!v.some((x) => x === 768n || x === 2304n || x === 3072n), `${name}: ${v}`);
    }
    // Every weight shape but the neck's 3x3 and the LayerNorm2d's (256 wide) changed, and
    // the two constants holding the width.
    assert.ok(changed >= 150, `${changed}`);
    // The same widths back give ViT-B's graph's shapes.
    const back = initializers(
      narrowVit(graph, { embedDim: 768, headDim: 64, mlpDim: 3072 }, SLIMSAM_77_WIDTHS).graph,
    );
    const orig = initializers(await Deno.readFile(vitB!));
    for (const [name, v] of orig.ints) assert.deepEqual(back.ints.get(name), v, name);
  },
});

Deno.test({
  name: "widenNeck: MobileSAM's fixture graph with a 256-wide neck, data in a second file",
  ignore: skipIfMissing(mobile, "mobilesam/encoder.onnx"),
  fn: async () => {
    const before = await Deno.readFile(mobile!);
    const { graph, data, changed } = widenNeck(before, 256, "neck256.bin");
    assert.equal(changed, 6);
    const { dims, ext, outputHasType } = initializers(graph);
    const neck = (k: string) => `neck.${k}`; // the graph's names: the module's, unprefixed
    assert.deepEqual(dims.get(neck("0.weight")), [256, 320, 1, 1]);
    assert.deepEqual(dims.get(neck("1.weight")), [256]);
    assert.deepEqual(dims.get(neck("2.weight")), [256, 256, 3, 3]);
    assert.deepEqual(dims.get(neck("3.bias")), [256]);
    let end = 0;
    for (const k of ["0.weight", "1.weight", "1.bias", "2.weight", "3.weight", "3.bias"]) {
      const e = ext.get(neck(k))!;
      assert.equal(e.location, "neck256.bin");
      const n = dims.get(neck(k))!.reduce((a, b) => a * b, 1);
      assert.equal(Number(e.length), 4 * n, k);
      assert.equal(Number(e.offset), end, k); // packed in order
      end += 4 * n;
    }
    assert.equal(data.length, end);
    // Every other tensor still points into mobilesam.pth, unchanged.
    const orig = initializers(before);
    for (const [name, e] of orig.ext) {
      if (!name.startsWith("neck.")) assert.deepEqual(ext.get(name), e, name);
    }
    assert.equal(outputHasType, true); // a float tensor type, without the old 32-wide shape
  },
});

Deno.test({
  name: "edgePeerGraphs: both graphs written, external data files named",
  ignore: skipIfMissing(vitB, "bench graphs") || skipIfMissing(mobile, "mobilesam"),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const g = await edgePeerGraphs(dir);
      assert.ok(typeof g.mobilesam !== "string" && typeof g.slimsam_77 !== "string");
      if (typeof g.mobilesam === "string" || typeof g.slimsam_77 === "string") return;
      assert.deepEqual(g.mobilesam.externalData!.map((e) => e.location), [
        "mobilesam.pth",
        "neck256.bin",
      ]);
      for (const e of g.mobilesam.externalData!) assert.ok(Deno.statSync(e.path).isFile);
      assert.ok(Deno.statSync(g.slimsam_77.path).size > 100_000);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const ok = (ms: number): Measure => ({
  status: "ok",
  ms,
  runsMs: [ms],
  warmupMs: [],
  timing: "wall+readback",
});

Deno.test("formatVariants: cells with GFLOP/s, speed-ups over f32 default, numbered notes", () => {
  const f16 = notMeasured("ours: f16: SamModel.load has no precision");
  const rows: VariantRow[] = [
    {
      model: "sam-mini",
      stage: "encoder",
      flops: 31.2e9,
      cells: {
        "f32 default": ok(40_000),
        "f32 tuned": ok(20_000),
        "f16 default": f16,
        "f16 tuned": f16,
      },
      peerWasm: ok(10_000),
    },
    {
      model: "mobilesam",
      stage: "click",
      flops: null,
      cells: {
        "f32 default": ok(300),
        "f32 tuned": notMeasured("ours: no tune table"),
        "f16 default": ok(150),
        "f16 tuned": f16,
      },
      peerWasm: notMeasured("peer: see the decoder rows"),
    },
  ];
  const md = formatVariants(rows, "llvmpipe");
  const lines = md.split("\n");
  const mini = lines.find((l) => l.startsWith("| sam-mini | encoder |"))!;
  // 31.2 GFLOP in 40 s = 0.78 GFLOP/s; tuned 2x; wasm 4x faster than ours.
  assert.equal(
    mini,
    "| sam-mini | encoder | 31.2 | 40000 (0.780 GFLOP/s) | 20000 (1.6 GFLOP/s) | n/m [1] | " +
      "n/m [1] | 2.00x | – | 10000 (3.1 GFLOP/s) | 0.25x |",
  );
  const mob = lines.find((l) => l.startsWith("| mobilesam | click |"))!;
  assert.equal(
    mob,
    "| mobilesam | click | – | 300 | n/m [2] | 150 | n/m [1] | – | 2.00x | n/m [3] | – |",
  );
  assert.ok(md.includes("1. ours: f16: SamModel.load has no precision"));
  assert.ok(md.includes("2. ours: no tune table"));
  assert.ok(md.includes("3. peer: see the decoder rows"));
  assert.ok(md.includes("on llvmpipe"));
});

Deno.test("formatPageSection: both sides with their adapters, or why not measured", () => {
  const md = formatPageSection({
    status: "ok",
    model: "sam-tiny",
    image: "image.png",
    clicks: 3,
    rows: [
      {
        where: "page",
        adapter: "SwiftShader (Chromium)",
        decodeMs: 812.25,
        clickMs: 840,
        clicks: 3,
      },
      { where: "server", adapter: "llvmpipe", decodeMs: 95.5, clickMs: 120.04, clicks: 3 },
    ],
  });
  assert.ok(md.includes("| in the page | SwiftShader (Chromium) | 812.3 | 840.0 | 3 |"), md);
  assert.ok(md.includes("| server round trip | llvmpipe | 95.5 | 120.0 | 3 |"), md);
  assert.ok(md.includes("Medians of 3 clicks a side"));
  const nm = formatPageSection({ status: "not measured", reason: "no Chromium at /x" });
  assert.ok(nm.includes("Not measured: no Chromium at /x."));
});
