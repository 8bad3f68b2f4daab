import assert from "node:assert/strict";
import {
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readSafetensors,
  SafetensorsFile,
  writeSafetensors,
} from "../../src/weights/safetensors.ts";
import { DTYPE_SIZE } from "../../src/weights/lazy.ts";
import type { DType, HostTensor } from "../../src/weights/types.ts";
import { withTempDir, writeTemp } from "./helpers.ts";

/** A safetensors file from a header (object or raw text) and a byte buffer. */
function rawSafetensors(header: unknown, data: Uint8Array, lengthField?: bigint): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function tensor(name: string, dtype: DType, shape: number[], seed: number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
  const bytes = new Uint8Array(n).map((_, i) => (i * 31 + seed * 7) & 0xff);
  return { name, dtype, shape, bytes };
}

Deno.test("safetensors round trip: mixed dtypes, scalars, empty tensors, aligned offsets", async () => {
  const tensors = [
    tensor("a.u8", "uint8", [3], 1),
    tensor("b.f16", "float16", [5], 2),
    tensor("c.f32", "float32", [2, 3], 3),
    tensor("d.f64", "float64", [3], 4),
    tensor("e.scalar", "float32", [], 5),
    tensor("f.empty", "float32", [0, 7], 6),
    tensor("g.bf16", "bfloat16", [1, 3], 7),
    tensor("h.i64", "int64", [2], 8),
    tensor("i.i32", "int32", [3], 9),
  ];
  await withTempDir(async (dir) => {
    const path = `${dir}/t.safetensors`;
    const seen: number[] = [];
    await writeSafetensors(path, tensors, { format: "test", note: "ünïcode" }, (p) => {
      seen.push(p.tensorsDone);
      assert.ok(p.bytesDone <= p.bytesTotal);
    });
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const { sd, metadata } = await readSafetensors(path);
    assert.deepEqual(metadata, { format: "test", note: "ünïcode" });
    assert.equal(sd.size, tensors.length);
    for (const t of tensors) assert.deepEqual(sd.get(t.name), t, t.name);
    // Header padded to 8 bytes; every tensor starts at a multiple of its element size.
    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
    const header = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n);
    for (const e of header.entries) {
      assert.equal(e.begin % DTYPE_SIZE[e.dtype], 0, `${e.name} at ${e.begin}`);
    }
    await assert.rejects(Deno.stat(`${path}.partial`), Deno.errors.NotFound);
  });
});

Deno.test("a refused write leaves no file behind", async () => {
  await withTempDir(async (dir) => {
    const bad: HostTensor = { name: "x", dtype: "float32", shape: [4], bytes: new Uint8Array(3) };
    const path = `${dir}/bad.safetensors`;
    await assert.rejects(writeSafetensors(path, [bad]), /'x' has 3 bytes.*needs 16/);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(`${path}.partial`), Deno.errors.NotFound);
    await assert.rejects(
      writeSafetensors(path, [{ ...bad, name: "__metadata__", bytes: new Uint8Array(16) }]),
      /cannot write tensor name '__metadata__'/,
    );
  });
});

