/**
 * The page decodes prompts itself (#23): GET /api/decoder serves the decoder half of the
 * model (cacheable by content hash); src/web/decoder.js is the bundle of the server's own
 * decoder, current and with no Deno API unguarded; in headless Chromium with WebGPU (SwiftShader) the
 * page decodes clicks and boxes with no /segment request, with the server's mask area and the
 * goldens' low-res logits; without WebGPU, or when the page's decoder fails, the server
 * decodes and the status line says so. The same for SAM 2.1 (sam2-tiny): its decoder half
 * served, its three per-image tensors downloaded, decoded in the page.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { createApp } from "../../src/server/app.ts";
import type { Engine } from "../../src/server/engine.ts";
import { DECODER_PREFIXES, SAM2_DECODER_PREFIXES } from "../../src/server/decoder_weights.ts";
import { PageDecoder, parseSafetensors } from "../../src/web/decoder/page_decoder.ts";
import { getContext } from "../../src/gpu/context.ts";
import { encodeNpyF32 } from "../../src/util/npy.ts";
import { DECODER_TOL, ENCODER_TOL, loadSam2Cases } from "../sam2/sam2_cases.ts";
import { checkProbe, loadProbes, type Probe } from "../sam2/probes.ts";
import { convertSam2Checkpoint } from "../../src/sam2/load.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { openCheckpoint } from "../../src/weights/load.ts";
import { resolveModel } from "../../src/weights/registry.ts";
import { loadFixtureCases } from "../decoder/fixture_cases.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, loadGolden, sharedFixture, skipIfMissing } from "../util/fixtures.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call, FIXTURE_IMAGE } from "./helpers.ts";
import { withTestEngine } from "./test_engine.ts";
import { readImageFile } from "../../src/image.ts";
import type { Prompt } from "../../src/types.ts";
import { loadSamEngine } from "../../src/server/sam_engine.ts";
import { loadWorkerEngine } from "../../src/server/worker_engine.ts";

const CHROMIUM = "/usr/bin/chromium";
const WEBGPU_FLAGS = [
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-webgpu-adapter=swiftshader",
];
const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url);

function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

Deno.test("GET /api/decoder: only the decoder tensors, immutable by content hash", async () => {
  await withTestEngine(async (engine) => {
    const app = createApp({ engine, log: () => {} });
    const meta = await call(app, "GET", "/api/decoder");
    assert.equal(meta.status, 200);
    const sha = meta.json.sha256 as string;
    assert.match(sha, /^[0-9a-f]{64}$/);
    assert.equal(meta.json.url, `/api/decoder/${sha}.safetensors`);

    const res = await app(new Request(`http://localhost:8787/api/decoder/${sha}.safetensors`));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("etag"), `"${sha}"`);
    assert.match(res.headers.get("cache-control") ?? "", /immutable/);
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(bytes.length, meta.json.bytes);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    assert.equal([...digest].map((b) => b.toString(16).padStart(2, "0")).join(""), sha);

    // Exactly the checkpoint's prompt_encoder.* and mask_decoder.* tensors, bytes unchanged.
    const { sd, metadata } = parseSafetensors(bytes);
    assert.deepEqual(JSON.parse(metadata.wgsam_arch).promptEmbedDim, 32);
    const ckpt = await openCheckpoint(await resolveModel("sam-tiny"));
    try {
      const want = ckpt.tensors.filter((t) => DECODER_PREFIXES.some((p) => t.name.startsWith(p)));
      assert.ok(want.length > 20);
      assert.deepEqual([...sd.keys()].sort(), want.map((t) => t.name).sort());
      for (const t of want) assert.deepEqual(sd.get(t.name)!.bytes, await t.read(), t.name);
    } finally {
      ckpt.close();
    }

    // A revalidation costs no body; an old hash is a clear 404; GET only.
    const again = await app(
      new Request(`http://localhost:8787${meta.json.url}`, {
        headers: { "if-none-match": `"${sha}"` },
      }),
    );
    assert.equal(again.status, 304);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
    const stale = await call(app, "GET", `/api/decoder/${"0".repeat(64)}.safetensors`);
    assert.equal(stale.status, 404);
    assert.match(stale.json.error as string, /GET \/api\/decoder/);
    assert.equal((await call(app, "POST", "/api/decoder")).status, 405);
  });
  // An engine that cannot give its decoder (a stand-in): 404, the page decodes on the server.
  const fake = createApp({ engine: new FakeEngine(), log: () => {} });
  const none = await call(fake, "GET", "/api/decoder");
  assert.equal(none.status, 404);
  assert.match(none.json.error as string, /decode on the server/);
});

Deno.test("src/web/decoder.js is the current bundle of src/web/decoder/ and uses no Deno API unguarded", async () => {
  const committed = await Deno.readTextFile(new URL("../../src/web/decoder.js", import.meta.url));
  // Every Deno API use in it sits right after a `typeof Deno` guard (tuning.ts reads an env
  // variable on the server); the page runs it where there is no Deno.
  const lines = committed.split("\n");
  lines.forEach((line, i) => {
    if (!/\bDeno\./.test(line)) return;
    const guard = lines.slice(Math.max(0, i - 3), i).some((l) =>
      l.includes(`typeof Deno === "undefined"`)
    );
    assert.ok(guard, `src/web/decoder.js:${i + 1} uses Deno without a guard: ${line.trim()}`);
  });
  const out = await Deno.makeTempFile({ suffix: ".js" });
  try {
    const root = new URL("../../", import.meta.url);
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      // The command of `deno task bundle:web`, into a temporary file.
      args: [
        "bundle",
        "--platform",
        "browser",
        "--quiet",
        "-o",
        out,
        "src/web/decoder/page_decoder.ts",
      ],
      cwd: root,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const fresh = await Deno.readTextFile(out);
    assert.ok(fresh === committed, "src/web/decoder.js is stale: run `deno task bundle:web`");
  } finally {
    await Deno.remove(out);
  }
});

interface PageRun {
  engine: Engine;
  /** Extra Chromium flags (the WebGPU ones, or none). */
  flags: string[];
  /** Script run in the page before its own (e.g. to take WebGPU away). */
  initScript?: string;
  /** The photo to upload (default the sam-tiny fixture's, 160 x 107) and its width. */
  image?: URL;
  imageWidth?: number;
}

