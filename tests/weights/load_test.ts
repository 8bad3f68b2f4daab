import assert from "node:assert/strict";
import {
  convertCheckpoint,
  detectCheckpointKind,
  loadSam,
  loadStateDict,
  tensorF32,
  WGSAM_FORMAT,
} from "../../src/weights/load.ts";
import { readSafetensors, writeSafetensors } from "../../src/weights/safetensors.ts";
import type { HostTensor } from "../../src/weights/types.ts";
import { fixtureDir, sharedFixture, skipIfMissing } from "../util/fixtures.ts";
import { buildPth, PickleWriter, stateDictPickle, withTempDir, writeTemp } from "./helpers.ts";

const TINY = new URL("sam-tiny.pth", fixtureDir("sam-tiny")!);
const MINI = sharedFixture("sam-mini/sam-mini.pth");

Deno.test(".pth -> safetensors -> load gives the same bytes and the architecture", async () => {
  for (const maybe of [TINY, MINI]) {
    if (skipIfMissing(maybe, "sam-mini round trip")) continue;
    const source = maybe!;
    await withTempDir(async (dir) => {
      const out = `${dir}/model.safetensors`;
      const progress: number[] = [];
      const arch = await convertCheckpoint(source.pathname, out, (p) => progress.push(p.bytesDone));
      const original = await loadSam(source);
      assert.deepEqual(arch, original.arch);
      assert.equal(progress.length, original.sd.size);
      assert.ok(progress.every((b, i) => i === 0 || b >= progress[i - 1]));
      assert.equal(await detectCheckpointKind(out), "safetensors");
      const started = performance.now();
      const converted = await loadSam(out);
      const ms = performance.now() - started;
      assert.deepEqual(converted.arch, original.arch);
      assert.deepEqual([...converted.sd.keys()], [...original.sd.keys()], "names and order");
      for (const [name, t] of original.sd) {
        const c = converted.sd.get(name)!;
        assert.deepEqual([c.dtype, c.shape], [t.dtype, t.shape], name);
        assert.ok(
          c.bytes.length === t.bytes.length && c.bytes.every((b, i) => b === t.bytes[i]),
          name,
        );
      }
      const { metadata } = await readSafetensors(out);
      assert.equal(metadata.format, WGSAM_FORMAT);
      assert.deepEqual(JSON.parse(metadata.wgsam_arch), arch);
      // Data offsets are 4-byte aligned relative to the file start (header padded to 8).
      const bytes = await Deno.readFile(out);
      const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      assert.equal((8 + headerLen) % 8, 0);
      const name = source.pathname.split("/").pop();
      console.log(
        `${name} -> safetensors (${(bytes.length / 1e6).toFixed(1)} MB) loads in ${
          ms.toFixed(0)
        } ms`,
      );
    });
  }
});

Deno.test("tensorF32 converts float16, bfloat16, float64 and refuses integers", () => {
  const half: HostTensor = {
    name: "h",
    dtype: "float16",
    shape: [6],
    // 1, -2, 65504 (max), 2^-24 (smallest subnormal), +inf, NaN
    bytes: new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c, 0x01, 0x7e]),
  };
  const h = tensorF32(half);
  assert.deepEqual([...h.subarray(0, 5)], [1, -2, 65504, 2 ** -24, Infinity]);
  assert.ok(Number.isNaN(h[5]));
  // bfloat16 is the top 16 bits of the float32: 1.5 = 0x3fc00000, -3 = 0xc0400000.
  const bf: HostTensor = {
    name: "b",
    dtype: "bfloat16",
    shape: [2],
    bytes: new Uint8Array([0xc0, 0x3f, 0x40, 0xc0]),
  };
  assert.deepEqual([...tensorF32(bf)], [1.5, -3]);
  const f64: HostTensor = {
    name: "d",
    dtype: "float64",
    shape: [2],
    bytes: new Uint8Array(new Float64Array([0.1, -1e300]).buffer),
  };
  assert.deepEqual([...tensorF32(f64)], [Math.fround(0.1), -Infinity]);
  // float32 bytes at an odd offset are copied rather than viewed.
  const backing = new Uint8Array(9);
  backing.set(new Uint8Array(new Float32Array([2.5, -7]).buffer), 1);
  const odd: HostTensor = { name: "o", dtype: "float32", shape: [2], bytes: backing.subarray(1) };
  assert.deepEqual([...tensorF32(odd)], [2.5, -7]);
  const ints: HostTensor = { name: "steps", dtype: "int64", shape: [1], bytes: new Uint8Array(8) };
  assert.throws(() => tensorF32(ints), /tensor 'steps' has integer dtype int64/);
  const short: HostTensor = { name: "s", dtype: "float32", shape: [3], bytes: new Uint8Array(8) };
  assert.throws(() => tensorF32(short), /'s' has 8 bytes, shape \[3\] of float32 needs 12/);
});

