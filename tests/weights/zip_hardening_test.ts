/**
 * Hostile archives: deflated storages viewed by many tensors are inflated once, entries may
 * not alias or overlap one region of the file, and every entry read is checked against its
 * CRC-32, storages included.
 */
import assert from "node:assert/strict";
import { tensorF32 } from "../../src/weights/load.ts";
import { PthArchive, readPth } from "../../src/weights/pth.ts";
import {
  buildPth,
  buildZip,
  f32Bytes,
  type FakeTensor,
  stateDictPickle,
  withTempDir,
  writeTemp,
  type ZipFile,
} from "./helpers.ts";

/** Values that deflate poorly, so a storage of them passes the zip-bomb ratio. */
function noise(count: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: count }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  });
}

/** Offset of the central directory, from the end-of-central-directory record. */
function centralDirectoryOffset(zip: Uint8Array): number {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  for (let i = zip.length - 22; i >= 0; i--) {
    if (view.getUint32(i, true) === 0x06054b50) return view.getUint32(i + 16, true);
  }
  throw new Error("no EOCD");
}

/** Offsets of the central headers, in directory order. */
function centralHeaders(zip: Uint8Array): number[] {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const out: number[] = [];
  for (let p = centralDirectoryOffset(zip); view.getUint32(p, true) === 0x02014b50;) {
    out.push(p);
    p += 46 + view.getUint16(p + 28, true) + view.getUint16(p + 30, true) +
      view.getUint16(p + 32, true);
  }
  return out;
}

Deno.test("many views into deflated storages: each storage is inflated once", async () => {
  const views = 200, width = 256;
  const a = noise(views * width, 1), b = noise(views * width, 2);
  // Views of the two storages interleaved, as a state dict may order them.
  const tensors: FakeTensor[] = [];
  for (let i = 0; i < views; i++) {
    for (const key of ["a", "b"]) {
      tensors.push({
        name: `${key}${i}`,
        key,
        storageNumel: views * width,
        offset: i * width,
        shape: [width],
      });
    }
  }
  const pth = await buildPth(stateDictPickle(tensors), { a: f32Bytes(a), b: f32Bytes(b) }, {
    method: 8,
  });
  await withTempDir(async (dir) => {
    const archive = await PthArchive.open(await writeTemp(dir, "views.pth", pth));
    try {
      assert.equal(archive.zip.inflations, 1, "data.pkl");
      const t0 = performance.now();
      for (const t of archive.tensors) {
        const values = new Float32Array((await t.read()).buffer);
        const i = Number(t.name.slice(1));
        const from = t.name[0] === "a" ? a : b;
        assert.equal(values[0], Math.fround(from[i * width]), t.name);
        assert.equal(values[width - 1], Math.fround(from[(i + 1) * width - 1]), t.name);
      }
      // data.pkl and the two storages: once each, not once per view (which took minutes).
      assert.equal(archive.zip.inflations, 3);
      assert.ok(performance.now() - t0 < 10_000, "400 views read in under 10 s");
      // A read beyond the announced ones still works (it reads the entry again).
      assert.equal((await archive.tensors[0].read()).length, width * 4);
    } finally {
      archive.close();
    }
  });
});

Deno.test("zip entries may not alias or overlap one region of the file", async () => {
  const values = f32Bytes(noise(1024, 3));
  const tensors: FakeTensor[] = Array.from({ length: 50 }, (_, i) => ({
    name: `t${i}`,
    key: String(i),
    storageNumel: 1024,
    shape: [1024],
  }));
  const pickle = stateDictPickle(tensors);
  await withTempDir(async (dir) => {
    // 49 central-directory entries naming storage 0's local header and data: 50 storages'
    // worth of tensors from one storage's bytes.
    const files: ZipFile[] = [
      { name: "archive/data.pkl", data: pickle },
      { name: "archive/data/0", data: values },
    ];
    for (let i = 1; i < 50; i++) {
      files.push({ name: `archive/data/${i}`, data: values, aliasOf: "archive/data/0" });
    }
    const aliased = await writeTemp(dir, "aliased.pth", await buildZip(files));
    await assert.rejects(
      PthArchive.open(aliased),
      /entry 'archive\/data\/\d+' \(offset \d+, at least \d+ bytes\) overlaps entry 'archive\/data\/\d+' at offset \d+: entries may not share bytes/,
    );

    // Two distinct storages; the second's directory entry moved into the first's data.
    const two = await buildPth(stateDictPickle(tensors.slice(0, 2)), { 0: values, 1: values });
    const headers = centralHeaders(two);
    const view = new DataView(two.buffer);
    const inside = two.slice();
    const first = view.getUint32(headers[1] + 42, true);
    new DataView(inside.buffer).setUint32(headers[2] + 42, first + 64, true);
    await assert.rejects(
      PthArchive.open(await writeTemp(dir, "inside.pth", inside)),
      /entry 'archive\/data\/0' .* overlaps entry 'archive\/data\/1' at offset/,
    );

    // A local header whose extra field pushes its data into the next entry (the directory
    // alone cannot see it): refused when the entry is read.
    const pushed = two.slice();
    new DataView(pushed.buffer).setUint16(first + 28, 64, true);
    const archive = await PthArchive.open(await writeTemp(dir, "pushed.pth", pushed));
    try {
      await assert.rejects(
        archive.tensors[0].read(),
        /data of 'archive\/data\/0' \(offset \d+, 4096 bytes\) overlaps what follows it at offset \d+/,
      );
    } finally {
      archive.close();
    }
  });
});

Deno.test("a storage whose bytes do not match its CRC-32 is refused, stored or deflated", async () => {
  const values = noise(256, 4);
  const pickle = stateDictPickle([{ name: "w", key: "0", storageNumel: 256, shape: [256] }]);
  await withTempDir(async (dir) => {
    for (const method of [0, 8] as const) {
      const pth = await buildPth(pickle, { 0: f32Bytes(values) }, { method });
      const sd = await readPth(await writeTemp(dir, `ok${method}.pth`, pth));
      assert.equal(tensorF32(sd.get("w")!)[255], Math.fround(values[255]));
      const headers = centralHeaders(pth);
      const view = new DataView(pth.buffer);
      // Flip one bit in the middle of the storage's data (after its local header and name).
      const local = view.getUint32(headers[1] + 42, true);
      const dataAt = local + 30 + view.getUint16(local + 26, true) +
        view.getUint16(local + 28, true);
      const flipped = pth.slice();
      if (method === 0) {
        flipped[dataAt + 500] ^= 0x10;
      } else {
        // A stored (uncompressed) deflate block would be needed to flip a value safely:
        // instead the directory's CRC is wrong, which the inflated data must match.
        new DataView(flipped.buffer).setUint32(
          headers[1] + 16,
          view.getUint32(headers[1] + 16, true) ^ 1,
          true,
        );
      }
      await assert.rejects(
        readPth(await writeTemp(dir, `flipped${method}.pth`, flipped)),
        /CRC mismatch in entry 'archive\/data\/0'/,
        `method ${method}`,
      );
    }
  });
});
