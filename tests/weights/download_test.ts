/**
 * downloadModel and the weights CLI against a loopback server (127.0.0.1 only) serving a
 * real checkpoint under a test registry entry: sam-mini (24.6 MB) when ../shared/fixtures is
 * present, else the bundled sam-tiny (0.5 MB). Size and MD5 of the entry are computed here.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  downloadModel,
  type DownloadProgress,
  md5File,
  progressBar,
} from "../../src/weights/download.ts";
import { SafetensorsFile } from "../../src/weights/safetensors.ts";
import { WGSAM_FORMAT } from "../../src/weights/load.ts";
import type { ModelEntry } from "../../src/weights/registry.ts";
import { fixtureDir, sharedFixture, skipIfMissing } from "../util/fixtures.ts";
import { withTempDir } from "./helpers.ts";
import { startServer, type TestServer } from "./download_server.ts";

const MINI = sharedFixture("sam-mini/sam-mini.pth");
const TINY = new URL("sam-tiny.pth", fixtureDir("sam-tiny")!);
if (skipIfMissing(MINI, "download tests on sam-mini (using the bundled sam-tiny instead)")) {
  // The fallback keeps every case running; only the transfer is smaller.
}
const SOURCE = MINI ?? TINY;
const BYTES = await Deno.readFile(SOURCE);
const ENTRY: ModelEntry & { bytes: number; md5: string } = {
  name: "test-model",
  description: "a test checkpoint",
  fileName: "test_model_0000.pth",
  bytes: BYTES.length,
  md5: createHash("md5").update(BYTES).digest("hex"),
};
const FILE_PATH = `/mirror/${ENTRY.fileName}`;
const CLI = new URL("../../src/weights/weights_cli.ts", import.meta.url);

async function withServer(
  opts: Omit<Parameters<typeof startServer>[0], "files">,
  fn: (server: TestServer, dir: string) => Promise<void>,
) {
  const server = startServer({ ...opts, files: { [FILE_PATH]: BYTES } });
  try {
    await withTempDir((dir) => fn(server, dir));
  } finally {
    await server.close();
  }
}

async function assertIdentical(path: string) {
  const got = await Deno.readFile(path);
  assert.equal(got.length, BYTES.length, "size");
  assert.ok(got.every((b, i) => b === BYTES[i]), `${path} differs from the served bytes`);
}

async function assertConverted(path: string) {
  const st = await SafetensorsFile.open(path);
  try {
    assert.equal(st.metadata.format, WGSAM_FORMAT);
    assert.ok(st.tensors.length > 10, `${st.tensors.length} tensors`);
  } finally {
    st.close();
  }
}

async function missing(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return false;
  } catch {
    return true;
  }
}

Deno.test("md5File streams and matches an independent digest", async () => {
  // md5sum tests/fixtures/sam-tiny/sam-tiny.pth, and node:crypto over the whole buffer.
  assert.equal(await md5File(fileURLToPath(TINY)), "ed2fb18d86b6c1260389401fdff92cb9");
  let last = 0;
  assert.equal(await md5File(fileURLToPath(SOURCE), (n) => (last = n)), ENTRY.md5);
  assert.equal(last, ENTRY.bytes);
});

Deno.test("download reports progress, verifies, converts; later calls skip done work", async () => {
  await withServer({}, async (server, dir) => {
    const progress: DownloadProgress[] = [];
    const base = `${server.url}/mirror`;
    const result = await downloadModel(ENTRY, {
      weightsDir: dir,
      baseUrl: base,
      onProgress: (p) => progress.push(p),
    });
    assert.deepEqual(
      { converted: result.converted, resumed: result.resumed, bytes: result.bytesDownloaded },
      { converted: true, resumed: false, bytes: ENTRY.bytes },
    );
    assert.equal(result.checkpoint, `${dir}/${ENTRY.fileName}`);
    assert.equal(result.safetensors, `${dir}/test-model.safetensors`);
    await assertIdentical(result.checkpoint);
    await assertConverted(result.safetensors);
    assert.ok(await missing(`${result.checkpoint}.partial`));
    const download = progress.filter((p) => p.phase === "download");
    assert.ok(download.length >= 2, `${download.length} download callbacks`);
    assert.ok(download.every((p, i) => i === 0 || p.bytesDone >= download[i - 1].bytesDone));
    assert.equal(download.at(-1)!.bytesDone, ENTRY.bytes);
    assert.ok(download.every((p) => p.bytesTotal === ENTRY.bytes && p.model === "test-model"));
    const convert = progress.filter((p) => p.phase === "convert");
    assert.ok(convert.length > 0 && convert.at(-1)!.bytesDone === convert.at(-1)!.bytesTotal);
    assert.equal(server.requests.length, 1);

    // Converted already: nothing to do, no request.
    const again = await downloadModel(ENTRY, { weightsDir: dir, baseUrl: base });
    assert.deepEqual([again.converted, again.bytesDownloaded], [false, 0]);
    // Checkpoint present but not converted: verified from disk and converted, no request.
    await Deno.remove(result.safetensors);
    const phases = new Set<string>();
    const third = await downloadModel(ENTRY, {
      weightsDir: dir,
      baseUrl: base,
      onProgress: (p) => phases.add(p.phase),
    });
    assert.deepEqual([third.converted, third.bytesDownloaded], [true, 0]);
    assert.deepEqual([...phases], ["verify", "convert"]);
    await assertConverted(third.safetensors);
    assert.equal(server.requests.length, 1, "no further network traffic");
  });
});

Deno.test("an interrupted download resumes with a Range request on the next call", async () => {
  await withServer({ cutAt: 0.4 }, async (server, dir) => {
    const base = `${server.url}/mirror`;
    const partial = `${dir}/${ENTRY.fileName}.partial`;
    await assert.rejects(
      downloadModel(ENTRY, { weightsDir: dir, baseUrl: base, retries: 0 }),
      (e: Error) => {
        assert.match(e.message, /failed after 1 attempt/);
        assert.match(e.message, /run the same command again to resume/);
        return true;
      },
    );
    const kept = (await Deno.stat(partial)).size;
    assert.ok(kept > 0 && kept < ENTRY.bytes, `partial has ${kept} bytes`);
    assert.ok(await missing(`${dir}/${ENTRY.fileName}`));

    const notes: string[] = [];
    const result = await downloadModel(ENTRY, {
      weightsDir: dir,
      baseUrl: base,
      onNote: (n) => notes.push(n),
    });
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [
      [null, 200],
      [`bytes=${kept}-`, 206],
    ]);
    assert.equal(result.resumed, true);
    assert.equal(result.bytesDownloaded, ENTRY.bytes - kept);
    assert.ok(notes.some((n) => n.startsWith("resuming at")), notes.join("; "));
    await assertIdentical(result.checkpoint);
    await assertConverted(result.safetensors);
    assert.ok(await missing(partial));
  });
});

Deno.test("connections dropped twice are resumed within one call", async () => {
  await withServer({ cutAt: 0.5, cutTimes: 2 }, async (server, dir) => {
    const notes: string[] = [];
    const result = await downloadModel(ENTRY, {
      weightsDir: dir,
      baseUrl: `${server.url}/mirror`,
      retryDelayMs: 5,
      onNote: (n) => notes.push(n),
    });
    assert.deepEqual(server.requests.map((r) => r.status), [200, 206, 206]);
    assert.ok(server.requests.slice(1).every((r) => /^bytes=\d+-$/.test(r.range ?? "")));
    assert.equal(notes.filter((n) => n.startsWith("connection lost")).length, 2, notes.join("; "));
    assert.equal(result.bytesDownloaded, ENTRY.bytes);
    await assertIdentical(result.checkpoint);
  });
});

Deno.test("a server that ignores Range: the partial file is discarded and fetched again", async () => {
  await withServer({ ignoreRange: true }, async (server, dir) => {
    // Garbage where the real bytes would be: appending to it would fail the MD5.
    const stale = new Uint8Array(Math.floor(ENTRY.bytes / 3)).fill(0xab);
    await Deno.writeFile(`${dir}/${ENTRY.fileName}.partial`, stale);
    const notes: string[] = [];
    const result = await downloadModel(ENTRY, {
      weightsDir: dir,
      baseUrl: `${server.url}/mirror`,
      onNote: (n) => notes.push(n),
    });
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [
      [`bytes=${stale.length}-`, 200],
    ]);
    assert.ok(notes.some((n) => /ignored the Range request/.test(n)), notes.join("; "));
    assert.equal(result.resumed, false);
    await assertIdentical(result.checkpoint);
    await assertConverted(result.safetensors);
  });
});

Deno.test("a complete partial file (416 on resume) is verified without a second transfer", async () => {
  await withServer({}, async (server, dir) => {
    await Deno.writeFile(`${dir}/${ENTRY.fileName}.partial`, BYTES);
    const result = await downloadModel(ENTRY, { weightsDir: dir, baseUrl: `${server.url}/mirror` });
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [
      [`bytes=${ENTRY.bytes}-`, 416],
    ]);
    assert.equal(result.bytesDownloaded, 0);
    await assertIdentical(result.checkpoint);
  });
});

Deno.test("a checksum or size mismatch is refused and the bad file removed", async () => {
  await withServer({}, async (server, dir) => {
    const base = `${server.url}/mirror`;
    const wrongMd5 = { ...ENTRY, md5: "0123456789abcdef0123456789abcdef" };
    await assert.rejects(
      downloadModel(wrongMd5, { weightsDir: dir, baseUrl: base }),
      (e: Error) => {
        assert.match(e.message, new RegExp(`has MD5 ${ENTRY.md5}, expected ${wrongMd5.md5}`));
        assert.match(e.message, /bad file was deleted/);
        return true;
      },
    );
    const wrongSize = { ...ENTRY, bytes: ENTRY.bytes + 1 };
    await assert.rejects(
      downloadModel(wrongSize, { weightsDir: dir, baseUrl: base }),
      new RegExp(`is ${ENTRY.bytes} bytes, expected ${ENTRY.bytes + 1}`),
    );
    await assert.rejects(
      downloadModel(ENTRY, { weightsDir: dir, baseUrl: `${server.url}/elsewhere` }),
      /HTTP 404/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing left behind");
    // A checkpoint placed by hand with the wrong digest is refused but kept (it is the user's).
    const placed = `${dir}/${ENTRY.fileName}`;
    const tampered = BYTES.slice();
    tampered[tampered.length >> 1] ^= 1;
    await Deno.writeFile(placed, tampered);
    await assert.rejects(
      downloadModel(ENTRY, { weightsDir: dir, baseUrl: base }),
      /has MD5 [0-9a-f]{32}, expected .*delete it and run again/,
    );
    assert.equal((await Deno.stat(placed)).size, ENTRY.bytes);
    assert.equal(server.requests.length, 3, "the placed file needed no request");
  });
});

Deno.test("progressBar: a line per ~10% off a terminal, one redrawn line on one", () => {
  const lines: string[] = [];
  const plain = progressBar({ write: (t) => lines.push(t), tty: false });
  const total = 50_000_000;
  for (let done = 0; done <= total; done += 1_000_000) {
    plain.update({
      model: "m",
      phase: "download",
      bytesDone: done,
      bytesTotal: total,
      bytesPerSecond: 2e6,
    });
  }
  plain.finish();
  assert.equal(lines.length, 11, lines.join(""));
  assert.equal(lines[5], "m: downloading  50%  25.0 of 50.0 MB  2.0 MB/s\n");
  const drawn: string[] = [];
  const tty = progressBar({ write: (t) => drawn.push(t), tty: true });
  tty.update({ model: "m", phase: "verify", bytesDone: 0, bytesTotal: 10, bytesPerSecond: 0 });
  tty.update({ model: "m", phase: "verify", bytesDone: 10, bytesTotal: 10, bytesPerSecond: 0 });
  assert.ok(drawn.slice(0, 2).every((t) => t.startsWith("\r")), JSON.stringify(drawn));
  assert.equal(drawn.at(-1), "\n");
});

async function runCli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-net", "--allow-env", CLI.href, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("weights CLI: downloads with progress; clear errors and non-zero exits", async () => {
  await withServer({}, async (server, dir) => {
    const registry = `${dir}/registry.json`;
    const { description: _, ...fields } = ENTRY;
    await Deno.writeTextFile(registry, JSON.stringify({ models: [fields] }));
    const weights = `${dir}/weights`;
    const common = ["--registry", registry, "--dir", weights];
    const ok = await runCli([...common, "--url", `${server.url}/mirror`, "test-model"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /test-model: downloading 100%/);
    assert.match(ok.stderr, /test-model: converting 100%/);
    assert.match(ok.stderr, /test-model ready: .*test-model\.safetensors/);
    await assertIdentical(`${weights}/${ENTRY.fileName}`);

    const bad = await runCli([...common, "vit_q"]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /unknown model 'vit_q'; known: vit_b, vit_l, vit_h, sam2\.1_hiera_tiny, .*, mobile_sam, sam-tiny, sam2-tiny, test-model, slimsam_77, slimsam_50/,
    );
    const notFound = await runCli([
      "--dir",
      `${dir}/w2`,
      "--url",
      `${server.url}/nowhere`,
      "vit_b",
    ]);
    assert.equal(notFound.code, 1);
    assert.match(
      notFound.stderr,
      /download of vit_b failed: GET .*sam_vit_b_01ec64\.pth: HTTP 404/,
    );
    for (const r of [bad, notFound]) assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  });
});

Deno.test("offline: the notes and the error give fetch's underlying cause, not 'connection lost at 0.0 MB'", async () => {
  await withTempDir(async (dir) => {
    const notes: string[] = [];
    const offline = () =>
      Promise.reject(
        new TypeError("fetch failed", {
          cause: new Error("dns error: failed to lookup address information"),
        }),
      );
    await assert.rejects(
      downloadModel(ENTRY, {
        weightsDir: dir,
        baseUrl: "http://mirror.invalid",
        retries: 1,
        retryDelayMs: 1,
        fetch: offline,
        onNote: (n) => notes.push(n),
      }),
      /failed after 2 attempt\(s\) \(fetch failed: dns error: failed to lookup address information\)/,
    );
    assert.deepEqual(notes, [
      "could not download from mirror.invalid (fetch failed: dns error: failed to lookup " +
      "address information); retrying (1/1)",
    ]);
  });
});
