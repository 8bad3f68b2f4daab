/**
 * The page's video mode (src/web/video.js) in headless Chromium against the server on
 * sam2-tiny: open three of the fixture's frames, click an object on the first, add a second
 * object, and check that the masks the page shows and exports (COCO JSON, RLE) are the ones
 * SamVideoPredictor gives through the API for the same clicks; then Track, correct an object
 * on a tracked frame, Track again, and check every frame each time. A short video file (VP9 WebM made by ffmpeg) goes
 * through the <video> path, and Chromium's synthetic webcam through getUserMedia: their frames
 * are sampled, sent and clickable.
 */
import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";
import { createApp } from "../../src/server/app.ts";
import { loadSamEngine } from "../../src/server/sam_engine.ts";
import { readImageFile } from "../../src/image.ts";
import { maskOf, type VideoFrameResult, videoTrackerFactory } from "../../src/video/tracker.ts";
import { sam2File } from "../sam2/fixture_files.ts";
import { decodeCocoMask } from "./helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = await Deno.stat(CHROMIUM).then((s) => s.isFile, () => false);
const frame0 = sam2File("sam2-tiny", "video/frame_000.png");
const FRAMES = frame0
  ? [0, 1, 2].map((i) => sam2File("sam2-tiny", `video/frame_00${i}.png`)!.pathname)
  : [];
const hasFfmpeg = await new Deno.Command("ffmpeg", { args: ["-version"], stdout: "null" })
  .output().then((o) => o.success, () => false);
if (!hasChromium) console.warn("SKIP: page video test: no /usr/bin/chromium");

interface CocoExport {
  images: { id: number; frame_idx: number; width: number; height: number }[];
  annotations: {
    image_id: number;
    track_id: number;
    segmentation: { size: [number, number]; counts: string };
    area: number;
    bbox: number[];
  }[];
}

/** Clicks the overlay canvas at frame pixel (x, y); button "right" for background. */
async function clickFrame(page: Page, x: number, y: number, button: "left" | "right" = "left") {
  const box = (await page.locator("#v-overlay").boundingBox())!;
  const [w, h] = await page.evaluate(
    `[wgsamVideo.state.width, wgsamVideo.state.height]`,
  ) as number[];
  await page.mouse.click(box.x + (x + 0.5) * box.width / w, box.y + (y + 0.5) * box.height / h, {
    button,
  });
}

async function status(page: Page, pattern: RegExp) {
  await page.waitForFunction(
    `${pattern}.test(document.getElementById("status").textContent)`,
  );
}

function assertMaskEquals(
  got: { size: [number, number]; counts: string },
  logits: Float32Array,
  what: string,
) {
  const mask = decodeCocoMask(got);
  const ref = maskOf(logits);
  let diff = 0;
  for (let i = 0; i < ref.length; i++) diff += mask[i] !== ref[i] ? 1 : 0;
  assert.equal(diff, 0, `${what}: ${diff} pixels differ from the API's mask`);
}