Deno.test("a bfloat16 safetensors checkpoint converts to float32", async () => {
  const sd = await loadStateDict(TINY);
  const halves: HostTensor[] = [...sd.values()].map((t) => {
    const f = tensorF32(t);
    const bytes = new Uint8Array(f.length * 2);
    const view = new DataView(bytes.buffer);
    // bfloat16 by truncation: exactly representable in float32 again.
    for (let i = 0; i < f.length; i++) {
      view.setUint16(2 * i, new Uint32Array(new Float32Array([f[i]]).buffer)[0] >>> 16, true);
    }
    return { ...t, dtype: "bfloat16", bytes };
  });
  await withTempDir(async (dir) => {
    const bf16 = `${dir}/bf16.safetensors`;
    await writeSafetensors(bf16, halves);
    const out = `${dir}/f32.safetensors`;
    await convertCheckpoint(bf16, out);
    const { sd: converted } = await loadSam(out);
    for (const t of halves) {
      const c = converted.get(t.name)!;
      assert.equal(c.dtype, "float32");
      assert.deepEqual(tensorF32(c), tensorF32(t), t.name);
    }
  });
});

Deno.test("files that are neither format, or lie about their architecture, are refused", async () => {
  await withTempDir(async (dir) => {
    const text = await writeTemp(dir, "notes.txt", new TextEncoder().encode("hello, world!\n"));
    await assert.rejects(loadStateDict(text), /neither a torch zip checkpoint nor safetensors/);
    // Legacy torch.save: pickle of the magic number 0x1950a86a20f9469cfc6c as LONG1.
    const legacy = new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]);
    await assert.rejects(
      loadStateDict(await writeTemp(dir, "old.pth", legacy)),
      /legacy \(pre-1\.6\) torch\.save format/,
    );
    // A wgsam file whose stored architecture disagrees with its tensors.
    const { sd } = await loadSam(TINY);
    const lying = `${dir}/lying.safetensors`;
    await writeSafetensors(lying, [...sd.values()], {
      format: WGSAM_FORMAT,
      wgsam_arch: JSON.stringify({ imgSize: 1024 }),
    });
    await assert.rejects(
      loadSam(lying),
      /stored architecture says imgSize = 1024, the tensors say 256/,
    );
    // A stored architecture that is not a JSON object.
    for (const stored of ["null", "[1]"]) {
      const path = `${dir}/stored-arch.safetensors`;
      await writeSafetensors(path, [...sd.values()], { format: WGSAM_FORMAT, wgsam_arch: stored });
      await assert.rejects(loadSam(path), /wgsam_arch is not a JSON object/, stored);
    }
    // A valid archive that is not SAM: refused by inferArch, conversion writes nothing.
    const other = await buildPth(
      stateDictPickle([{ name: "fc.weight", key: "0", storageNumel: 4, shape: [2, 2] }]),
      { "0": new Uint8Array(16) },
    );
    const otherPath = await writeTemp(dir, "other.pth", other);
    await assert.rejects(
      convertCheckpoint(otherPath, `${dir}/o.safetensors`),
      /not a SAM checkpoint/,
    );
    await assert.rejects(Deno.stat(`${dir}/o.safetensors`), Deno.errors.NotFound);
  });
});

async function runCli(...args: string[]) {
  const cli = new URL("../../src/weights/convert_cli.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", cli, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("convert CLI: progress on stderr, exit 1 with a message on bad input, 2 on usage", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/tiny.safetensors`;
    const ok = await runCli(TINY.pathname, out);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /convert: 100% \(174\/174 tensors/);
    assert.match(ok.stderr, /wrote .*tiny\.safetensors .* ViT 32 wide, 2 blocks, 2 heads/);
    assert.equal((await loadSam(out)).sd.size, 174);
    const evil = new PickleWriter().proto(2).global("posix", "system").stop().done();
    const evilPath = await writeTemp(dir, "evil.pth", await buildPth(evil, {}));
    const bad = await runCli(evilPath, `${dir}/evil.safetensors`);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /convert: error: .*evil\.pth is a zip file but not a PyTorch checkpoint wgsam can read \(its data\.pkl: pickle: refusing global 'posix\.system'/,
    );
    const usage = await runCli(TINY.pathname);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /convert: error: expected an input checkpoint and an output path/);
    const help = await runCli("--help");
    assert.equal(help.code, 0);
    assert.match(
      help.stdout,
      /Usage: deno task convert <in\.pth\|in\.safetensors> <out\.safetensors>/,
    );
    // The output may not be the input: the checkpoint must survive a slip of the keyboard.
    const copy = `${dir}/copy.pth`;
    await Deno.copyFile(TINY, copy);
    const same = await runCli(copy, copy);
    assert.equal(same.code, 2);
    assert.match(same.stderr, /copy\.pth already exists; pass --overwrite/);
    const sameOverwrite = await runCli(copy, copy, "--overwrite");
    assert.equal(sameOverwrite.code, 1);
    assert.match(sameOverwrite.stderr, /is the input checkpoint/);
    assert.deepEqual(await Deno.readFile(copy), await Deno.readFile(TINY));
  });
});