/** What a page test gets: the page, the app behind it, and clicking in image pixels. */
interface PageTools {
  page: import("playwright-core").Page;
  app: ReturnType<typeof createApp>;
  requests: string[];
  click: (x: number, y: number) => Promise<void>;
  /** Page coordinates of an image pixel. */
  at: (x: number, y: number) => { x: number; y: number };
  status: () => Promise<string>;
}

/** Serves the app, opens the page in Chromium, uploads the fixture photo; runs `fn`. */
async function withPage(
  run: PageRun,
  tag: string,
  fn: (t: PageTools) => Promise<void>,
) {
  const app = createApp({ engine: run.engine, log: () => {} });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app);
  const url = `http://127.0.0.1:${server.addr.port}/`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-background-networking", "--no-first-run", ...run.flags],
  });
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  page.setDefaultTimeout(180_000); // SwiftShader compiles every pipeline on a busy CPU
  const status = async () => await page.locator("#status").textContent() ?? "";
  try {
    const requests: string[] = [];
    page.on("request", (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.route(/^(?!http:\/\/127\.0\.0\.1:)/, (route) => route.abort());
    if (run.initScript) await page.addInitScript(run.initScript);
    await page.goto(url);
    await page.waitForFunction(`/Ready/.test(document.getElementById("status").textContent)`);
    await page.setInputFiles("#file", (run.image ?? FIXTURE_IMAGE).pathname);
    await page.waitForFunction(`/ready/.test(document.getElementById("status").textContent)`);
    const box = (await page.locator("#marks").boundingBox())!;
    const scale = box.width / (run.imageWidth ?? 160);
    const at = (x: number, y: number) => ({ x: box.x + x * scale, y: box.y + y * scale });
    const click = async (x: number, y: number) => {
      await page.evaluate(`delete document.body.dataset.maskArea`);
      await page.mouse.click(at(x, y).x, at(x, y).y);
      await page.waitForFunction(`document.body.dataset.maskArea !== undefined`);
    };
    await fn({ page, app, requests, click, at, status });
  } catch (e) {
    const shown = await status().catch(() => "(unreadable)");
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL(`page_decoder_${tag}_failure.png`, ARTIFACTS).pathname })
      .catch(() => {});
    throw new Error(`page test (${tag}) failed with status "${shown}": ${(e as Error).message}`);
  } finally {
    await browser.close();
    await server.shutdown();
  }
}

