import assert from "node:assert/strict";
import { fixtureDir, fixtureJson, skipIfMissing } from "../util/fixtures.ts";
import { inferArch } from "../../src/weights/arch.ts";
import { loadSam, loadStateDict, tensorF32 } from "../../src/weights/load.ts";
import { MAX_STORAGE_REUSE, PthArchive, readPth } from "../../src/weights/pth.ts";
import { MAX_DEFLATE_RATIO } from "../../src/weights/zip.ts";
import type { SamArch, StateDict } from "../../src/weights/types.ts";
import {
  buildPth,
  f32Bytes,
  type FakeTensor,
  PickleWriter,
  stateDictPickle,
  withTempDir,
  writeTemp,
} from "./helpers.ts";

interface TensorSummary {
  shape: number[];
  dtype: string;
  sum: number;
  abs_sum: number;
  first: number[];
}

/** Checks every tensor against the fixture's state_dict.json (sums in float64). */
async function checkAgainstSummary(sd: StateDict, dir: URL) {
  const summary: Record<string, TensorSummary> = JSON.parse(
    await Deno.readTextFile(new URL("state_dict.json", dir)),
  );
  assert.deepEqual([...sd.keys()], Object.keys(summary), "tensor names and order");
  for (const [name, ref] of Object.entries(summary)) {
    const t = sd.get(name)!;
    assert.deepEqual(t.shape, ref.shape, `${name} shape`);
    assert.equal(t.dtype, ref.dtype, `${name} dtype`);
    const values = tensorF32(t);
    assert.equal(values.length, ref.shape.reduce((a, b) => a * b, 1), `${name} size`);
    let sum = 0, absSum = 0;
    for (const v of values) {
      sum += v;
      absSum += Math.abs(v);
    }
    // float64 sums in a different order than torch's: agree to ~1e-12 of the magnitude.
    const tol = 1e-9 * ref.abs_sum + 1e-12;
    assert.ok(Math.abs(sum - ref.sum) <= tol, `${name} sum ${sum} vs ${ref.sum}`);
    assert.ok(Math.abs(absSum - ref.abs_sum) <= tol, `${name} abs_sum ${absSum} vs ${ref.abs_sum}`);
    assert.deepEqual([...values.subarray(0, ref.first.length)], ref.first, `${name} first values`);
  }
}

/** The fixture's `config`, in SamArch terms (the fields it lists). */
function configAsArch(config: Record<string, unknown>): Partial<SamArch> {
  return {
    imgSize: config.img_size as number,
    patchSize: config.patch_size as number,
    embedDim: config.embed_dim as number,
    depth: config.depth as number,
    numHeads: config.num_heads as number,
    windowSize: config.window_size as number,
    globalAttnIndexes: config.global_attn_indexes as number[],
    promptEmbedDim: config.prompt_embed_dim as number,
    decoderMlpDim: config.decoder_mlp_dim as number,
    iouHeadHiddenDim: config.iou_head_hidden_dim as number,
  };
}

function pickFields(arch: SamArch, like: Partial<SamArch>): Partial<SamArch> {
  return Object.fromEntries(Object.keys(like).map((k) => [k, arch[k as keyof SamArch]]));
}

for (const name of ["sam-tiny", "sam-mini"]) {
  Deno.test(`${name}.pth loads, matches state_dict.json, and its architecture is inferred`, async () => {
    const dir = fixtureDir(name);
    if (skipIfMissing(dir, `${name} checkpoint`)) return;
    const path = new URL(`${name}.pth`, dir!);
    const started = performance.now();
    const { sd, arch } = await loadSam(path);
    const ms = performance.now() - started;
    const bytes = [...sd.values()].reduce((s, t) => s + t.bytes.length, 0);
    console.log(
      `${name}.pth: ${sd.size} tensors, ${(bytes / 1e6).toFixed(1)} MB loaded and validated ` +
        `in ${ms.toFixed(0)} ms`,
    );
    await checkAgainstSummary(sd, dir!);
    const expected = configAsArch((await fixtureJson(dir!)).config);
    assert.deepEqual(pickFields(arch, expected), expected);
    assert.equal(arch.decoderNumHeads, 8);
    assert.equal(arch.numMultimaskOutputs, 3);
    assert.equal(arch.iouHeadDepth, 3);
    assert.equal(arch.decoderDepth, 2);
    assert.equal(arch.encoderMlpDim, 4 * arch.embedDim);
    assert.equal(arch.decoderCrossAttnDim, arch.promptEmbedDim / 2);
  });
}