Deno.test({
  name:
    "page video mode on sam2-tiny: frames, clicks, two objects, track, correct, export equal to the API; video file and webcam",
  ignore: !hasChromium || !frame0,
  async fn() {
    const engine = await loadSamEngine("sam2-tiny", { cacheBytes: 16 * 1024 * 1024, quiet: true });
    const factory = videoTrackerFactory("sam2-tiny");
    const app = createApp({ engine, log: () => {}, video: factory });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        // The webcam: Chromium's synthetic camera, allowed without a prompt.
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
      ],
    });
    const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    page.setDefaultTimeout(90_000);
    const api = await factory.create();
    try {
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.route(/^(?!http:\/\/127\.0\.0\.1:)/, (route) => route.abort());
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await status(page, /Ready/);
      await page.click("#video-toggle");
      assert.equal(await page.isVisible("#drop"), false, "photo mode hidden");
      await page.setInputFiles("#v-file", FRAMES);
      await status(page, /3 frame\(s\) of 160x107\. Click an object/);

      // Object 1: a click on frame 0. Object 2: a click and a background click on frame 0.
      await page.evaluate(`wgsamVideo.show(0)`);
      await clickFrame(page, 16, 40);
      await status(page, /Object 1 on frame 1\./);
      await page.click("#v-new-obj");
      await clickFrame(page, 112, 35);
      await status(page, /Object 2 on frame 1\./);
      await clickFrame(page, 140, 80, "right");
      await status(page, /Object 2 on frame 1\./);
      await page.waitForFunction(`document.body.dataset.videoMasksShown === "2"`);

      // The same clicks through the API.
      for (const f of FRAMES) api.addFrame(await readImageFile(f));
      const clicks = await page.evaluate(
        `[...wgsamVideo.state.clicks].map(([k, c]) => [k, c.points, c.labels])`,
      ) as [string, [number, number][], number[]][];
      assert.deepEqual(clicks.map((c) => c[0]), ["0:1", "0:2"]);
      assert.deepEqual(clicks[1][2], [1, 0]);
      // The page's calls in order: the second click on object 2 resends both of its points
      // (the earlier answer is the mask input of that call, as in the official predictor).
      let want: VideoFrameResult | null = null;
      for (
        const [objId, n] of [[1, 1], [2, 1], [2, 2]] as const
      ) {
        const [, points, labels] = clicks[objId - 1];
        want = await api.addNewPointsOrBox({
          frameIdx: 0,
          objId,
          points: points.slice(0, n),
          labels: labels.slice(0, n),
        });
      }
      let coco = await page.evaluate(`wgsamVideo.exportCoco()`) as CocoExport;
      assert.equal(coco.images.length, 3);
      assert.deepEqual(coco.images[0], {
        id: 1,
        file_name: "frame_000_00000.png",
        frame_idx: 0,
        width: 160,
        height: 107,
      });
      const onFrame0 = coco.annotations.filter((a) => a.image_id === 1);
      assert.deepEqual(onFrame0.map((a) => a.track_id), want!.objIds);
      onFrame0.forEach((a, k) => {
        assertMaskEquals(a.segmentation, want!.maskLogits[k], `frame 0 object ${a.track_id}`);
        assert.ok(a.area > 0 && a.bbox[2] > 0 && a.bbox[3] > 0);
      });

      // Track, then correct object 1 on a tracked frame (a background click) and track again.
      const checkTracked = async (label: string) => {
        const wants: VideoFrameResult[] = [];
        for await (const r of api.propagateInVideo({ startFrameIdx: 0 })) wants.push(r);
        assert.equal(wants.length, 3);
        const coco = await page.evaluate(`wgsamVideo.exportCoco()`) as CocoExport;
        for (const w of wants) {
          const anns = coco.annotations.filter((a) => a.image_id === w.frameIdx + 1);
          const present = w.objIds.filter((_, k) => maskOf(w.maskLogits[k]).some((v) => v));
          assert.deepEqual(anns.map((a) => a.track_id), present, `${label} frame ${w.frameIdx}`);
          for (const a of anns) {
            const k = w.objIds.indexOf(a.track_id);
            assertMaskEquals(a.segmentation, w.maskLogits[k], `${label} frame ${w.frameIdx}`);
          }
        }
      };
      await page.click("#v-track");
      await status(page, /Tracked 2 object\(s\) through 3 frames/);
      await checkTracked("tracked");

      await page.selectOption("#v-obj", "1");
      await page.evaluate(`wgsamVideo.show(2)`);
      await clickFrame(page, 35, 92, "right");
      await status(page, /Object 1 on frame 3\./);
      const fix = (await page.evaluate(
        `wgsamVideo.state.clicks.get("2:1")`,
      )) as { points: [number, number][]; labels: number[] };
      assert.deepEqual(fix.labels, [0]);
      const corrected = await api.addNewPointsOrBox({ frameIdx: 2, objId: 1, ...fix });
      coco = await page.evaluate(`wgsamVideo.exportCoco()`) as CocoExport;
      const onFrame2 = coco.annotations.filter((a) => a.image_id === 3);
      for (const a of onFrame2) {
        const k = corrected.objIds.indexOf(a.track_id);
        assertMaskEquals(a.segmentation, corrected.maskLogits[k], `corrected frame 2`);
      }
      await page.click("#v-track");
      await status(page, /Tracked 2 object\(s\) through 3 frames/);
      await checkTracked("after the correction");

      if (hasFfmpeg) {
        // A video file through <video>: 4 fps of a 1 s clip -> 4 frames, each clickable.
        const dir = await Deno.makeTempDir({ prefix: "wgsam-page-video-" });
        try {
          const clip = `${dir}/clip.webm`;
          const made = await new Deno.Command("ffmpeg", {
            args: [
              ...["-hide_banner", "-loglevel", "error", "-framerate", "8"],
              ...["-i", new URL(".", frame0!).pathname + "frame_%03d.png"],
              ...["-vf", "crop=160:106:0:0"], // yuv420p needs even sides
              ...["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-b:v", "0", "-crf", "20", clip],
            ],
            stderr: "piped",
          }).output();
          assert.ok(made.success, new TextDecoder().decode(made.stderr));
          await page.setInputFiles("#v-file", clip);
          await status(page, /4 frame\(s\) of 160x106\. Click an object/);
          await page.evaluate(`wgsamVideo.show(2)`);
          await clickFrame(page, 60, 50);
          await status(page, /Object 1 on frame 3\./);
          await page.waitForFunction(`document.body.dataset.videoMasksShown === "1"`);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      }
      // The webcam: three frames recorded, then clickable.
      await page.fill("#v-max", "3");
      await page.click("#v-webcam");
      await status(page, /3 frame\(s\) of 640x480\. Click an object/);
      await clickFrame(page, 320, 240);
      await status(page, /Object 1 on frame 3\./);
      assert.deepEqual(errors, []);
    } finally {
      api.dispose();
      await browser.close();
      await server.shutdown();
      app.close();
      await app.queue.always(() => {});
      factory.close();
      engine.dispose();
    }
  },
});
