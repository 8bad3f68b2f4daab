/**
 * "Segment everything" with crop layers on an image whose short side is below 2^layers
 * (64x3 at two layers, 1x1 at one): the crops that would be empty are left out and the
 * generator runs on the others; a 200, never a 500.
 */
import assert from "node:assert/strict";
import { Image } from "imagescript";
import { createApp } from "../../src/server/app.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call } from "./helpers.ts";
import { withTestEngine } from "./test_engine.ts";
import type { Engine } from "../../src/server/engine.ts";

async function greyPng(w: number, h: number): Promise<Uint8Array<ArrayBuffer>> {
  const image = new Image(w, h);
  image.fill(0x808080ff);
  return new Uint8Array(await image.encode(1));
}

async function everythingOnSmall(engine: Engine) {
  const logs: string[] = [];
  const app = createApp({ engine, log: (l) => logs.push(l) });
  for (
    const [w, h, layers] of [[64, 3, 2], [1, 1, 1], [3, 64, 2], [2, 1, 2]] as const
  ) {
    const up = await call(app, "POST", "/api/images", await greyPng(w, h), {
      "content-type": "image/png",
    });
    assert.equal(up.status, 200, JSON.stringify(up.json));
    const r = await call(app, "POST", `/api/images/${up.json.id}/everything`, {
      points_per_side: 1,
      crop_n_layers: layers,
    });
    assert.equal(r.status, 200, `${w}x${h}, ${layers} layers: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.width, w);
    assert.equal(r.json.height, h);
    for (const a of r.json.annotations as { crop_box: number[] }[]) {
      const [, , cw, ch] = a.crop_box;
      assert.ok(cw > 0 && ch > 0, `empty crop box ${a.crop_box}`);
    }
  }
  assert.ok(!logs.some((l) => l.startsWith("ERROR")), logs.join("\n"));
}

Deno.test("everything: crop layers on an image thinner than 2^layers (stand-in engine)", async () => {
  await everythingOnSmall(new FakeEngine());
});

Deno.test("everything: crop layers on an image thinner than 2^layers (sam-tiny)", async () => {
  await withTestEngine((engine) => everythingOnSmall(engine));
});