/** The server's /segment answer for the page's current prompt: the best mask's area. */
async function serverBestArea(
  page: import("playwright-core").Page,
  app: ReturnType<typeof createApp>,
): Promise<number> {
  const id = await page.evaluate(`state.imageId`) as string;
  const prompt = await page.evaluate(`currentPrompt()`) as Record<string, unknown>;
  const answer = await call(app, "POST", `/api/images/${id}/segment`, { ...prompt, format: "rle" });
  assert.equal(answer.status, 200);
  const masks = answer.json.masks as { area: number }[];
  return masks[answer.json.best as number].area;
}

/**
 * The page's low-res logits and IoU against the PyTorch goldens, every fixture case
 * (mask_refine: a mask prompt; boxes_batch one box at a time), on the embedding the server
 * computed for the uploaded photo, with the tolerances of the server's decoder tests.
 */
async function checkGoldens(page: import("playwright-core").Page, dir: URL, only?: string[]) {
  const { cases } = await loadFixtureCases(dir);
  for (const c of cases) {
    if (only && !only.includes(c.name)) continue;
    const C = c.multimask ? 3 : 1;
    for (let b = 0; b < c.prompts.length; b++) {
      const p = c.prompts[b];
      const r = await page.evaluate(
        `wgsamDecodeLowRes(${
          JSON.stringify({
            ...p,
            maskInput: p.maskInput ? [...p.maskInput] : undefined,
            multimask: c.multimask,
          })
        })`,
      ) as { count: number; iou: number[]; lowRes: number[] };
      assert.equal(r.count, C, c.name);
      const plane = r.lowRes.length / C;
      const report = assertClose(
        Float32Array.from(r.lowRes),
        c.lowRes.subarray(b * C * plane, (b + 1) * C * plane),
        { atol: 1e-3, rtol: 1e-3, label: `${c.name}[${b}] low_res (page)` },
      );
      console.log(`${c.name}[${b}] low_res (page): worst ${report.maxAbs.toExponential(2)}`);
      assertClose(Float32Array.from(r.iou), c.iou.subarray(b * C, (b + 1) * C), {
        atol: 1e-3,
        rtol: 1e-3,
        label: `${c.name}[${b}] iou (page)`,
      });
    }
  }
}

/**
 * The page's best mask against the server's own decode of the same prompt, pixel by pixel:
 * the same candidate, and wherever the two differ, the server's full-size logit is within
 * 1e-3 of 0 (a pixel on the decision boundary, where two GPUs' rounding may differ). Returns
 * the number of differing pixels.
 */
async function compareBestMask(
  page: import("playwright-core").Page,
  engine: Engine,
  image: URL,
): Promise<number> {
  const prompt = await page.evaluate(`currentPrompt()`) as Prompt & { format?: string };
  delete prompt.format;
  const [best, base64] = await page.evaluate(`(() => {
    const bits = state.masks[state.best].bits;
    let text = "";
    for (let i = 0; i < bits.length; i += 8192) {
      text += String.fromCharCode(...bits.subarray(i, i + 8192));
    }
    return [state.best, btoa(text)];
  })()`) as [number, string];
  const bits = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  await engine.setImage(await readImageFile(image.pathname));
  const pred = await engine.predict(prompt, { returnLogits: true });
  const serverBest = pred.scores.indexOf(Math.max(...pred.scores));
  assert.equal(best, serverBest, "the page and the server chose different candidates");
  const plane = pred.width * pred.height;
  assert.equal(bits.length, plane);
  const logits = pred.logits!.subarray(best * plane, (best + 1) * plane);
  let differ = 0, worst = 0, at = -1;
  for (let i = 0; i < plane; i++) {
    if (bits[i] !== (logits[i] > 0 ? 1 : 0)) {
      differ++;
      if (Math.abs(logits[i]) > worst) [worst, at] = [Math.abs(logits[i]), i];
    }
  }
  assert.ok(
    worst <= 1e-3,
    `${differ} pixels differ; worst at (${at % pred.width}, ${
      Math.floor(at / pred.width)
    }) where the server's logit is ${logits[at]}`,
  );
  return differ;
}

