/**
 * The page at / driven in headless Chromium (playwright-core, Debian's /usr/bin/chromium):
 * upload the fixture photo, click, right-click, drag a box, step the candidates, segment
 * everything, undo and clear, and check the mask overlay (non-empty canvas pixels) and the
 * scores each time. Screenshots go to test-artifacts/ (git-ignored).
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { createApp } from "../../src/server/app.ts";
import type { Engine } from "../../src/server/engine.ts";
import type { ServerDetector } from "../../src/server/detector.ts";
import { fakeDetector, FakeEngine } from "./fake_engine.ts";
import { FIXTURE_IMAGE, makePng } from "./helpers.ts";
import { withTestEngine } from "./test_engine.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url);

function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

async function drivePage(
  engine: Engine,
  tag: string,
  pointsPerSide: number,
  detector: ServerDetector | null = null,
) {
  const app = createApp({ engine, detector, log: () => {} });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app);
  const url = `http://127.0.0.1:${server.addr.port}/`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  // A cold Chromium on a busy 2-core machine can take longer than Playwright's 30 s default.
  page.setDefaultTimeout(90_000);
  try {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    // Only loopback: anything else the page asks for is refused.
    await page.route(/^(?!http:\/\/127\.0\.0\.1:)/, (route) => route.abort());
    await page.goto(url);
    await page.waitForFunction(`/Ready/.test(document.getElementById("status").textContent)`);
    const banner = page.locator("#banner");
    if (engine.info.meaningless) {
      assert.equal(await banner.isVisible(), true);
      assert.match(await banner.textContent() ?? "", /meaningless/);
    }

    // Drag and drop of a photo onto the page (a synthetic 64 x 128 PNG)...
    const dropped = btoa(String.fromCharCode(...await makePng(64, 128, 3)));
    const dataTransfer = await page.evaluateHandle(`(() => {
      const bytes = Uint8Array.from(atob("${dropped}"), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
      return dt;
    })()`);
    await page.dispatchEvent("#drop", "drop", { dataTransfer });
    await page.waitForFunction(`/ready/.test(document.getElementById("status").textContent)`);
    assert.deepEqual(
      await page.evaluate(
        `[document.getElementById("image").width, document.getElementById("image").height]`,
      ),
      [64, 128],
    );
    // A refused upload shows the server's reason (here: not a PNG or JPEG), not the browser's.
    const notImage = await page.evaluateHandle(`(() => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(64)], "zeros.png", { type: "image/png" }));
      return dt;
    })()`);
    await page.dispatchEvent("#drop", "drop", { dataTransfer: notImage });
    await page.waitForFunction(`/failed/.test(document.getElementById("status").textContent)`);
    assert.match(
      await page.locator("#status").textContent() ?? "",
      /Upload failed: undecodable image: not a PNG or JPEG/,
    );
    assert.deepEqual(errors.splice(0), [
      "Failed to load resource: the server responded with a status of 400 (Bad Request)",
    ]);
    // ...then the fixture photo through the file input.
    await page.evaluate(`document.getElementById("status").textContent = "waiting"`);
    await page.setInputFiles("#file", FIXTURE_IMAGE.pathname);
    await page.waitForFunction(`/ready/.test(document.getElementById("status").textContent)`);
    const box = (await page.locator("#marks").boundingBox())!;
    const scale = box.width / 160; // the fixture photo is 160 x 107
    // The photo fills the window but leaves the status line below it in view.
    const statusBox = (await page.locator("#status").boundingBox())!;
    assert.ok(statusBox.y + statusBox.height <= 800, `status line at y=${statusBox.y}, off-screen`);
    // On a CPU-emulated adapter the grid starts small (32x32 would outlast the time limit).
    const software = /llvmpipe|lavapipe|swiftshader|software/i.test(engine.info.adapter);
    assert.equal(await page.inputValue("#pps"), software ? "4" : "32");
    const at = (x: number, y: number) => ({ x: box.x + x * scale, y: box.y + y * scale });

    // The page's code runs in the browser: given as source text (the test is not type-checked with DOM types).
    const overlayPixels = () =>
      page.evaluate(`(() => {
        const c = document.getElementById("overlay");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
      })()`) as Promise<number>;
    const scores = async () => await page.locator("#scores .score").allTextContents();
    /** Waits until the status reports a finished request newer than `before`. */
    const settled = async (before: string) => {
      await page.waitForFunction(
        `(() => {
          const t = document.getElementById("status").textContent;
          return t !== ${JSON.stringify(before)} && !/…$/.test(t);
        })()`,
      );
      const status = await page.locator("#status").textContent() ?? "";
      assert.doesNotMatch(status, /failed/, status);
      return status;
    };
    const status = async () => await page.locator("#status").textContent() ?? "";

    // Left click: a foreground point, three candidates (multimask is on by default).
    let before = await status();
    await page.mouse.click(at(88, 53.5).x, at(88, 53.5).y);
    await settled(before);
    assert.equal((await scores()).length, 3);
    for (const s of await scores()) assert.match(s, /IoU -?\d+\.\d{3}/);
    assert.ok(await overlayPixels() > 0, "no mask overlay after a click");
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL(`page_${tag}_click.png`, ARTIFACTS).pathname });

    // Stepping the candidates changes the current one.
    const current = () => page.locator("#scores .score.current").getAttribute("data-index");
    const first = await current();
    await page.click("#next");
    assert.notEqual(await current(), first);

    // Right click: a background point, no context menu (the page prevents it).
    before = await status();
    await page.mouse.click(at(32, 26.75).x, at(32, 26.75).y, { button: "right" });
    await settled(before);
    assert.ok((await scores()).length >= 1);

    // Drag: a box.
    before = await status();
    await page.mouse.move(at(16, 21.4).x, at(16, 21.4).y);
    await page.mouse.down();
    await page.mouse.move(at(60, 50).x, at(60, 50).y, { steps: 4 });
    await page.mouse.move(at(112, 90.9).x, at(112, 90.9).y, { steps: 4 });
    await page.mouse.up();
    await settled(before);
    assert.ok(await overlayPixels() > 0, "no mask overlay after a box");
    await page.screenshot({ path: new URL(`page_${tag}_box.png`, ARTIFACTS).pathname });

    // Downloads: the mask PNG and the COCO JSON.
    const [pngDownload] = await Promise.all([
      page.waitForEvent("download"),
      page.click("#download-mask"),
    ]);
    assert.match(pngDownload.suggestedFilename(), /_mask\.png$/);
    const [cocoDownload] = await Promise.all([
      page.waitForEvent("download"),
      page.click("#download-coco"),
    ]);
    const cocoPath = await cocoDownload.path();
    const coco = JSON.parse(await Deno.readTextFile(cocoPath!));
    assert.equal(coco.annotations.length, 1);
    assert.deepEqual(coco.annotations[0].segmentation.size, [107, 160]);

    // Undo three times and the overlay is empty again.
    for (let i = 0; i < 3; i++) await page.click("#undo");
    await page.waitForFunction(`document.getElementById("scores").textContent === "No mask yet."`);
    assert.equal(await overlayPixels(), 0);

    // Segment everything: a coloured overlay of all masks, and where the candidates went.
    await page.fill("#pps", String(pointsPerSide));
    assert.equal(await page.inputValue("#pred-iou"), "0.88");
    assert.equal(await page.inputValue("#stability"), "0.95");
    await page.fill("#pred-iou", "0");
    await page.fill("#stability", "0");
    before = await status();
    await page.click("#everything");
    const done = await settled(before);
    assert.match(done, /\d+ masks in/);
    assert.match(done, new RegExp(`${pointsPerSide * pointsPerSide * 3} candidates`));
    if (!/^0 masks/.test(done)) assert.ok(await overlayPixels() > 0);
    await page.screenshot({ path: new URL(`page_${tag}_everything.png`, ARTIFACTS).pathname });

    await page.click("#clear");
    assert.equal(await overlayPixels(), 0);

    // Detect: shown only with a detector; masks and labels of the kept classes.
    assert.equal(await page.locator("#detect").isVisible(), detector !== null);
    if (detector) {
      await page.fill("#classes", "dog");
      before = await status();
      await page.click("#detect");
      assert.match(await settled(before), /^1 detection in/);
      assert.equal(await page.locator("#scores").textContent(), "1 detection: dog");
      assert.ok(await overlayPixels() > 0, "no overlay after Detect");
      await page.screenshot({ path: new URL(`page_${tag}_detect.png`, ARTIFACTS).pathname });
      // An unknown class: the server's 400 (which the browser logs) shown in the status.
      assert.deepEqual(errors, []);
      await page.fill("#classes", "dgo");
      await page.click("#detect");
      await page.waitForFunction(
        `/Detect failed/.test(document.getElementById("status").textContent)`,
      );
      assert.match(await status(), /did you mean "dog"/);
      await page.click("#clear");
      assert.equal(await overlayPixels(), 0);
      assert.deepEqual(errors.splice(0), [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)",
      ]);
    }
    assert.deepEqual(errors, []);
  } catch (e) {
    // Leave what the page showed when it failed, to tell a slow machine from a page bug.
    const shown = await page.locator("#status").textContent().catch(() => "(unreadable)");
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL(`page_${tag}_failure.png`, ARTIFACTS).pathname })
      .catch(() => {});
    throw new Error(`page test (${tag}) failed with status "${shown}": ${(e as Error).message}`);
  } finally {
    await browser.close();
    await server.shutdown();
  }
}

