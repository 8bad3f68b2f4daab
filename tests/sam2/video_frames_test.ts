import assert from "node:assert/strict";
import { readImageFile } from "../../src/image.ts";
import { pilBicubicResize, videoFrameTensor } from "../../src/sam2/video_frames.ts";
import { sam2Files, sam2FixtureJson, sam2Npy } from "./fixture_files.ts";
import { SAM2_MEAN, SAM2_STD } from "../../src/sam2/transforms.ts";
import { checkProbe, loadProbes } from "./probes.ts";

const have = sam2Files(
  "sam2-tiny",
  ["video/frame_000.png", "video_resized_f0.npy", "fixture.json"],
  "video frame resize",
);

Deno.test({
  name:
    "sam2-tiny video frame 0: PIL bicubic resize to 256x256 equals the official frame bit for bit",
  ignore: !have,
  async fn() {
    const fixture = await sam2FixtureJson("sam2-tiny");
    const S = fixture.architecture.image_size;
    const frame = await readImageFile(have![0]);
    assert.deepEqual([frame.height, frame.width], fixture.video.frame_size_hw);
    const golden = await sam2Npy("sam2-tiny", "video_resized_f0.npy");
    assert.deepEqual(golden.shape, [S, S, 3]);
    const ours = pilBicubicResize(frame, S, S);
    let diff = 0, worst = 0;
    for (let i = 0; i < ours.length; i++) {
      const d = Math.abs(ours[i] - Number(golden.data[i]));
      if (d) diff++;
      worst = Math.max(worst, d);
    }
    assert.equal(diff, 0, `${diff} of ${ours.length} bytes differ (worst by ${worst})`);
    // The normalised tensor: channel-major, (v / 255 - mean) / std in float32.
    const t = videoFrameTensor(frame, S);
    const f = Math.fround;
    for (const [c, p] of [[0, 0], [1, 1234], [2, S * S - 1]]) {
      const v = ours[p * 3 + c];
      assert.equal(t[c * S * S + p], f(f(f(v / 255) - f(SAM2_MEAN[c])) / f(SAM2_STD[c])));
    }
  },
});

Deno.test("pilBicubicResize: a constant image stays constant; shrinking uses the widened kernel", () => {
  const img = {
    width: 7,
    height: 5,
    channels: 3 as const,
    data: new Uint8Array(7 * 5 * 3).fill(200),
  };
  assert.ok(pilBicubicResize(img, 16, 16).every((v) => v === 200));
  assert.ok(pilBicubicResize(img, 3, 2).every((v) => v === 200));
  // A one-pixel-wide bright column, shrunk 4x: spread over neighbours, never over 255.
  const w = 16, h = 4, data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.fill(255, (y * w + 8) * 3, (y * w + 9) * 3);
  const out = pilBicubicResize({ width: w, height: h, channels: 3, data }, 4, 4);
  assert.ok(out.some((v) => v > 0) && out.every((v) => v < 255));
});

const haveMini = sam2Files(
  "sam2-mini",
  ["video/frame_000.png", "probes.json"],
  "video frame resize (1024)",
);

Deno.test({
  name:
    "sam2-mini video frame 0 (360x240 -> 1024x1024): the resize matches the official probe exactly, sum included",
  ignore: !haveMini,
  async fn() {
    const probes = await loadProbes(new URL(".", haveMini![1]));
    const probe = probes["video_resized_f0"];
    assert.deepEqual(probe.shape, [1024, 1024, 3]);
    const ours = pilBicubicResize(await readImageFile(haveMini![0]), 1024, 1024);
    assert.equal(checkProbe(ours, probe, { atol: 0, label: "video_resized_f0" }), 0);
    assert.equal(ours.reduce((a, b) => a + b, 0), probe.sum);
  },
});
