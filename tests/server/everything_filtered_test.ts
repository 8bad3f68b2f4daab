/**
 * `/everything` says where its candidate masks went (`filtered`: dropped per threshold, kept),
 * so that 0 masks is explained; `/favicon.ico` is the page's icon, not a 404.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { FakeEngine } from "./fake_engine.ts";
import { BASE, call, makePng } from "./helpers.ts";

Deno.test("everything: the answer counts the masks each threshold dropped (stand-in engine)", async () => {
  const app = createApp({ engine: new FakeEngine(), log: () => {} });
  const up = await call(app, "POST", "/api/images", await makePng(64, 48), {
    "content-type": "image/png",
  });
  assert.equal(up.status, 200, JSON.stringify(up.json));
  const path = `/api/images/${up.json.id}/everything`;
  type Filtered = { candidates: number; dropped: Record<string, number>; kept: number };
  for (const body of [{ points_per_side: 2 }, { points_per_side: 2, pred_iou_thresh: 1 }]) {
    const r = await call(app, "POST", path, body);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const f = r.json.filtered as Filtered;
    assert.ok(f, "the answer has `filtered`");
    assert.equal(f.candidates, 2 * 2 * 3);
    assert.deepEqual(Object.keys(f.dropped), [
      "pred_iou_thresh",
      "stability_score_thresh",
      "near_crop_edge",
      "box_nms_thresh",
      "crop_nms_thresh",
      "min_mask_region_area",
    ]);
    const dropped = Object.values(f.dropped).reduce((a, b) => a + b, 0);
    assert.equal(dropped + f.kept, f.candidates);
    assert.equal(f.kept, r.json.count);
    if (body.pred_iou_thresh === 1) {
      // Nothing has a predicted IoU above 1: all dropped there, and the answer says so.
      assert.equal(r.json.count, 0);
      assert.equal(f.dropped.pred_iou_thresh, f.candidates);
    }
  }
});

Deno.test("/favicon.ico is served (the page's SVG icon)", async () => {
  const app = createApp({ engine: new FakeEngine(), log: () => {} });
  for (const path of ["/favicon.ico", "/favicon.svg"]) {
    const res = await app(new Request(`${BASE}${path}`));
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-type"), "image/svg+xml");
    assert.match(await res.text(), /^<svg /);
  }
});