Deno.test({
  name: "page: clicks, box, candidates, everything, downloads (stand-in engine)",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const engine = new FakeEngine();
    await drivePage(engine, "fake", 8, fakeDetector());
  },
});

Deno.test({
  name: "page: the same with the sam-tiny model on WebGPU",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => withTestEngine((engine) => drivePage(engine, "sam_tiny", 4)),
});

Deno.test({
  name: "page: a slow encode (upload answered 202) is waited for, then the photo is ready (#22.2)",
  ignore: !hasChromium(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const engine = new FakeEngine();
    const app = createApp({ engine, log: () => {}, limits: { uploadAnswerMs: 200 } });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(90_000);
      await page.route(/^(?!http:\/\/127\.0\.0\.1:)/, (route) => route.abort());
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await page.waitForFunction(`/Ready/.test(document.getElementById("status").textContent)`);
      engine.delayMs = 3000; // the encoder on a CPU-only host, shortened
      await page.setInputFiles("#file", FIXTURE_IMAGE.pathname);
      await page.waitForFunction(
        `/Computing the embedding/.test(document.getElementById("status").textContent)`,
      );
      engine.delayMs = 0;
      await page.waitForFunction(`/ready/.test(document.getElementById("status").textContent)`);
      assert.match(await page.locator("#status").textContent() ?? "", /160×107 ready/);
      // Prompts work on it.
      const box = (await page.locator("#marks").boundingBox())!;
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      await page.waitForFunction(`document.querySelectorAll("#scores .score").length === 3`);
      assert.doesNotMatch(await page.locator("#status").textContent() ?? "", /failed/);
    } finally {
      await browser.close();
      await server.shutdown();
      app.close();
    }
  },
});
