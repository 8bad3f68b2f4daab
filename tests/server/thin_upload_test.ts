/**
 * An upload too thin for the model (its short side would be 0 px at the model's input size:
 * 8000x1 or 1x3000 at sam-tiny's 256 px, 2049x1 at 1024 px) is a 400 naming the problem, refused
 * from the header before any GPU work; the server keeps serving.
 */
import assert from "node:assert/strict";
import { Image } from "imagescript";
import { createApp } from "../../src/server/app.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call } from "./helpers.ts";
import { withTestEngine } from "./test_engine.ts";

const quiet = () => {};

/** A grey w x h PNG. */
async function greyPng(w: number, h: number): Promise<Uint8Array<ArrayBuffer>> {
  const image = new Image(w, h);
  image.fill(0x808080ff);
  return new Uint8Array(await image.encode(1));
}
const PNG = { "content-type": "image/png" };

class SizedEngine extends FakeEngine {
  override readonly info = {
    model: "fake",
    arch: { kind: "fake" },
    adapter: "none",
    meaningless: true,
    imgSize: 1024,
  };
}

Deno.test("upload: a too thin image is a 400 before any GPU work (model input size known)", async () => {
  const engine = new SizedEngine();
  const app = createApp({ engine, log: quiet });
  for (const [w, h] of [[2049, 1], [1, 3000], [8000, 1]]) {
    const r = await call(app, "POST", "/api/images", await greyPng(w, h), PNG);
    assert.equal(r.status, 400, `${w}x${h}: ${JSON.stringify(r.json)}`);
    assert.match(String(r.json.error), new RegExp(`image ${w}x${h} is too thin`));
    assert.match(String(r.json.error), /1024 px input/);
  }
  assert.equal(engine.calls, 0, "no GPU work for a refused image");
  const ok = await call(app, "POST", "/api/images", await greyPng(2048, 1), PNG);
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
});

Deno.test("upload: the preprocessing's RangeError is a 400 even when the engine gives no size", async () => {
  const engine = new FakeEngine();
  engine.setImage = () => Promise.reject(new RangeError("image 9x1 is too thin: ..."));
  const app = createApp({ engine, log: quiet });
  const r = await call(app, "POST", "/api/images", await greyPng(9, 1), PNG);
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.match(String(r.json.error), /too thin/);
});

Deno.test("upload on sam-tiny: 8000x1 and 1x3000 are 400s, 512x1 still segments", async () => {
  await withTestEngine(async (engine) => {
    const logs: string[] = [];
    const app = createApp({ engine, log: (l) => logs.push(l) });
    for (const [w, h] of [[8000, 1], [1, 3000], [513, 1]]) {
      const r = await call(app, "POST", "/api/images", await greyPng(w, h), PNG);
      assert.equal(r.status, 400, `${w}x${h}: ${JSON.stringify(r.json)}`);
      assert.match(
        String(r.json.error),
        new RegExp(`image ${w}x${h} is too thin: its short side would be 0 px .* 256 px input`),
      );
    }
    assert.ok(!logs.some((l) => l.startsWith("ERROR")), logs.join("\n"));
    const ok = await call(app, "POST", "/api/images", await greyPng(512, 1), PNG);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const seg = await call(app, "POST", `/api/images/${ok.json.id}/segment`, {
      points: [[100, 0]],
      labels: [1],
      format: "rle",
    });
    assert.equal(seg.status, 200, JSON.stringify(seg.json));
  });
});