const dataset = (page: import("playwright-core").Page, key: string) =>
  page.evaluate(`document.body.dataset.${key}`) as Promise<string | undefined>;

/**
 * A click (three candidates, the server's best mask area and the same bits), then a
 * background point, then a box: each the server's /segment answer, and no /segment request.
 */
async function clicksMatchServer(t: PageTools, engine: Engine, image: URL): Promise<void> {
  const { page, app, requests, click, at } = t;
  await click(88, 53.5);
  assert.equal(await page.locator("#scores .score").count(), 3);
  const area = Number(await dataset(page, "maskArea"));
  assert.ok(area > 0, "empty mask");
  assert.ok(Number(await dataset(page, "decodeMs")) > 0);
  assert.match(await page.locator("#status").textContent() ?? "", /in this page in \d+ ms/);
  assert.equal(area, await serverBestArea(page, app));
  assert.equal(await compareBestMask(page, engine, image), 0);
  await page.evaluate(`delete document.body.dataset.maskArea`);
  await page.mouse.click(at(32, 26.75).x, at(32, 26.75).y, { button: "right" });
  await page.waitForFunction(`document.body.dataset.maskArea !== undefined`);
  assert.equal(Number(await dataset(page, "maskArea")), await serverBestArea(page, app));
  await page.evaluate(`delete document.body.dataset.maskArea`);
  await page.mouse.move(at(16, 21.4).x, at(16, 21.4).y);
  await page.mouse.down();
  await page.mouse.move(at(60, 50).x, at(60, 50).y, { steps: 4 });
  await page.mouse.move(at(112, 90.9).x, at(112, 90.9).y, { steps: 4 });
  await page.mouse.up();
  await page.waitForFunction(`document.body.dataset.maskArea !== undefined`);
  assert.equal(Number(await dataset(page, "maskArea")), await serverBestArea(page, app));
  assert.deepEqual(requests.filter((r) => r.endsWith("/segment")), []);
}

Deno.test({
  name: "page decoder (sam-tiny, WebGPU on SwiftShader): clicks and boxes decoded in the page",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withTestEngine((engine) =>
      withPage(
        { engine, flags: WEBGPU_FLAGS },
        "sam_tiny",
        async (t) => {
          const { page, requests } = t;
          assert.equal(await dataset(page, "decoder"), "browser");
          assert.match(await page.locator("#status").textContent() ?? "", /Decoding in this page/);
          assert.ok(requests.includes("GET /decoder.js"));
          assert.ok(
            requests.some((r) => /^GET \/api\/decoder\/[0-9a-f]{64}\.safetensors$/.test(r)),
          );
          assert.ok(requests.some((r) => /^GET \/api\/images\/[^/]+\/embedding$/.test(r)));

          await clicksMatchServer(t, engine, FIXTURE_IMAGE);
          await Deno.mkdir(ARTIFACTS, { recursive: true });
          await page.screenshot({ path: new URL("page_decoder_sam_tiny.png", ARTIFACTS).pathname });

          await checkGoldens(page, fixtureDir("sam-tiny")!);
          assert.deepEqual(requests.filter((r) => r.endsWith("/segment")), []);
        },
      )
    ),
});