Deno.test("hostile or broken safetensors headers are refused", async () => {
  const entry = (begin: number, end: number, shape = [2]) => ({
    dtype: "F32",
    shape,
    data_offsets: [begin, end],
  });
  const data16 = new Uint8Array(16);
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "overlap",
      rawSafetensors({ a: entry(0, 8), b: entry(4, 12), c: entry(12, 16, [1]) }, data16),
      /tensor 'b' \[4, 12\] overlaps 'a' \(which ends at 8\)/,
    ],
    [
      "out of range",
      rawSafetensors({ a: entry(0, 8), b: entry(8, 24, [4]) }, data16),
      /tensor 'b' data_offsets \[8, 24\] are out of range \(byte buffer is 16 bytes\)/,
    ],
    [
      "header length beyond the file",
      rawSafetensors({ a: entry(0, 8) }, new Uint8Array(8), 1000n),
      /header length 1000 is larger than the file allows/,
    ],
    [
      "huge header length",
      rawSafetensors({ a: entry(0, 8) }, new Uint8Array(8), 2n ** 63n),
      /header length 9223372036854775808 is larger than the file allows/,
    ],
    [
      "invalid JSON",
      rawSafetensors('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]', data16),
      /header is not valid JSON/,
    ],
    [
      "not an object",
      rawSafetensors("[1, 2]", data16),
      /header does not start with '\{'/,
    ],
    ["hole", rawSafetensors({ a: entry(0, 8) }, data16), /tensors cover 8 bytes .* holds 16/],
    [
      "gap between tensors",
      rawSafetensors({ a: entry(0, 8), b: entry(12, 16, [1]) }, data16),
      /bytes \[8, 12\) belong to no tensor/,
    ],
    [
      "size not shape x dtype",
      rawSafetensors({ a: entry(0, 16, [3]) }, data16),
      /tensor 'a' spans 16 bytes but shape \[3\] of float32 needs 12/,
    ],
    [
      "reversed offsets",
      rawSafetensors({ a: entry(8, 0) }, data16),
      /data_offsets \[8, 0\] are out of range/,
    ],
    [
      "unknown dtype",
      rawSafetensors({ a: { ...entry(0, 16, [16]), dtype: "F8_E4M3" } }, data16),
      /tensor 'a' has unsupported dtype F8_E4M3/,
    ],
    [
      "negative shape",
      rawSafetensors({ a: entry(0, 16, [-4]) }, data16),
      /tensor 'a' has a bad shape/,
    ],
    [
      "non-string metadata",
      rawSafetensors({ __metadata__: { n: 1 }, a: entry(0, 16, [4]) }, data16),
      /__metadata__ value 'n' is not a string/,
    ],
    ["too short", new Uint8Array(5), /is 5 bytes, too small/],
  ];
  await withTempDir(async (dir) => {
    for (const [label, bytes, expected] of cases) {
      const path = await writeTemp(dir, `${label.replaceAll(" ", "_")}.safetensors`, bytes);
      await assert.rejects(SafetensorsFile.open(path), expected, label);
    }
  });
});

Deno.test("a header padded with spaces (as the spec allows) parses", () => {
  const header = new TextEncoder().encode(
    JSON.stringify({ a: { dtype: "U8", shape: [2], data_offsets: [0, 2] } }) + "     ",
  );
  const { entries } = parseSafetensorsHeader(header, 2);
  assert.deepEqual(entries, [{ name: "a", dtype: "uint8", shape: [2], begin: 0, end: 2 }]);
});

Deno.test("a 59 MB header is refused before it is read; dtype and metadata names are data", async () => {
  await withTempDir(async (dir) => {
    // Length field, "{", then (sparse) zeros: a header as large as the file allows.
    const headerLen = 59_000_000;
    const path = `${dir}/huge.safetensors`;
    const head = new Uint8Array(9);
    new DataView(head.buffer).setBigUint64(0, BigInt(headerLen), true);
    head[8] = 0x7b;
    await Deno.writeFile(path, head);
    await Deno.truncate(path, 8 + headerLen + 16);
    await assert.rejects(
      SafetensorsFile.open(path),
      new RegExp(`header length ${headerLen} is over the limit of ${MAX_HEADER_BYTES} bytes`),
    );
  });
  const data16 = new Uint8Array(16);
  for (const dtype of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
    const header = JSON.stringify({ a: { dtype, shape: [4], data_offsets: [0, 16] } });
    assert.throws(
      () => parseSafetensorsHeader(new TextEncoder().encode(header), 16),
      new RegExp(`tensor 'a' has unsupported dtype ${dtype}`),
    );
  }
  const withProto = new TextEncoder().encode(
    '{"__metadata__": {"__proto__": "x", "format": "y"}, ' +
      '"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}',
  );
  const { metadata } = parseSafetensorsHeader(withProto, data16.length);
  assert.deepEqual(Object.entries(metadata), [["__proto__", "x"], ["format", "y"]]);
  assert.equal(Object.getPrototypeOf(metadata), Object.prototype);
});