const EXTRA = { name: "x", key: "0", storageNumel: 6 };

Deno.test("synthetic .pth: offsets, shared storages, strided views, prefix, metadata", async () => {
  const values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const tensors: FakeTensor[] = [
    { name: "whole", key: "s", storageNumel: 12, shape: [3, 4] },
    // Second half of the same storage.
    { name: "tail", key: "s", storageNumel: 12, offset: 6, shape: [2, 3] },
    // Transposed view of the first 6 elements: rows of the (2,3) matrix become columns.
    { name: "transposed", key: "s", storageNumel: 12, shape: [3, 2], stride: [1, 3] },
    // Size-1 dims may carry any stride and still be contiguous.
    { name: "unit", key: "s", storageNumel: 12, offset: 2, shape: [1, 3], stride: [99, 1] },
    { name: "half", key: "h", storageNumel: 2, storageType: "HalfStorage", shape: [2] },
    { name: "empty", key: "s", storageNumel: 12, shape: [0, 4] },
  ];
  const half = new Uint8Array([0x00, 0x3c, 0x00, 0xc0]); // 1.0, -2.0
  for (const options of [{}, { zip64: true }, { method: 8 as const }, { alignData: 64 }]) {
    await withTempDir(async (dir) => {
      const pth = await buildPth(stateDictPickle(tensors), { s: f32Bytes(values), h: half }, {
        ...options,
        prefix: "some-model_v2",
      });
      const sd = await readPth(await writeTemp(dir, "m.pth", pth));
      const label = JSON.stringify(options);
      assert.deepEqual([...sd.keys()], tensors.map((t) => t.name), label);
      assert.deepEqual([...tensorF32(sd.get("whole")!)], values, label);
      assert.deepEqual([...tensorF32(sd.get("tail")!)], [6, 7, 8, 9, 10, 11], label);
      assert.deepEqual([...tensorF32(sd.get("transposed")!)], [0, 3, 1, 4, 2, 5], label);
      assert.deepEqual([...tensorF32(sd.get("unit")!)], [2, 3, 4], label);
      assert.deepEqual(sd.get("half")!.dtype, "float16");
      assert.deepEqual([...tensorF32(sd.get("half")!)], [1, -2], label);
      assert.deepEqual(sd.get("empty")!.bytes.length, 0, label);
    });
  }
});

Deno.test("a tensor whose storage is shorter than its shape needs is refused, naming it", async () => {
  await withTempDir(async (dir) => {
    // Shape (4,4) needs 16 elements; the entry holds 8.
    const short = await buildPth(
      stateDictPickle([{ name: "blocks.0.w", key: "0", storageNumel: 16, shape: [4, 4] }]),
      { "0": f32Bytes(new Array(8).fill(1)) },
    );
    await assert.rejects(
      readPth(await writeTemp(dir, "short.pth", short)),
      /tensor 'blocks\.0\.w' of shape \[4,4\].*needs 16 elements.*holds only 8/,
    );
    // An offset past what the storage holds.
    const offset = await buildPth(
      stateDictPickle([{ ...EXTRA, name: "late", offset: 4, shape: [3] }]),
      { "0": f32Bytes([1, 2, 3, 4, 5, 6]) },
    );
    await assert.rejects(readPth(await writeTemp(dir, "offset.pth", offset)), /'late'.*needs 7/);
    const missing = await buildPth(stateDictPickle([{ ...EXTRA, key: "9", shape: [6] }]), {});
    await assert.rejects(
      readPth(await writeTemp(dir, "missing.pth", missing)),
      /tensor 'x': storage entry 'archive\/data\/9' is missing/,
    );
  });
});

Deno.test("hostile pickles inside a .pth are refused before anything is read", async () => {
  await withTempDir(async (dir) => {
    const evil = new PickleWriter().proto(2).global("os", "system").str("touch /tmp/pwned")
      .op(0x85).reduce().stop().done();
    await assert.rejects(
      loadStateDict(await writeTemp(dir, "evil.pth", await buildPth(evil, {}))),
      /pickle: refusing global 'os\.system'/,
    );
    const unknownStorage = await buildPth(
      stateDictPickle([{ ...EXTRA, storageType: "BoolStorage", shape: [6] }]),
      { "0": new Uint8Array(6) },
    );
    await assert.rejects(
      readPth(await writeTemp(dir, "bool.pth", unknownStorage)),
      /storage type 'torch\.BoolStorage' is not supported/,
    );
  });
});