Deno.test({
  name: "page decoder fallback: no WebGPU, or a failing page decoder, decodes on the server",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withTestEngine(async (engine) => {
      // navigator.gpu taken away before the page's script runs.
      await withPage(
        {
          engine,
          flags: WEBGPU_FLAGS,
          initScript: "delete Navigator.prototype.gpu;",
        },
        "no_webgpu",
        async ({ page, app, requests, click, status }) => {
          assert.equal(await dataset(page, "decoder"), "server");
          assert.match(await status(), /Decoding on the server \(this browser offers no WebGPU/);
          assert.ok(!requests.some((r) => r.startsWith("GET /api/decoder")));
          await click(88, 53.5);
          assert.deepEqual(requests.filter((r) => r.endsWith("/segment")).length, 1);
          assert.equal(Number(await dataset(page, "maskArea")), await serverBestArea(page, app));
          assert.ok(Number(await dataset(page, "decodeMs")) > 0);
        },
      );
      // WebGPU present, but the page's decoder fails at its first click: the server answers
      // that click and the next, and the status line says why.
      await withPage(
        { engine, flags: WEBGPU_FLAGS },
        "failing",
        async ({ page, app, requests, click, status }) => {
          assert.equal(await dataset(page, "decoder"), "browser");
          await page.evaluate(`GPUDevice.prototype.createComputePipeline = () => {
            throw new Error("injected pipeline failure");
          }`);
          await click(88, 53.5);
          assert.equal(await dataset(page, "decoder"), "server");
          assert.match(await status(), /on the server \(the page decoder failed: injected/);
          assert.equal(requests.filter((r) => r.endsWith("/segment")).length, 1);
          assert.equal(Number(await dataset(page, "maskArea")), await serverBestArea(page, app));
          await click(100, 60);
          assert.equal(requests.filter((r) => r.endsWith("/segment")).length, 2);
        },
      );
    }),
});

Deno.test({
  name: "page decoder (sam-mini, decoder width 256 as the real models): a click and the goldens",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = fixtureDir("sam-mini");
    const pth = sharedFixture("sam-mini/sam-mini.pth");
    if (skipIfMissing(dir && pth, "sam-mini page decoder")) return;
    const engine = await loadSamEngine(pth!.pathname, { cacheBytes: 64 << 20, quiet: true });
    try {
      await withPage(
        { engine, flags: WEBGPU_FLAGS, image: new URL("image.png", dir!), imageWidth: 900 },
        "sam_mini",
        async ({ page, app, requests, click }) => {
          assert.equal(await dataset(page, "decoder"), "browser");
          await click(495, 300);
          const image = new URL("image.png", dir!);
          // Two GPUs (SwiftShader here, the server's adapter there) may round a logit at 0
          // differently: the areas agree up to those boundary pixels.
          const boundary = await compareBestMask(page, engine, image);
          const area = Number(await dataset(page, "maskArea"));
          assert.ok(Math.abs(area - await serverBestArea(page, app)) <= boundary);
          console.log(
            `sam-mini page decode: ${await dataset(page, "decodeMs")} ms (first click), ` +
              `${boundary} boundary pixel(s) differ from the server's`,
          );
          // The mask prompt and a multimask click (all cases: tests/decoder on the server).
          await checkGoldens(page, dir!, ["point1_multi", "mask_refine"]);
          assert.deepEqual(requests.filter((r) => r.endsWith("/segment")), []);
        },
      );
    } finally {
      engine.dispose();
    }
  },
});

// ---- SAM 2.1 (sam2-tiny) ------------------------------------------------------------------

const SAM2_DIR = fixtureDir("sam2-tiny")!;
const SAM2_IMAGE = new URL("image.png", SAM2_DIR);
const SAM2_FEATURES = ["image_embed", "high_res_feats_0", "high_res_feats_1"];

async function withSam2Engine(fn: (engine: Engine) => Promise<void>): Promise<void> {
  const engine = await loadSamEngine("sam2-tiny", { cacheBytes: 64 << 20, quiet: true });
  try {
    await fn(engine);
  } finally {
    engine.dispose();
  }
}

Deno.test("GET /api/decoder on sam2-tiny: the sam_prompt_encoder / sam_mask_decoder tensors, by content hash", async () => {
  await withSam2Engine(async (engine) => {
    const app = createApp({ engine, log: () => {} });
    const meta = await call(app, "GET", "/api/decoder");
    assert.equal(meta.status, 200);
    assert.equal((meta.json.arch as { family: string }).family, "sam2");
    const res = await app(new Request(`http://localhost:8787${meta.json.url}`));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("cache-control") ?? "", /immutable/);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    assert.equal(
      [...digest].map((b) => b.toString(16).padStart(2, "0")).join(""),
      meta.json.sha256,
    );
    const { sd, metadata } = parseSafetensors(bytes);
    assert.equal(JSON.parse(metadata.wgsam_arch).family, "sam2");
    const ckpt = await openCheckpoint(await resolveModel("sam2-tiny"));
    try {
      const want = ckpt.tensors.filter((t) =>
        SAM2_DECODER_PREFIXES.some((p) => t.name.startsWith(p))
      );
      assert.deepEqual([...sd.keys()].sort(), want.map((t) => t.name).sort());
      for (const t of want) assert.deepEqual(sd.get(t.name)!.bytes, await t.read(), t.name);
    } finally {
      ckpt.close();
    }
    // The object-score head travels; the encoder and the memory modules do not.
    assert.ok(sd.has("sam_mask_decoder.obj_score_token.weight"));
    assert.ok(sd.has("sam_mask_decoder.pred_obj_score_head.layers.0.weight"));
    assert.ok(![...sd.keys()].some((n) => /^(image_encoder|memory_|no_mem)/.test(n)));
    assert.ok(bytes.length < 2 << 20, `${bytes.length} bytes`);

    // `serve --worker`: the engine on its own thread serves the same bytes.
    const remote = await loadWorkerEngine("sam2-tiny", { cacheBytes: 64 << 20, quiet: true });
    try {
      assert.equal(remote.info.decoderServed, true);
      const served = await remote.decoderWeights!();
      assert.equal(served.sha256, meta.json.sha256);
      assert.deepEqual(served.bytes, bytes);
    } finally {
      remote.dispose();
    }
  });
});

