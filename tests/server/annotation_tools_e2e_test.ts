/**
 * The CVAT and Label Studio surfaces on the real engine (sam-tiny on WebGPU): what they answer
 * equals what /segment answers for the same prompt on the same image, and the image they
 * brought is stored and encoded once (the upload afterwards is a cache hit).
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { isVitH } from "../../src/server/cvat.ts";
import { call, decodeCocoMask, FIXTURE_IMAGE } from "./helpers.ts";
import { withTestEngine } from "./test_engine.ts";

/** Label Studio's brush RLE decoded (rle-pack, from its description), alpha channel as 0/1. */
function brushAlpha(bytes: number[]): Uint8Array {
  let bit = 0;
  const read = (n: number) => {
    let v = 0;
    for (let k = 0; k < n; k++, bit++) v = v * 2 + ((bytes[bit >> 3] >> (7 - (bit & 7))) & 1);
    return v;
  };
  const num = read(32), word = read(5) + 1;
  const sizes = [0, 0, 0, 0].map(() => read(4) + 1);
  const out = new Uint8Array(num);
  for (let i = 0; i < num;) {
    const rep = read(1);
    const j = i + 1 + read(sizes[read(2)]);
    if (rep) {
      out.fill(read(word), i, j);
      i = j;
    } else {
      for (; i < j; i++) out[i] = read(word);
    }
  }
  return out.filter((_, i) => i % 4 === 3).map((v) => v ? 1 : 0);
}

Deno.test("isVitH: only SAM ViT-H's architecture", () => {
  const info = (arch: unknown) => ({ model: "m", arch, adapter: "a", meaningless: false });
  assert.equal(isVitH(info({ img_size: 1024, encoder_width: 1280, encoder_depth: 32 })), true);
  assert.equal(isVitH(info({ img_size: 1024, encoder_width: 768, encoder_depth: 12 })), false); // vit_b
  assert.equal(isVitH(info({ img_size: 1024, encoder_width: 1024, encoder_depth: 24 })), false); // vit_l
  assert.equal(isVitH(info(null)), false);
});

Deno.test({
  name: "CVAT and Label Studio on sam-tiny answer /segment's masks",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withTestEngine(async (engine) => {
      const app = createApp({ engine, log: () => {} });
      const bytes = await Deno.readFile(FIXTURE_IMAGE);
      const functions = await call(app, "GET", "/api/functions");
      assert.ok("wgsam-sam-sam-tiny" in functions.json, Object.keys(functions.json).join());
      const cvat = await call(app, "POST", "/api/function_invocations", {
        image: bytes.toBase64(),
        pos_points: [[60, 50]],
        neg_points: [[20, 20]],
        obj_bbox: null,
      }, { "x-nuclio-function-name": "wgsam-sam-sam-tiny", "x-nuclio-path": "/" });
      assert.equal(cvat.status, 200, JSON.stringify(cvat.json));

      const up = await call(app, "POST", "/api/images", bytes, { "content-type": "image/png" });
      assert.equal(up.json.cached, true, "CVAT's image was stored and encoded");
      const seg = await call(app, "POST", `/api/images/${up.json.id}/segment`, {
        points: [[60, 50], [20, 20]],
        labels: [1, 0],
        multimask: false,
        format: "rle",
      });
      const ref = decodeCocoMask(
        (seg.json.masks as { rle: { size: [number, number]; counts: string } }[])[0].rle,
      );
      const rows = cvat.json.mask as number[][];
      assert.deepEqual(Uint8Array.from(rows.flat(), (v) => v ? 1 : 0), ref);

      const ls = await call(app, "POST", "/ls/predict", {
        tasks: [{ id: 1, data: { image: `data:image/png;base64,${bytes.toBase64()}` } }],
        label_config: `<View><Image name="image" value="$image"/>
          <BrushLabels name="tag" toName="image"><Label value="A"/></BrushLabels>
          <KeyPointLabels name="kp" toName="image" smart="true"><Label value="A"/></KeyPointLabels>
        </View>`,
        params: {
          context: {
            result: [60 / 160, 20 / 160].map((fx, i) => ({
              original_width: 160,
              original_height: 107,
              type: "keypointlabels",
              is_positive: i === 0,
              value: { x: fx * 100, y: [50, 20][i] / 107 * 100, keypointlabels: ["A"] },
            })),
          },
        },
      });
      assert.equal(ls.status, 200, JSON.stringify(ls.json));
      const result = (ls.json.results as { result: { value: { rle: number[] } }[] }[])[0].result[0];
      // Percent and back: the same pixel coordinates up to float rounding, so the same mask.
      assert.deepEqual(brushAlpha(result.value.rle), ref);
    });
  },
});