async function tinyPthBytes(): Promise<Uint8Array> {
  return await Deno.readFile(new URL("sam-tiny.pth", fixtureDir("sam-tiny")!));
}

/** Offset of the central directory, read from the end-of-central-directory record. */
function centralDirectoryOffset(zip: Uint8Array): number {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  for (let i = zip.length - 22; i >= 0; i--) {
    if (view.getUint32(i, true) === 0x06054b50) return view.getUint32(i + 16, true);
  }
  throw new Error("no EOCD");
}

Deno.test("truncated and corrupt archives are refused with the offset", async () => {
  const full = await tinyPthBytes();
  const cdAt = centralDirectoryOffset(full);
  const eocd = full.subarray(full.length - 22);
  await withTempDir(async (dir) => {
    const half = await writeTemp(dir, "half.pth", full.subarray(0, full.length >> 1));
    await assert.rejects(loadStateDict(half), /end of central directory record not found/);
    const noCd = await writeTemp(dir, "nocd.pth", full.subarray(0, cdAt));
    await assert.rejects(loadStateDict(noCd), /end of central directory record not found/);
    // The record survives but the directory it points at was cut away.
    const cut = new Uint8Array(cdAt + 22);
    cut.set(full.subarray(0, cdAt));
    cut.set(eocd, cdAt);
    await assert.rejects(
      loadStateDict(await writeTemp(dir, "cut.pth", cut)),
      new RegExp(`central directory at offset ${cdAt} .* extends past the end of the file`),
    );
    // First central header's local-header offset moved by one byte: no signature there.
    const shifted = full.slice();
    const view = new DataView(shifted.buffer);
    view.setUint32(cdAt + 42, view.getUint32(cdAt + 42, true) + 1, true);
    await assert.rejects(
      loadStateDict(await writeTemp(dir, "shifted.pth", shifted)),
      /bad local header signature at offset 1 for entry 'sam-tiny\/data\.pkl'/,
    );
    // A local-header offset past the end of the file.
    const far = full.slice();
    new DataView(far.buffer).setUint32(cdAt + 42, full.length + 100, true);
    await assert.rejects(
      loadStateDict(await writeTemp(dir, "far.pth", far)),
      /entry 'sam-tiny\/data\.pkl' \(local header at offset \d+.* past the end of the file/,
    );
    // Garbage in the central directory's signature.
    const badCd = full.slice();
    badCd[cdAt] = 0;
    await assert.rejects(
      loadStateDict(await writeTemp(dir, "badcd.pth", badCd)),
      new RegExp(`bad central directory header 0 of \\d+ at offset ${cdAt}`),
    );
    // A flipped byte in data.pkl fails its CRC.
    const flipped = full.slice();
    flipped[100] ^= 0xff;
    await assert.rejects(
      loadStateDict(await writeTemp(dir, "crc.pth", flipped)),
      /CRC mismatch in entry 'sam-tiny\/data\.pkl'/,
    );
  });
});

Deno.test("PthArchive describes tensors before reading any data", async () => {
  const archive = await PthArchive.open(new URL("sam-tiny.pth", fixtureDir("sam-tiny")!));
  try {
    assert.equal(archive.prefix, "sam-tiny/");
    assert.equal(archive.tensors.length, 174);
    const arch = inferArch(new Map(archive.tensors.map((t) => [t.name, t])));
    assert.equal(arch.embedDim, 32);
    const pos = archive.tensors[0];
    assert.equal(pos.name, "image_encoder.pos_embed");
    assert.equal(pos.byteLength, 16 * 16 * 32 * 4);
    assert.equal((await pos.read()).length, pos.byteLength);
  } finally {
    archive.close();
  }
});

Deno.test("deflated entries may not inflate past their declared size, nor be corrupt", async () => {
  const pickle = stateDictPickle([{ ...EXTRA, shape: [6] }]);
  const zip = await buildPth(pickle, { "0": f32Bytes([1, 2, 3, 4, 5, 6]) }, { method: 8 });
  const cdAt = centralDirectoryOffset(zip);
  await withTempDir(async (dir) => {
    // Declared size of data.pkl (first entry) shrunk to 10 bytes: a zip bomb's lie.
    const bomb = zip.slice();
    new DataView(bomb.buffer).setUint32(cdAt + 24, 10, true);
    await assert.rejects(
      readPth(await writeTemp(dir, "bomb.pth", bomb)),
      /entry 'archive\/data\.pkl' inflates past its declared 10 bytes/,
    );
    // Deflate data of data.pkl overwritten with an invalid block type.
    const corrupt = zip.slice();
    const dataAt = 30 + "archive/data.pkl".length;
    corrupt[dataAt] = 0xff;
    await assert.rejects(
      readPth(await writeTemp(dir, "corrupt.pth", corrupt)),
      /entry 'archive\/data\.pkl': corrupt deflate data/,
    );
  });
});

Deno.test("a few bytes of file cannot stand for gigabytes of tensor", async () => {
  await withTempDir(async (dir) => {
    const one = { "0": f32Bytes([1]) };
    // An expanded (stride 0) view: one float read 2^26 times, 256 MiB from a 4-byte storage.
    const broadcast = await buildPth(
      stateDictPickle([{ name: "big", key: "0", storageNumel: 1, shape: [1 << 26], stride: [0] }]),
      one,
    );
    await assert.rejects(
      readPth(await writeTemp(dir, "broadcast.pth", broadcast)),
      /tensor 'big' of shape \[67108864\] with strides \[0\] reads 1 storage elements 67108864 times/,
    );
    // Overlapping strides: a (3, 3) view of 5 elements.
    const overlap = await buildPth(
      stateDictPickle([{ ...EXTRA, name: "o", shape: [3, 3], stride: [1, 1] }]),
      { "0": f32Bytes([1, 2, 3, 4, 5, 6]) },
    );
    await assert.rejects(readPth(await writeTemp(dir, "overlap.pth", overlap)), /'o'.*overlapping/);

    // Whole-storage views: MAX_STORAGE_REUSE of them load, one more is refused.
    const views = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ ...EXTRA, name: `v${i}`, shape: [6] }));
    const values = { "0": f32Bytes([1, 2, 3, 4, 5, 6]) };
    const fine = await buildPth(stateDictPickle(views(MAX_STORAGE_REUSE)), values);
    const sd = await readPth(await writeTemp(dir, "fine.pth", fine));
    assert.deepEqual([...tensorF32(sd.get(`v${MAX_STORAGE_REUSE - 1}`)!)], [1, 2, 3, 4, 5, 6]);
    const reused = await buildPth(stateDictPickle(views(MAX_STORAGE_REUSE + 1)), values);
    await assert.rejects(
      readPth(await writeTemp(dir, "reused.pth", reused)),
      new RegExp(
        `need ${(MAX_STORAGE_REUSE + 1) * 24} bytes.*hold 24.*over ${MAX_STORAGE_REUSE} times`,
      ),
    );

    // A deflated storage of 64 MiB of zeros (~64 KB in the file): a zip bomb by its ratio.
    const zeros = new Uint8Array(64 << 20);
    const bomb = await buildPth(
      stateDictPickle([{ name: "z", key: "0", storageNumel: 16 << 20, shape: [16 << 20] }]),
      { "0": zeros },
      { method: 8 },
    );
    assert.ok(bomb.length < (64 << 20) / MAX_DEFLATE_RATIO, `bomb is ${bomb.length} bytes`);
    await assert.rejects(
      readPth(await writeTemp(dir, "bomb.pth", bomb)),
      /deflated entries up to 'archive\/data\/0' claim \d+ bytes.*zip bomb/,
    );
    // Many small bombs, each within the ratio's allowance on its own, add up and are refused.
    const many = 64;
    const small = await buildPth(
      stateDictPickle(
        Array.from({ length: many }, (_, i) => ({
          name: `z${i}`,
          key: `${i}`,
          storageNumel: 1 << 18,
          shape: [1 << 18],
        })),
      ),
      Object.fromEntries(Array.from({ length: many }, (_, i) => [`${i}`, new Uint8Array(1 << 20)])),
      { method: 8 },
    );
    await assert.rejects(readPth(await writeTemp(dir, "many.pth", small)), /zip bomb/);
  });
});