Deno.test("PageDecoder (here on Deno's WebGPU) on sam2-tiny: served weights + golden features match every case", async () => {
  await withSam2Engine(async (engine) => {
    const app = createApp({ engine, log: () => {} });
    const meta = await call(app, "GET", "/api/decoder");
    const res = await app(new Request(`http://localhost:8787${meta.json.url}`));
    const ctx = await getContext();
    const page = await PageDecoder.create(ctx.gpu, await res.arrayBuffer());
    try {
      assert.equal(page.family, "sam2");
      assert.deepEqual(page.featureNames, SAM2_FEATURES);
      // The goldens of SAM2ImagePredictor's features, as the embedding endpoint serves them.
      const npy = await Promise.all(SAM2_FEATURES.map(async (name) => {
        const g = await loadGolden(SAM2_DIR, `${name}.npy`);
        return encodeNpyF32(g.data as Float32Array, g.shape).slice().buffer;
      }));
      // Two tensors of three, or a wrong shape, are refused by name.
      assert.throws(() => page.setImage(npy.slice(0, 2), [107, 160]), /needs 3: image_embed/);
      assert.throws(
        () => page.setImage([npy[1], npy[0], npy[2]], [107, 160]),
        /image_embed has shape \[1,4,64,64\]/,
      );
      const { cases, imageSizeHw } = await loadSam2Cases(SAM2_DIR);
      assert.equal(cases.length, 6);
      await page.setImage(npy, imageSizeHw);
      for (const c of cases) {
        const C = c.multimask ? 3 : 1;
        for (let b = 0; b < c.prompts.length; b++) {
          const r = await page.decode(c.prompts[b]);
          assert.equal(r.count, C, c.name);
          const plane = r.lowRes.length / C;
          assertClose(r.lowRes, c.lowRes!.subarray(b * C * plane, (b + 1) * C * plane), {
            atol: DECODER_TOL.logitAtol,
            rtol: DECODER_TOL.logitRtol,
            label: `${c.name}[${b}] low_res (PageDecoder)`,
          });
          assertClose(r.iou, c.iou.subarray(b * C, (b + 1) * C), {
            atol: DECODER_TOL.iou,
            label: `${c.name}[${b}] iou (PageDecoder)`,
          });
          assert.ok(Math.abs(r.objScore! - c.objScore[b]) <= DECODER_TOL.obj, `${c.name} obj`);
          assert.deepEqual(r.areas, r.masks.map((m) => m.reduce((s, v) => s + v, 0)));
        }
      }
    } finally {
      page.dispose();
    }
  });
});

/**
 * The page's low-res logits, IoU and object score against the sam2-tiny goldens, every case
 * (boxes_batch one box at a time), on the features the server's own encoder computed for the
 * uploaded photo: ENCODER_TOL of tests/sam2/sam2_cases.ts (logits 2e-3 + 1e-4 |ref|, IoU
 * 1e-4, object score 1e-3), as for the server's end-to-end SAM 2.1 test. The page's decoder
 * on SwiftShader measures within the same bounds (it prints its worst).
 */
async function checkSam2Goldens(
  page: import("playwright-core").Page,
  dir = SAM2_DIR,
  opts: { only?: string[]; probes?: Record<string, Probe> } = {},
) {
  const { cases } = await loadSam2Cases(dir);
  for (const c of cases) {
    if (opts.only && !opts.only.includes(c.name)) continue;
    const C = c.multimask ? 3 : 1;
    for (let b = 0; b < c.prompts.length; b++) {
      const p = c.prompts[b];
      const r = await page.evaluate(
        `wgsamDecodeLowRes(${
          JSON.stringify({ ...p, maskInput: p.maskInput ? [...p.maskInput] : undefined })
        })`,
      ) as { count: number; iou: number[]; lowRes: number[]; objScore: number };
      assert.equal(r.count, C, c.name);
      const plane = r.lowRes.length / C;
      const lowTol = {
        atol: ENCODER_TOL.logitAtol,
        rtol: ENCODER_TOL.logitRtol,
        label: `${c.name}[${b}] low_res (page)`,
      };
      // sam2-mini keeps most low-res goldens as probes (single-prompt cases only here).
      const lowMax = c.lowRes
        ? assertClose(
          Float32Array.from(r.lowRes),
          c.lowRes.subarray(b * C * plane, (b + 1) * C * plane),
          lowTol,
        ).maxAbs
        : checkProbe(r.lowRes, opts.probes![`${c.name}_low_res`], lowTol);
      const iou = assertClose(Float32Array.from(r.iou), c.iou.subarray(b * C, (b + 1) * C), {
        atol: ENCODER_TOL.iou,
        label: `${c.name}[${b}] iou (page)`,
      });
      const obj = Math.abs(r.objScore - c.objScore[b]);
      assert.ok(obj <= ENCODER_TOL.obj, `${c.name}[${b}] object score off by ${obj}`);
      console.log(
        `sam2 ${c.name}[${b}] (page): worst low_res ${lowMax.toExponential(2)}, ` +
          `IoU ${iou.maxAbs.toExponential(2)}, object score ${obj.toExponential(2)}`,
      );
    }
  }
}

Deno.test({
  name: "page decoder (sam2-tiny, WebGPU on SwiftShader): SAM 2.1 clicks decoded in the page",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withSam2Engine((engine) =>
      withPage(
        { engine, flags: WEBGPU_FLAGS, image: SAM2_IMAGE, imageWidth: 160 },
        "sam2_tiny",
        async (t) => {
          const { page, requests } = t;
          assert.equal(await dataset(page, "decoder"), "browser");
          assert.match(await page.locator("#status").textContent() ?? "", /Decoding in this page/);
          assert.ok(
            requests.some((r) => /^GET \/api\/decoder\/[0-9a-f]{64}\.safetensors$/.test(r)),
          );
          // The three tensors SAM 2.1's decoder reads, once each.
          const fetched = await page.evaluate(`performance.getEntriesByType("resource")
            .map((e) => new URL(e.name)).filter((u) => u.pathname.endsWith("/embedding"))
            .map((u) => u.search).sort()`) as string[];
          assert.deepEqual(fetched, ["", "?tensor=high_res_feats_0", "?tensor=high_res_feats_1"]);

          // point1_multi's click, then a background point and a box.
          await clicksMatchServer(t, engine, SAM2_IMAGE);

          await checkSam2Goldens(page);
          assert.deepEqual(requests.filter((r) => r.endsWith("/segment")), []);
        },
      )
    ),
});

Deno.test({
  name:
    "page decoder fallback (sam2-tiny): no WebGPU, or a failing page decoder, decodes on the server",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withSam2Engine(async (engine) => {
      await withPage(
        {
          engine,
          flags: WEBGPU_FLAGS,
          initScript: "delete Navigator.prototype.gpu;",
          image: SAM2_IMAGE,
        },
        "sam2_no_webgpu",
        async ({ page, app, requests, click, status }) => {
          assert.equal(await dataset(page, "decoder"), "server");
          assert.match(await status(), /Decoding on the server \(this browser offers no WebGPU/);
          assert.ok(!requests.some((r) => r.startsWith("GET /api/decoder")));
          await click(88, 53.5);
          assert.equal(requests.filter((r) => r.endsWith("/segment")).length, 1);
          assert.equal(Number(await dataset(page, "maskArea")), await serverBestArea(page, app));
        },
      );
      // The high-res features refused (a server that cannot give them): the image decodes
      // on the server, and the status line says why.
      await withPage(
        {
          engine,
          flags: WEBGPU_FLAGS,
          initScript: `{
            const fetchReal = globalThis.fetch;
            globalThis.fetch = (url, init) => String(url).includes("tensor=high_res_feats_1")
              ? Promise.resolve(new Response("{}", { status: 503 }))
              : fetchReal(url, init);
          }`,
          image: SAM2_IMAGE,
        },
        "sam2_no_features",
        async ({ page, app, requests, click, status }) => {
          assert.equal(await dataset(page, "decoder"), "server");
          assert.match(await status(), /on the server \(embedding high_res_feats_1: HTTP 503\)/);
          await click(88, 53.5);
          assert.equal(requests.filter((r) => r.endsWith("/segment")).length, 1);
          assert.equal(Number(await dataset(page, "maskArea")), await serverBestArea(page, app));
        },
      );
    }),
});

Deno.test({
  name:
    "page decoder (sam2-mini, SAM 2.1 at 1024 px with the real decoder width): a click and the goldens",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = sharedFixture("sam2-mini/");
    if (skipIfMissing(dir, "sam2-mini page decoder")) return;
    // Converted with the fixture's hints (heads, windows: no tensor shows them) into the
    // wgsam safetensors that carry them, so the engine loads it by path.
    const tmp = await Deno.makeTempDir();
    const path = `${tmp}/sam2-mini.safetensors`;
    const fixture = JSON.parse(await Deno.readTextFile(new URL("fixture.json", dir!)));
    await convertSam2Checkpoint(
      new URL("sam2-mini.pt", dir!).pathname,
      path,
      sam2HintsFromFixture(fixture.architecture),
    );
    const engine = await loadSamEngine(path, { cacheBytes: 128 << 20, quiet: true });
    const image = new URL("image.png", dir!);
    try {
      await withPage(
        { engine, flags: WEBGPU_FLAGS, image, imageWidth: 360 },
        "sam2_mini",
        async ({ page, app, requests, click }) => {
          assert.equal(await dataset(page, "decoder"), "browser");
          await click(198, 120);
          // As for sam-mini: two GPUs may round a logit at 0 differently.
          const boundary = await compareBestMask(page, engine, image);
          const area = Number(await dataset(page, "maskArea"));
          assert.ok(area > 0, "empty mask");
          assert.ok(Math.abs(area - await serverBestArea(page, app)) <= boundary);
          console.log(
            `sam2-mini page decode: ${await dataset(page, "decodeMs")} ms (first click), ` +
              `${boundary} boundary pixel(s) differ from the server's`,
          );
          await checkSam2Goldens(page, dir!, {
            only: ["point1_multi", "mask_refine", "box_single"],
            probes: await loadProbes(dir!),
          });
          assert.deepEqual(requests.filter((r) => r.endsWith("/segment")), []);
        },
      );
    } finally {
      engine.dispose();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
